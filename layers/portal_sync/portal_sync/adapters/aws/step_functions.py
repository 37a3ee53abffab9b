"""Starts the state machines' executions: one per website-visibility outbox row (the
ExecutionStarter of visibility/ports.py) and one per import or reconciliation run (the
RunStarter of reconciliation/ports.py)."""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import ClientError

from portal_sync.observability import tracer
from portal_sync.reconciliation.ports import Run
from portal_sync.visibility.ports import Change


class StepFunctionsStarter:
    def __init__(self, client: Any, state_machine_arn: str) -> None:
        self._client = client
        self._arn = state_machine_arn

    @tracer.capture_method
    def start(self, change: Change) -> str:
        # Named after the outbox row: starting it twice is refused, so a retried dispatch
        # (after a crash between start and commit) never delivers one change twice.
        return _start_once(
            self._client,
            self._arn,
            str(change.id),
            {
                "change_id": str(change.id),
                "organization_id": str(change.organization_id),
                "profile_id": str(change.profile_id),
            },
        )


class SyncRunStarter:
    def __init__(self, client: Any, state_machine_arn: str) -> None:
        self._client = client
        self._arn = state_machine_arn

    @tracer.capture_method
    def start(self, run: Run, attempt: str | None = None) -> None:
        # Named after the run (and the attempt, for a run given another execution): the name
        # is in every line the execution's tasks log.
        name = f"{run.id}-{attempt}" if attempt else str(run.id)
        _start_once(
            self._client,
            self._arn,
            name,
            {"run_id": str(run.id), "organization_id": str(run.organization_id)},
        )


def _start_once(client: Any, arn: str, name: str, payload: dict[str, str]) -> str:
    """The execution's ARN; an execution of that name started before counts as started."""
    try:
        response = client.start_execution(stateMachineArn=arn, name=name, input=json.dumps(payload))
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "ExecutionAlreadyExists":
            raise
        return arn.replace(":stateMachine:", ":execution:") + f":{name}"
    started: str = response["executionArn"]
    return started
