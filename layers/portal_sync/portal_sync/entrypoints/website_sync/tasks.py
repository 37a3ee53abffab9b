"""The state machine's two tasks (infra/statemachines/website_visibility.asl.json), each one
VisibilityService call in one transaction:

- `{"task": "apply_visibility", "change_id"}`: one attempt; `{"status", "message", "error",
  "wait_seconds"}`, on which the state machine branches (`retry`: wait, then attempt again;
  `failed`: record it; anything else: done). An attempt that failed is a status, not a Lambda
  error: only a failure of the function itself counts in AWS/Lambda Errors (which pages);
- `{"task": "record_visibility_failure", "change_id", "error"}` (`error`: the failed attempt's
  answer, or what the Catch caught): `{"message", "current"}`; the sync is failed and
  redelivered later, and on-call hears of the organisation's outage from the schedule, once
  (visibility/outages.py).
"""

from __future__ import annotations

import json
from typing import Any
from uuid import UUID

from portal_sync.bootstrap import website_sync as wiring
from portal_sync.observability import logger
from portal_sync.visibility.delivery import ExecutionFailure


def run(event: dict[str, Any]) -> dict[str, Any]:
    change_id = UUID(str(event["change_id"]))
    if event["task"] == "apply_visibility":
        with wiring.visibility(delivering=True) as service:
            outcome = service.apply(change_id)
        if outcome.error:
            # The administrators' words: no secret, nor Dynamics' own text (it can echo rows).
            log = logger.info if outcome.status == "retry" else logger.warning
            log(
                "A website visibility attempt failed",
                extra={
                    "error": outcome.error,
                    "reason": outcome.message,
                    "outcome": outcome.status,
                    "wait_seconds": outcome.wait_seconds,
                },
            )
        return {
            "status": outcome.status,
            "message": outcome.message,
            "error": outcome.error,
            "wait_seconds": outcome.wait_seconds,
        }
    if event["task"] == "record_visibility_failure":
        with wiring.visibility() as service:
            recorded = service.record_failure(change_id, caught(event.get("error")))
        return {"message": recorded.message, "current": recorded.current}
    raise ValueError(f"unknown task {event['task']!r}")


def caught(error: Any) -> ExecutionFailure | None:
    """What ended the execution: the last attempt's answer (`{"status": "failed", "error",
    "message"}`), or the Catch's `{"Error": name, "Cause": ...}`, whose Cause is the Lambda's
    error as JSON (`errorMessage`) when the task itself failed."""
    if not isinstance(error, dict):
        return None
    if "status" in error:
        message = error.get("message")
        return ExecutionFailure(error.get("error"), str(message) if message else None)
    try:
        cause = json.loads(error.get("Cause") or "{}")
        message = cause.get("errorMessage") if isinstance(cause, dict) else None
    except ValueError:
        message = None
    return ExecutionFailure(error.get("Error"), str(message) if message else None)
