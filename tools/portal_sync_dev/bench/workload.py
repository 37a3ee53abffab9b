"""What the benchmarks send: how much (Plan), the events (signed portal webhooks, SQS batches of
queued events, each function's loop of invocations) and the baseline's own statements."""

from __future__ import annotations

import base64
import hashlib
import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from portal_sync_dev import ROOT

REGION = "eu-north-1"
BENCH_SOURCE = "bench-portal"
SOURCE_SECRET_PREFIX = "portal-sync/sources/"  # noqa: S105 - a name prefix
FUNCTIONS = ("webhook_ingest", "process_event", "admin_api", "website_sync")
STATE_DIR = ROOT / ".local" / "bench"


class BenchError(RuntimeError):
    pass


@dataclass(frozen=True)
class Plan:
    reps: int = 3
    ingest_calls: int = 1000
    ingest_profile_calls: int = 500
    apply_events: int = 1500
    apply_batch_sizes: tuple[int, ...] = (10, 100)
    e2e_events: int = 1000
    e2e_rate: float = 50.0
    e2e_paced_senders: int = 4
    e2e_burst_events: int = 500
    e2e_burst_senders: int = 8
    e2e_floor_rows: int = 100
    memory_calls: int = 500
    profile: bool = True


QUICK = Plan(
    reps=1,
    ingest_calls=200,
    ingest_profile_calls=200,
    apply_events=400,
    e2e_events=200,
    e2e_burst_events=200,
    e2e_floor_rows=50,
    memory_calls=200,
)


def context(function: str, timeout: int = 30) -> Any:
    from portal_sync_dev.local.lambda_http import LambdaContext

    return LambdaContext(function, timeout_seconds=timeout, aws_request_id=str(uuid.uuid4()))


def portal_event_body(contact_id: str) -> bytes:
    """A portal `membership.created` event, as docs/inbound.md's example sends it."""
    now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return json.dumps(
        {
            "type": "membership.created",
            "occurred_at": now,
            "member": {
                "dynamics_contact_id": contact_id,
                "first_name": "Kari",
                "last_name": "Nordmann",
                "email": "kari@example.org",
                "phone": "+4790000000",
            },
            "role": "member",
        }
    ).encode()


def signed_webhook(secret: str, body: bytes) -> dict[str, str]:
    """Headers a Standard Webhooks sender computes (the reference library signs)."""
    from standardwebhooks.webhooks import Webhook

    webhook_id = f"msg_{uuid.uuid4().hex}"
    now = datetime.now(UTC)
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(secret).sign(webhook_id, now, body.decode()),
        "content-type": "application/json",
    }


def ingest_event(source_id: str, secret: str) -> tuple[dict[str, Any], bytes]:
    """An API Gateway v2 event of a signed webhook, as `lambda_http` builds it."""
    from portal_sync_dev.local.lambda_http import build_http_event

    body = portal_event_body(str(uuid.uuid4()))
    headers = {
        **signed_webhook(secret, body),
        "host": "127.0.0.1:8000",
        "user-agent": "portal-sync-bench",
        "content-length": str(len(body)),
    }
    path = f"/functions/v1/portal-webhook/{source_id}"
    return build_http_event("POST", path, headers, body, "127.0.0.1"), body


def sqs_records(
    organization_id: str, source_id: str, count: int, queue_arn: str
) -> list[dict[str, Any]]:
    """SQS records of accepted membership events, with QueuedEvent bodies as the ingest queues
    them (`webhooks.receipts`)."""
    from portal_sync.inbound.queue_message import QueuedEvent
    from portal_sync.inbound.receipts import Outcome, Receipt
    from portal_sync.inbound.source_config import SignatureMode

    from portal_sync_dev.local.consumer import sqs_event

    messages = []
    sent_ms = str(int(time.time() * 1000))
    for _ in range(count):
        body = portal_event_body(str(uuid.uuid4()))
        delivery_id = f"msg_{uuid.uuid4().hex}"
        receipt = Receipt(
            id=uuid.uuid4(),
            source_id=source_id,
            organization_id=uuid.UUID(organization_id),
            delivery_id=delivery_id,
            outcome=Outcome.ACCEPTED,
            signature_mode=SignatureMode.STANDARD_WEBHOOKS,
            received_at=datetime.now(UTC),
        )
        text = QueuedEvent(
            receipt=receipt,
            event_id=delivery_id,
            correlation_id=str(receipt.id),
            body_b64=base64.b64encode(body).decode(),
        ).model_dump_json()
        messages.append(
            {
                "MessageId": str(uuid.uuid4()),
                "ReceiptHandle": uuid.uuid4().hex,
                "Body": text,
                "MD5OfBody": hashlib.md5(text.encode(), usedforsecurity=False).hexdigest(),
                "Attributes": {
                    "ApproximateReceiveCount": "1",
                    "SentTimestamp": sent_ms,
                    "SenderId": "AIDABENCH",
                    "ApproximateFirstReceiveTimestamp": sent_ms,
                },
            }
        )
    records: list[dict[str, Any]] = sqs_event(messages, queue_arn)["Records"]
    return records


def chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


# -- the apply baseline: the rows the handler writes, written as barely ------------------------

BASELINE_UPSERT = """
with profile as (
    insert into profiles
        (dynamics_contact_id, first_name, last_name, email, phone, details_modified_at)
    values (%(contact)s, %(first_name)s, %(last_name)s, %(email)s, %(phone)s, %(at)s)
    on conflict (dynamics_contact_id) do update set
        first_name = excluded.first_name, last_name = excluded.last_name,
        email = excluded.email, phone = excluded.phone,
        details_modified_at = excluded.details_modified_at, updated_at = now()
    returning id
)
insert into organization_memberships
    (organization_id, profile_id, role, status, source_modified_at, last_synced_at)
select %(org)s, id, %(role)s, 'active', %(at)s, now() from profile
on conflict (organization_id, profile_id) do update set
    role = excluded.role, status = excluded.status,
    source_modified_at = excluded.source_modified_at, last_synced_at = now(), updated_at = now()
"""


# The handler's other two rows per event, written as barely: its receipt and its log entry.
BASELINE_RECEIPT = """
insert into webhook_receipts
    (id, source_id, organization_id, delivery_id, outcome, received_at)
values (%(receipt_id)s, %(source)s, %(org)s, %(receipt)s, 'accepted', now())
on conflict do nothing
"""
BASELINE_LOG = """
insert into portal_sync_events
    (organization_id, event_id, event_type, status, message, received_at, receipt_id)
values (%(org)s, %(receipt)s, 'membership.created', 'success', 'Membership created',
        now(), %(receipt_id)s)
on conflict (organization_id, event_id) do update set
    status = excluded.status, message = excluded.message, processed_at = now()
"""


def baseline_rows(organization_id: str, count: int) -> list[dict[str, Any]]:
    """The rows the handler writes for `count` membership.created events of new members."""
    rows = []
    for _ in range(count):
        payload = json.loads(portal_event_body(str(uuid.uuid4())))
        member, receipt = payload["member"], uuid.uuid4()
        rows.append(
            {
                "contact": member["dynamics_contact_id"],
                "first_name": member["first_name"],
                "last_name": member["last_name"],
                "email": member["email"],
                "phone": member["phone"],
                "at": payload["occurred_at"],
                "org": organization_id,
                "role": payload["role"],
                "receipt": str(receipt),
                "receipt_id": receipt,
                "source": BENCH_SOURCE,
            }
        )
    return rows


# -- the memory loop: each function's invocations ----------------------------------------------


def memory_load(function: str, run: dict[str, Any], count: int) -> Iterator[tuple[Any, Any]]:
    """`count` invocations of `function` against the local system described by `run` (its
    run.json): its real work, not preflights."""
    from portal_sync_dev.local.lambda_http import build_http_event

    def http(path: str, token: str) -> dict[str, Any]:
        headers = {"host": "127.0.0.1:8000", "authorization": f"Bearer {token}"}
        return build_http_event("GET", path, headers, b"", "127.0.0.1")

    if function == "webhook_ingest":
        for _ in range(count):
            yield ingest_event(run["source_id"], run["webhook_secret"])[0], context(function, 10)
    elif function == "process_event":
        arn = f"arn:aws:sqs:{REGION}:123456789012:portal-sync-events"
        for _ in range(max(1, count // 50)):
            records = sqs_records(run["org_id"], run["source_id"], 100, arn)
            yield {"Records": records}, context(function, 60)
    elif function == "admin_api":
        org = run["org_id"]
        base = f"/functions/v1/admin-api/orgs/{org}"
        routes = [
            (f"{base}/integration", run["org_admin_token"]),
            (f"{base}/sync/status", run["org_admin_token"]),
            (f"{base}/sync/events?limit=50", run["org_admin_token"]),
            (f"{base}/members?limit=50", run["org_admin_token"]),
            (f"{base}/features", run["org_admin_token"]),
            (f"{base}/audit-log?limit=50", run["org_admin_token"]),
            (f"{base}/webhook-health", run["admin_token"]),
        ]
        for i in range(count):
            path, token = routes[i % len(routes)]
            yield http(path, token), context(function, 15)
    elif function == "website_sync":
        path = f"/functions/v1/website-sync/{run['demo_mentor_id']}/status"
        for i in range(count):
            if i % 50 == 49:
                yield (
                    {"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}},
                    (context(function, 30)),
                )
            else:
                yield http(path, run["org_admin_token"]), context(function, 30)
    else:
        raise BenchError(f"unknown function {function}")
