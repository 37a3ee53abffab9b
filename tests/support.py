"""Helpers for tests: signing like a real sender (the Standard Webhooks reference library), SQS
records as the event source mapping hands them to the consumer, and a JWKS on loopback."""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks.webhooks import Webhook


def signed_headers(
    secret: str, body: bytes, webhook_id: str | None = None, timestamp: int | None = None
) -> dict[str, str]:
    """Headers as a Standard Webhooks sender computes them, with the reference implementation."""
    webhook_id = webhook_id or f"msg_{uuid.uuid4().hex}"
    moment = timestamp if timestamp is not None else int(time.time())
    signature = Webhook(secret).sign(webhook_id, datetime.fromtimestamp(moment, UTC), body.decode())
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(moment),
        "webhook-signature": signature,
        "content-type": "application/json",
    }


def portal_event(
    event_type: str,
    contact_id: str,
    *,
    occurred_at: str = "2026-11-20T10:00:00Z",
    role: str | None = None,
    first_name: str = "Kari",
    last_name: str = "Nordmann",
    course: dict[str, str] | None = None,
) -> bytes:
    payload: dict[str, Any] = {
        "type": event_type,
        "occurred_at": occurred_at,
        "member": {
            "dynamics_contact_id": contact_id,
            "first_name": first_name,
            "last_name": last_name,
            "email": "kari@example.org",
            "phone": "+4790000000",
        },
    }
    if role is not None:
        payload["role"] = role
    if course is not None:
        payload["course"] = course
    return json.dumps(payload).encode()


def sqs_record(message_id: str, body: str, receives: int = 1) -> dict[str, Any]:
    """One record of an SQS event, as Lambda's event source mapping delivers it."""
    return {
        "messageId": message_id,
        "receiptHandle": f"handle-{message_id}-{receives}",
        "body": body,
        "attributes": {"ApproximateReceiveCount": str(receives)},
        "messageAttributes": {},
        "md5OfBody": "",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:eu-north-1:000000000000:portal-sync-events",
        "awsRegion": "eu-north-1",
    }


def serve_on_loopback(body: bytes, content_type: str = "application/json") -> ThreadingHTTPServer:
    """An HTTP server on loopback answering every GET with `body` (stop it with shutdown())."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("content-type", content_type)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def jwks_url(server: ThreadingHTTPServer) -> str:
    """Where Supabase serves a project's JWKS, on `server`."""
    return f"http://127.0.0.1:{server.server_address[1]}/auth/v1/.well-known/jwks.json"


def jwks_document(keys: dict[str, Any]) -> bytes:
    """A JWKS of public keys, as Supabase serves it: `keys` maps kid -> private key."""
    from cryptography.hazmat.primitives.asymmetric import rsa
    from jwt.algorithms import ECAlgorithm, RSAAlgorithm

    documents = []
    for kid, key in keys.items():
        algorithm = RSAAlgorithm if isinstance(key, rsa.RSAPrivateKey) else ECAlgorithm
        jwk = json.loads(algorithm.to_jwk(key.public_key()))
        documents.append({**jwk, "kid": kid, "use": "sig"})
    return json.dumps({"keys": documents}).encode()


class LogLines(logging.Handler):
    """The functions' log lines as their Powertools formatter writes them, formatted when logged
    (keys appended for a block are gone by the end of the test)."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        from portal_sync.observability import logger

        self.lines.append(json.loads(logger.registered_formatter.format(record)))

    def saying(self, text: str) -> list[dict[str, Any]]:
        return [line for line in self.lines if text in line["message"]]


@contextmanager
def capture_log_lines() -> Iterator[LogLines]:
    from portal_sync.observability import logger

    handler = LogLines()
    underlying = logging.getLogger(logger.name)
    level = underlying.level
    underlying.addHandler(handler)
    underlying.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        underlying.removeHandler(handler)
        underlying.setLevel(level)


def on_call_alerts(system: Any) -> list[dict[str, Any]]:
    """What reached on-call since the last call: the on-call topic's messages, taken from the
    inbox queue subscribed to it (and removed, so the next call sees only newer ones)."""
    import boto3

    sqs, found = boto3.client("sqs"), []
    while messages := sqs.receive_message(
        QueueUrl=system.aws.on_call_inbox_url, MaxNumberOfMessages=10, WaitTimeSeconds=1
    ).get("Messages", []):
        found.extend(json.loads(m["Body"]) for m in messages)
        sqs.delete_message_batch(
            QueueUrl=system.aws.on_call_inbox_url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)
            ],
        )
    return found


def add_member(
    db: Any,
    org_id: uuid.UUID,
    role: str,
    status: str = "active",
    *,
    first_name: str = "Test",
    last_name: str | None = None,
) -> uuid.UUID:
    """A signed-up app user with a membership: returns their auth user id."""
    user_id = uuid.uuid4()
    with db.connect() as conn:
        profile = conn.execute(
            "insert into profiles (auth_user_id, dynamics_contact_id, first_name, last_name)"
            " values (%s, %s, %s, %s) returning id",
            (user_id, str(uuid.uuid4()), first_name, last_name),
        ).fetchone()
        conn.execute(
            "insert into organization_memberships (organization_id, profile_id, role, status)"
            " values (%s, %s, %s, %s)",
            (org_id, profile["id"], role, status),
        )
    return user_id
