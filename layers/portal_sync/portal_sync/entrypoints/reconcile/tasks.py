"""The sync-run state machine's tasks (infra/statemachines/sync_run.asl.json), each one
Reconciliation call:

- `{"task": "read_page", "run_id"}`: reads and applies the page at the run's checkpoint;
  `{"status": "more" | "wait" | "done" | "failed", "wait_seconds"}`. Throttling and transient
  failures are a status the state machine waits on, never a Lambda error (so they do not count
  in the function's Errors alarm); only a crash raises, and Step Functions retries the step;
- `{"task": "finish_run", "run_id"}`: ends the run, counts its drift; its summary;
- `{"task": "fail_run", "run_id", "error"}` (`error`: what a Catch caught): ends the run as
  failed with a message for administrators; its summary.
"""

from __future__ import annotations

import math
from typing import Any
from uuid import UUID

from aws_lambda_powertools.metrics import MetricUnit

from portal_sync.bootstrap import reconcile as wiring
from portal_sync.observability import logger, metrics
from portal_sync.reconciliation.ports import Phase, Run, RunKind
from portal_sync.reconciliation.runs import UNEXPECTED_FAILURE, PageStatus


def run(event: dict[str, Any]) -> dict[str, Any]:
    run_id = UUID(str(event["run_id"]))
    task = event["task"]
    runs = wiring.reconciliation()
    if task == "read_page":
        outcome = runs.next_page(run_id)
        if outcome.changed:
            # Mentors whose membership changed may have to be hidden or shown again.
            wiring.start_visibility_changes()
        if outcome.status is PageStatus.FAILED:
            _ended(outcome.run)
        return {
            "status": outcome.status.value,
            "wait_seconds": math.ceil(outcome.wait_seconds or 0),
        }
    if task == "finish_run":
        return summary(_ended(runs.finish(run_id)))
    if task == "fail_run":
        # A step that kept crashing: what it raised is not worded for administrators.
        return summary(_ended(runs.fail(run_id, UNEXPECTED_FAILURE)))
    raise ValueError(f"unknown task {task!r}")


def summary(run: Run) -> dict[str, Any]:
    return {
        "phase": run.phase.value,
        "kind": run.kind.value,
        "rows_read": run.rows_read,
        "rows_changed": run.rows_changed,
        "rows_drift": run.rows_drift,
        "rows_failed": run.rows_failed,
    }


def _ended(run: Run) -> Run:
    """The metrics and the log line of a run that ended: drift is what the alarm watches."""
    if run.kind is RunKind.RECONCILE and run.phase is Phase.SUCCEEDED:
        metrics.add_metric(name="ReconciliationDrift", unit=MetricUnit.Count, value=run.rows_drift)
    if run.phase is Phase.FAILED:
        metrics.add_metric(name="SyncRunFailed", unit=MetricUnit.Count, value=1)
    else:
        metrics.add_metric(name="SyncRunSucceeded", unit=MetricUnit.Count, value=1)
    logger.info(
        "Sync run ended",
        extra={
            "organization_id": str(run.organization_id),
            **summary(run),
            "full_read": run.full_read,
            "error": run.error,
        },
    )
    return run
