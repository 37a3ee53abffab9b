"""functions/webhook_ingest: the WebhookIngest of an execution environment."""

from __future__ import annotations

from functools import cache

from portal_sync.adapters.aws.clients import client
from portal_sync.adapters.aws.source_store import SourceStore
from portal_sync.adapters.aws.sqs_queue import SqsEventQueue
from portal_sync.adapters.postgres.receipt_ledger import PostgresReceiptLedger
from portal_sync.bootstrap.shared import connection_provider
from portal_sync.bootstrap.snapstart import prepare_for_snapshots
from portal_sync.inbound.ingest import IngestLimits, WebhookIngest
from portal_sync.settings import IngestSettings


@cache
def settings() -> IngestSettings:
    return IngestSettings()


@cache
def ingest() -> WebhookIngest:
    """Built once per execution environment: the caches and the connection live across calls."""
    config = settings()
    return WebhookIngest(
        sources=SourceStore(
            client("secretsmanager"),
            prefix=config.source_secret_prefix,
            max_age_seconds=config.source_cache_seconds,
            refresh_interval_seconds=config.source_refresh_interval_seconds,
        ),
        queue=SqsEventQueue(client("sqs"), config.event_queue_url),
        # The ledger's connection is its own: nothing else in the ingest talks to PostgreSQL.
        ledger=PostgresReceiptLedger(
            connection_provider(config, autocommit=True),
            retry_after_seconds=config.database_retry_after_seconds,
        ),
        limits=IngestLimits(config.max_body_bytes, config.signature_tolerance_seconds),
    )


# With SnapStart, a restored environment makes its connections and clients again; the snapshot
# already holds the modules of the Secrets Manager and SQS clients every webhook uses.
prepare_for_snapshots(prime=("botocore.session", "botocore.config"))
