"""Starts the website-visibility state machine, one execution per outbox row (the
ExecutionStarter of visibility/ports.py)."""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import ClientError

from portal_sync.observability import tracer
from portal_sync.visibility.ports import Change


class StepFunctionsStarter:
    def __init__(self, client: Any, state_machine_arn: str) -> None:
        self._client = client
        self._arn = state_machine_arn

    @tracer.capture_method
    def start(self, change: Change) -> str:
        # Named after the outbox row: starting it twice is refused, so a retried dispatch
        # (after a crash between start and commit) never delivers one change twice.
        name = str(change.id)
        try:
            response = self._client.start_execution(
                stateMachineArn=self._arn,
                name=name,
                input=json.dumps(
                    {
                        "change_id": name,
                        "organization_id": str(change.organization_id),
                        "profile_id": str(change.profile_id),
                    }
                ),
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ExecutionAlreadyExists":
                raise
            return self._arn.replace(":stateMachine:", ":execution:") + f":{name}"
        arn: str = response["executionArn"]
        return arn
