"""The admin API under schemathesis, against its own OpenAPI document (served at /openapi.json).

Every operation in the document gets generated requests, valid ones (mostly for the demo
organisation, so that they reach the real logic; sometimes for a random one) and invalid ones,
sent over HTTP to the running system with the platform administrator's token. Checks: no 5xx,
only status codes the document lists, the documented content type, and bodies that conform to
the documented schema. The examples per operation are limited so the run stays bounded.
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from conftest import Database, eventually
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)
from support import portal_event, signed_headers

PREFIX = "/functions/v1/admin-api"
POSITIVE_EXAMPLES = 40
NEGATIVE_EXAMPLES = 15
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture
def schema(system: Any) -> Any:
    return schemathesis.openapi.from_url(f"{system.base_url}{PREFIX}/openapi.json")


def _error_event(system: Any, db: Database) -> str:
    """An `error` entry of the demo organisation, so that reprocess has something real."""
    import httpx

    body = b'{"type": "membership.role_updated", "occurred_at": "2026-11-20T10:00:00Z"}'
    httpx.post(
        f"{system.base_url}/functions/v1/portal-webhook/{system.seed.source_id}",
        content=body,
        headers=signed_headers(system.seed.webhook_secret, body),
    )
    ok = portal_event("membership.created", "0b6f6a8e-2a52-4bd3-9d3f-7f3f0a6f2c12")
    httpx.post(
        f"{system.base_url}/functions/v1/portal-webhook/{system.seed.source_id}",
        content=ok,
        headers=signed_headers(system.seed.webhook_secret, ok),
    )
    row = eventually(
        lambda: db.one("select id from portal_sync_events where status = 'error'"), timeout=10
    )
    return str(row["id"])


@pytest.mark.parametrize(
    "mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=["valid", "invalid"]
)
def test_admin_api_conforms_to_its_openapi_document(
    system: Any, db: Database, schema: Any, mode: GenerationMode
) -> None:
    base_url = f"{system.base_url}{PREFIX}"
    auth = {"authorization": f"Bearer {system.seed.admin_token}"}
    known = {"org_id": str(system.seed.org_id), "event_id": _error_event(system, db)}
    checks = CHECKS if mode is GenerationMode.POSITIVE else [*CHECKS, negative_data_rejection]
    examples = POSITIVE_EXAMPLES if mode is GenerationMode.POSITIVE else NEGATIVE_EXAMPLES
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        names = {p.name for p in operation.path_parameters}
        fixed = {k: v for k, v in known.items() if k in names}
        strategy = operation.as_strategy(generation_mode=mode)
        if fixed and mode is GenerationMode.POSITIVE:
            strategy = st.one_of(
                operation.as_strategy(generation_mode=mode, path_parameters=fixed), strategy
            )

        @settings(
            max_examples=examples,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=strategy)
        def run(case: Any) -> None:
            response = case.call(base_url=base_url, headers=auth, timeout=15)
            case.validate_response(response, checks=checks)

        try:
            run()
        except BaseExceptionGroup as exc:  # every operation's failures, reported together
            failures.append(f"{operation.label}: {exc}")
    assert not failures, "\n\n".join(failures)
    # What the run queued (test deliveries, reprocessed events) is applied before the next test.
    eventually(lambda: queued(system) == 0, timeout=20, interval=0.2)


def queued(system: Any) -> int:
    import boto3

    attributes = boto3.client("sqs").get_queue_attributes(
        QueueUrl=system.aws.event_queue_url, AttributeNames=["All"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(
        attributes["ApproximateNumberOfMessagesNotVisible"]
    )
