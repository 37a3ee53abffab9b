"""functions/reconcile's two entry points: the state machine's tasks and the schedule."""
