"""functions/website_sync's three entry points: HTTP routes, state machine tasks, the schedule."""
