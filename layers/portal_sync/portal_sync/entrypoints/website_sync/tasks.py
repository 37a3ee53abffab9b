"""The state machine's two tasks (infra/statemachines/website_visibility.asl.json), each one
VisibilityService call in one transaction:

- `{"task": "apply_visibility", "change_id"}`: one attempt; `{"status", "message"}`, or the
  attempt's failure raised as the Lambda error the state machine retries or catches;
- `{"task": "record_visibility_failure", "change_id", "error"}` (`error`: what its Catch caught):
  `{"message", "current"}`; the sync is failed and redelivered later, and on-call hears of the
  organisation's outage from the schedule, once (visibility/outages.py).
"""

from __future__ import annotations

import json
from typing import Any
from uuid import UUID

from portal_sync.bootstrap import website_sync as wiring
from portal_sync.observability import logger
from portal_sync.visibility.delivery import ExecutionFailure


# The Lambda errors of a failed attempt: their class names are the Step Functions errors that
# the state machine's Retry and Catch name (visibility/delivery.py's ATTEMPT_ERRORS).
class DynamicsUnavailable(Exception):
    pass


class DynamicsThrottled(Exception):
    pass


class DynamicsRejected(Exception):
    pass


TASK_ERRORS: dict[str, type[Exception]] = {
    cls.__name__: cls for cls in (DynamicsUnavailable, DynamicsThrottled, DynamicsRejected)
}


def run(event: dict[str, Any]) -> dict[str, Any]:
    change_id = UUID(str(event["change_id"]))
    if event["task"] == "apply_visibility":
        with wiring.visibility(delivering=True) as service:
            outcome = service.apply(change_id)
        # Raised after commit, so the attempt and its error are recorded either way.
        if outcome.error:
            # The administrators' words: no secret, nor Dynamics' own text (it can echo rows).
            logger.warning(
                "A website visibility attempt failed",
                extra={"error": outcome.error, "reason": outcome.message},
            )
            raise TASK_ERRORS[outcome.error](outcome.message)
        return {"status": outcome.status, "message": outcome.message}
    if event["task"] == "record_visibility_failure":
        with wiring.visibility() as service:
            recorded = service.record_failure(change_id, caught(event.get("error")))
        return {"message": recorded.message, "current": recorded.current}
    raise ValueError(f"unknown task {event['task']!r}")


def caught(error: Any) -> ExecutionFailure | None:
    """What ended the execution, from the Catch's `{"Error": name, "Cause": ...}`, whose Cause
    is the Lambda's error as JSON (`errorMessage`) when a task raised one."""
    if not isinstance(error, dict):
        return None
    try:
        cause = json.loads(error.get("Cause") or "{}")
        message = cause.get("errorMessage") if isinstance(cause, dict) else None
    except ValueError:
        message = None
    return ExecutionFailure(error.get("Error"), str(message) if message else None)
