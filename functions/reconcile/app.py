"""Imports and reconciliations from Dynamics (docs/inbound.md, "Import and reconciliation"):
one function, two kinds of event, each to its entry point in
portal_sync/entrypoints/reconcile/:

- the sync-run state machine's tasks, `{"task": "read_page" | "finish_run" | "fail_run",
  "run_id"}` (tasks.py): one page per task, so a run of any size fits Lambda's limits;
- the EventBridge schedule (schedule.py): reconciliations that are due, stalled runs resumed.

Runs are started by the admin API (on onboarding, enabling, or an administrator's request) and
by the schedule. The wiring is portal_sync/bootstrap/reconcile.py.
"""

from __future__ import annotations

import gc

# Cold start: the cyclic garbage collector is paused while the modules below are imported, and
# what the import built is frozen at the end of this module (see functions/webhook_ingest/app.py).
gc.disable()

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from portal_sync.entrypoints.reconcile import schedule, tasks
from portal_sync.entrypoints.scheduled_event import is_schedule
from portal_sync.observability import logger, metrics, tracer


@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if "task" in event:
        # The run's id: every page's lines of one run carry it, whichever execution ran it.
        logger.set_correlation_id(str(event.get("run_id")))
        return tasks.run(event)
    if is_schedule(event):
        logger.set_correlation_id(event.get("id") or context.aws_request_id)
        return schedule.run()
    # Not ours to run (an invocation by hand, a misrouted event): a page for on-call, were it
    # raised, and nothing anyone could retry.
    logger.warning("Ignored an event that is neither a run's task nor the schedule")
    return {"ignored": True}


# The end of the cold import (see the top of the module).
gc.freeze()
gc.enable()
