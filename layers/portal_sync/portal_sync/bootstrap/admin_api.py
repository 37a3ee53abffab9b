"""functions/admin_api: its settings, connection, token verifier and AWS/HTTP adapters, built
once per execution environment, and the admin services of one request, in one transaction."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache, partial
from typing import TYPE_CHECKING

from portal_sync.adapters.aws.clients import client
from portal_sync.adapters.aws.event_requeue import SqsEventRequeue
from portal_sync.adapters.aws.secret_vault import SecretsManagerVault
from portal_sync.adapters.postgres.admin_repository import PostgresAdminRepository
from portal_sync.adapters.postgres.connection import ConnectionProvider
from portal_sync.adapters.postgres.run_store import PostgresRunStore
from portal_sync.adapters.webhook_sender import HttpxWebhookSender
from portal_sync.admin.access import AdminAccess
from portal_sync.admin.audit_log import AuditTrail
from portal_sync.admin.health import WebhookHealthReport
from portal_sync.admin.integration_settings import IntegrationSettings
from portal_sync.admin.integrations import Integrations
from portal_sync.admin.members import Members
from portal_sync.admin.onboarding import Onboarding
from portal_sync.admin.organizations import Organizations
from portal_sync.admin.sync_log import SyncLog
from portal_sync.admin.sync_runs import SyncRuns
from portal_sync.admin.webhook_secrets import WebhookSecrets
from portal_sync.bootstrap.shared import connection_provider, jwt_verifier
from portal_sync.bootstrap.snapstart import prepare_for_snapshots
from portal_sync.observability import error_facts, logger
from portal_sync.reconciliation.ports import Run
from portal_sync.settings import AdminApiSettings

if TYPE_CHECKING:
    from portal_sync.adapters.aws.step_functions import SyncRunStarter
    from portal_sync.entrypoints.http.supabase_jwt import SupabaseJwtVerifier


@cache
def settings() -> AdminApiSettings:
    return AdminApiSettings()


@cache
def connections() -> ConnectionProvider:
    return connection_provider(settings())


@cache
def verifier() -> SupabaseJwtVerifier:
    return jwt_verifier(settings())


# The AWS clients are created when a request first uses one (`partial(client, ...)`): most
# admin requests touch neither, and a client is tens of ms of a cold start.
@cache
def vault() -> SecretsManagerVault:
    config = settings()
    return SecretsManagerVault(
        partial(client, "secretsmanager"),
        config.source_secret_prefix,
        config.dynamics_secret_prefix,
    )


@cache
def requeue() -> SqsEventRequeue:
    config = settings()
    return SqsEventRequeue(
        partial(client, "sqs"), config.event_queue_url, config.dead_letter_queue_url
    )


@cache
def sender() -> HttpxWebhookSender:
    return HttpxWebhookSender()


@cache
def run_starter() -> SyncRunStarter:
    from portal_sync.adapters.aws.step_functions import SyncRunStarter

    return SyncRunStarter(client("stepfunctions"), settings().sync_run_state_machine_arn)


@dataclass(frozen=True)
class AdminServices:
    """One request's services, sharing its transaction and its caller's authority."""

    settings: IntegrationSettings
    secrets: WebhookSecrets
    sync_log: SyncLog
    health: WebhookHealthReport
    onboarding: Onboarding
    members: Members
    audit_log: AuditTrail
    runs: SyncRuns
    organizations: Organizations


@contextmanager
def services(request_base_url: str) -> Iterator[AdminServices]:
    """One transaction per request: a failed change leaves nothing half-written.

    `request_base_url`: where this request came in, the webhook endpoints' base unless the
    settings name one (PUBLIC_BASE_URL)."""
    config = settings()
    with connections().transaction() as conn:
        repo = PostgresAdminRepository(conn)
        access = AdminAccess(repo)
        integrations = Integrations(
            repo,
            vault(),
            public_base_url=config.public_base_url or request_base_url,
        )
        runs = SyncRuns(access, repo, PostgresRunStore(connections()), repo)
        integration_settings = IntegrationSettings(
            access,
            integrations,
            repo,
            repo,
            vault(),
            runs,
            allow_local_dynamics=config.allow_local_dynamics,
        )
        yield AdminServices(
            settings=integration_settings,
            secrets=WebhookSecrets(access, integrations, repo, vault(), sender()),
            sync_log=SyncLog(access, repo, repo, requeue(), runs),
            health=WebhookHealthReport(access, integrations, repo),
            onboarding=Onboarding(access, integrations, repo, repo, vault(), integration_settings),
            members=Members(access, integrations, repo),
            audit_log=AuditTrail(access, repo),
            runs=runs,
            organizations=Organizations(access, repo),
        )
    _start_executions(runs.started)


def _start_executions(runs: list[Run]) -> None:
    """The executions of the runs the request stored, once it committed. A failed start is
    only logged: the run has no progress, and the schedule starts it (reconciliation/schedule.py)."""
    for run in runs:
        try:
            run_starter().start(run)
        except Exception as exc:
            logger.error(
                "Could not start a sync run; the schedule will",
                extra={"run_id": str(run.id), **error_facts(exc)},
            )


# With SnapStart, a restored environment makes its connections and clients again; the snapshot
# already holds the modules of token verification (PyJWT, cryptography) and the AWS clients some routes use.
prepare_for_snapshots(prime=("jwt", "jwt.algorithms", "botocore.session", "botocore.config"))
