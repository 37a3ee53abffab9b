"""The whole product on one machine: what `make run` starts and what the end-to-end tests drive."""

from __future__ import annotations

import importlib
import json
import os
import secrets
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from portal_sync import bootstrap

from portal_sync_dev import ROOT
from portal_sync_dev.console_deploy import CONSOLE, SUPABASE_JS, SUPABASE_JS_SOURCE
from portal_sync_dev.console_deploy import TOOLING as CONSOLE_TOOLING
from portal_sync_dev.database.migrations import migrate
from portal_sync_dev.database.supabase_project import login_functions_role
from portal_sync_dev.local.aws_local import (
    MAX_RECEIVE_COUNT,
    RECONCILE_FUNCTION,
    SOURCE_SECRET_PREFIX,
    WEBSITE_SYNC_FUNCTION,
    AwsResources,
    LocalLambdaRuntime,
    on_call_alerts_queue,
    provision,
    provision_sync_runs,
    provision_website_sync,
    put_source_secret,
    start_moto,
    use_endpoint,
)
from portal_sync_dev.local.consumer import QueueConsumer, Scheduler
from portal_sync_dev.local.database_push import ReconsiderationPush, service_role_key
from portal_sync_dev.local.dataverse_standin import DataverseStandIn
from portal_sync_dev.local.lambda_http import LocalApiServer, LocalFunction, StaticSite
from portal_sync_dev.local.on_call import OnCallAlerts
from portal_sync_dev.local.postgres import EmbeddedPostgres
from portal_sync_dev.local.seed import (
    DEMO_ADMIN_EMAIL,
    DEMO_COORDINATOR_EMAIL,
    DEMO_DYNAMICS_CLIENT_ID,
    DEMO_DYNAMICS_HEADER,
    DEMO_DYNAMICS_MEMBERS,
    DEMO_DYNAMICS_SOURCE_ID,
    DEMO_DYNAMICS_TENANT,
    DEMO_ORG_ADMIN_EMAIL,
    DemoSeed,
    new_webhook_secret,
    remembered,
    seed_demo,
)


@dataclass
class LocalSystem:
    state_dir: Path
    port: int = 8000
    database_url: str | None = None
    # The functions' role's password (remembered under state_dir when not given).
    functions_password: str | None = None
    consume: bool = True
    verbose: bool = False
    # Changes made through the Dynamics stand-in's Web API post Dataverse's webhook to the demo
    # Dynamics source (`make run` switches it on); this share of them is lost on the way.
    dynamics_webhooks: bool = False
    dynamics_drop_share: float = 0.0
    # The reconcile function's schedule runs with the other (`make run` switches it on; tests
    # call run_reconcile_schedule() when they mean to).
    reconcile_on_schedule: bool = False
    # The website-sync schedule runs every SCHEDULE_SECONDS, as EventBridge runs it (`make run`);
    # tests switch the timer off and call run_schedule() when they mean to, so that no tick
    # (a read-back's GET, a redelivery) takes a Dynamics answer a test planned.
    schedule_on_timer: bool = True
    postgres: EmbeddedPostgres | None = field(default=None, init=False)
    aws: AwsResources | None = field(default=None, init=False)
    seed: DemoSeed | None = field(default=None, init=False)
    functions: dict[str, LocalFunction] = field(default_factory=dict, init=False)
    consumer: QueueConsumer | None = field(default=None, init=False)
    # The functions' own connection (their role, under row-level security); `database_url` is
    # the migrating role's, which seeds the demo and which run.json hands out.
    functions_database_url: str = field(default="", init=False)
    jwt_secret: str = field(default="", init=False)
    webhook_secret: str = field(default="", init=False)
    dynamics: DataverseStandIn | None = field(default=None, init=False)
    # A bearer token the stand-in accepts, for a person reading its rows with curl.
    dynamics_token: str = field(default="", init=False)
    dynamics_webhook_key: str = field(default="", init=False)
    _moto: Any = field(default=None, init=False)
    _api: LocalApiServer | None = field(default=None, init=False)
    _scheduler: Scheduler | None = field(default=None, init=False)
    on_call: OnCallAlerts | None = field(default=None, init=False)
    # pg_net's part: a write's reconsideration request posted to website-sync at once.
    push: ReconsiderationPush | None = field(default=None, init=False)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def console_url(self) -> str:
        return f"{self.base_url}{CONSOLE_PREFIX}/"

    @property
    def dynamics_webhook_url(self) -> str:
        return f"{self.base_url}/functions/v1/portal-webhook/{DEMO_DYNAMICS_SOURCE_ID}"

    def start(self) -> LocalSystem:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        if not self.database_url:
            self.postgres = EmbeddedPostgres(self.state_dir / "pgdata").start()
            self.database_url = self.postgres.url
        # As on a Supabase project (docs/supabase.md): the migrations, then a login for the
        # functions' role.
        migrate(self.database_url)
        self.functions_database_url = login_functions_role(
            self.database_url,
            self.functions_password
            or remembered(
                self.state_dir / "functions_db_password", lambda: secrets.token_urlsafe(24)
            ),
        )

        if os.environ.get("AWS_ENDPOINT_URL") or os.environ.get("PORTAL_SYNC_REAL_AWS"):
            endpoint = os.environ.get("AWS_ENDPOINT_URL")
        else:
            self._moto, endpoint = start_moto()
            use_endpoint(endpoint)
        self.aws = provision(endpoint)
        self.dynamics = DataverseStandIn(
            port=int(os.environ.get("DYNAMICS_SANDBOX_PORT", "0")),
            gateway_port=int(os.environ.get("DYNAMICS_SANDBOX_GATEWAY_PORT", "0")),
            timeout_seconds=float(os.environ.get("DYNAMICS_SANDBOX_TIMEOUT_SECONDS", "15")),
        ).start()
        if self._moto is not None:
            topic, inbox, machine = provision_website_sync(retry_interval_seconds=1)
            self.aws = replace(
                self.aws,
                on_call_topic_arn=topic,
                on_call_inbox_url=inbox,
                state_machine_arn=machine,
                # Locally a crashed page is retried after ~1 s.
                sync_run_state_machine_arn=provision_sync_runs(retry_interval_seconds=1),
            )
            self.on_call = OnCallAlerts(on_call_alerts_queue()).start()

        self.jwt_secret = remembered(
            self.state_dir / "jwt_secret", lambda: secrets.token_urlsafe(48)
        )
        self.webhook_secret = os.environ.get("DEMO_WEBHOOK_SECRET") or remembered(
            self.state_dir / "demo_webhook_secret", new_webhook_secret
        )
        self._configure_functions(self.jwt_secret)
        self.reseed()

        self.functions = {
            name: LocalFunction(name, _load_handler(name), timeout)
            for name, timeout in (
                ("webhook_ingest", 10),
                ("process_event", 60),
                ("admin_api", 15),
                ("website_sync", 30),
                ("reconcile", 120),
            )
        }
        self._api = LocalApiServer(
            "127.0.0.1",
            self.port,
            [
                ("/functions/v1/portal-webhook", self.functions["webhook_ingest"]),
                ("/functions/v1/admin-api", self.functions["admin_api"]),
                ("/functions/v1/website-sync", self.functions["website_sync"]),
                ("/api/v1/website-sync", self.functions["website_sync"]),
            ],
            verbose=self.verbose,
            sites=(self.console_site(),),
        )
        self.port = int(self._api.server_address[1])
        # Known only now when the port was chosen by the OS (tests); the settings are re-read.
        os.environ["PUBLIC_BASE_URL"] = self.base_url
        if self.dynamics_webhooks and self.dynamics is not None:
            # As the step registration of docs/dataverse-mapping.md: HttpHeader auth.
            self.dynamics.post_webhooks(
                self.dynamics_webhook_url,
                {DEMO_DYNAMICS_HEADER: self.dynamics_webhook_key},
                drop_share=self.dynamics_drop_share,
            )
        bootstrap.reset()
        self._api.start()
        LocalLambdaRuntime.register(WEBSITE_SYNC_FUNCTION, self.functions["website_sync"].invoke)
        LocalLambdaRuntime.register(RECONCILE_FUNCTION, self.functions["reconcile"].invoke)
        self.consumer = QueueConsumer(self.aws.event_queue_url, self.functions["process_event"])
        if self.consume:
            self.consumer.start()
            self.push = ReconsiderationPush(
                self.database_url,
                f"{self.base_url}/functions/v1/website-sync/reconsiderations",
                service_role_key(self.jwt_secret),
            ).start()
        if self.consume and self.schedule_on_timer:
            self._scheduler = Scheduler(
                float(os.environ.get("SCHEDULE_SECONDS", "30")),
                self._run_schedules,
                # With reconciliations on the schedule, the first tick at once: the demo
                # organisation's members are imported as soon as everything is up.
                first_after=1.0 if self.reconcile_on_schedule else None,
            ).start()
        return self

    def console_config(self) -> dict[str, Any]:
        """The console's config.json under `make run`: the local sign-in's demo identities
        (docs/console.md, "Signing in"). Served on loopback only, as run.json's tokens are
        readable by this machine's user. Which organisations each may open the console asks
        the API (GET /me, GET /orgs)."""
        assert self.seed is not None
        return {
            "mode": "local",
            # The functions are served from the console's own origin.
            "api_base_url": "",
            "identities": [
                {
                    "id": "global-admin",
                    "role": "global_admin",
                    "email": DEMO_ADMIN_EMAIL,
                    "token": self.seed.admin_token,
                },
                {
                    "id": "org-admin",
                    "role": "org_admin",
                    "email": DEMO_ORG_ADMIN_EMAIL,
                    "token": self.seed.org_admin_token,
                },
                {
                    "id": "coordinator",
                    "role": "coordinator",
                    "email": DEMO_COORDINATOR_EMAIL,
                    "token": self.seed.coordinator_token,
                },
            ],
        }

    def console_site(
        self,
        config: Callable[[], dict[str, Any]] | None = None,
        connect_src: tuple[str, ...] = (),
    ) -> StaticSite:
        """The console as the local server serves it: config.json from `config` (the local
        sign-in's by default), and a CSP that lets it call `connect_src` too (a console in
        supabase mode calls its project's Auth, on another origin)."""
        make_config = config or self.console_config
        return StaticSite(
            prefix=CONSOLE_PREFIX,
            root=CONSOLE,
            documents={"config.json": lambda: json.dumps(make_config()).encode()},
            # The console's npm tooling is not the site; supabase-js's browser bundle from it
            # is, where the deploy step puts it (tools/portal_sync_dev/console_deploy.py).
            excluded=CONSOLE_TOOLING,
            files={SUPABASE_JS: CONSOLE / SUPABASE_JS_SOURCE},
            headers={
                "content-security-policy": console_csp(*connect_src),
                "referrer-policy": "no-referrer",
            },
        )

    def run_schedule(self) -> Any:
        """What the EventBridge schedule does on AWS: certificate sweep, undelivered changes."""
        return self.functions["website_sync"].invoke(_SCHEDULED_EVENT)

    def run_reconcile_schedule(self) -> Any:
        """The reconcile function's schedule: reconciliations that are due, stalled runs."""
        return self.functions["reconcile"].invoke(_SCHEDULED_EVENT)

    def _run_schedules(self) -> None:
        self.run_schedule()
        if self.reconcile_on_schedule:
            self.run_reconcile_schedule()

    def reseed(self) -> DemoSeed:
        """Writes the demo organisation, users and webhook source (idempotent)."""
        assert self.database_url is not None
        self.seed = seed_demo(
            self.database_url,
            self.jwt_secret,
            self.webhook_secret,
            dynamics=self.dynamics,
            demo_members=int(os.environ.get("DEMO_DYNAMICS_MEMBERS", DEMO_DYNAMICS_MEMBERS)),
        )
        self.dynamics_webhook_key = remembered(
            self.state_dir / "demo_dynamics_webhook_key", lambda: secrets.token_urlsafe(32)
        )
        put_source_secret(
            DEMO_DYNAMICS_SOURCE_ID,
            {
                "organization_id": str(self.seed.org_id),
                "enabled": True,
                "mode": "header-key",
                "header_name": DEMO_DYNAMICS_HEADER,
                "keys": [{"value": self.dynamics_webhook_key}],
            },
        )
        if self.dynamics is not None and not self.dynamics_token:
            self.dynamics_token = self.dynamics.issue_token(
                DEMO_DYNAMICS_TENANT, DEMO_DYNAMICS_CLIENT_ID
            )
        if self.functions:
            # Warm functions keep caches (webhook sources, connections) of the state just replaced.
            for name in self.functions:
                _clear_caches(importlib.import_module(f"functions.{name}.app"))
        return self.seed

    @contextmanager
    def consumer_paused(self) -> Iterator[QueueConsumer]:
        """Stops the continuous consumer for a while; the caller may poll by hand meanwhile."""
        assert self.aws is not None and self.consumer is not None
        self.consumer.stop()
        try:
            yield self.consumer
        finally:
            self.consumer = QueueConsumer(self.aws.event_queue_url, self.functions["process_event"])
            self.consumer.start()

    def run_info(self) -> dict[str, Any]:
        assert self.seed is not None
        return {
            "base_url": self.base_url,
            "database_url": self.database_url,
            # What the functions connect with (their own role, under row-level security).
            "functions_database_url": self.functions_database_url,
            "org_id": str(self.seed.org_id),
            "source_id": self.seed.source_id,
            "webhook_secret": self.seed.webhook_secret,
            "admin_token": self.seed.admin_token,
            "org_admin_token": self.seed.org_admin_token,
            "coordinator_token": self.seed.coordinator_token,
            "dynamics_sandbox_url": self.dynamics.url if self.dynamics else None,
            "dynamics_sandbox_token": self.dynamics_token or None,
            "dynamics_sandbox_gateway_url": self.dynamics.gateway_url if self.dynamics else None,
            # What an administrator enters to connect an organisation to the stand-in's
            # environment (POST /orgs with `dynamics`, or PUT .../integration).
            "dynamics_sandbox_client": {
                "tenant_id": DEMO_DYNAMICS_TENANT,
                "client_id": DEMO_DYNAMICS_CLIENT_ID,
                "client_secret": self.seed.dynamics_client_secret,
            }
            if self.seed.dynamics_client_secret
            else None,
            # Where the stand-in posts Dataverse's webhooks (header DEMO_DYNAMICS_HEADER).
            "dynamics_webhook_url": self.dynamics_webhook_url,
            "dynamics_webhook_header": DEMO_DYNAMICS_HEADER,
            "demo_mentor_id": str(self.seed.mentor_id),
            "console_url": self.console_url,
            "webhook_url": f"{self.base_url}/functions/v1/portal-webhook/{self.seed.source_id}",
            "event_queue_url": self.aws.event_queue_url if self.aws else None,
            "dead_letter_queue_url": self.aws.dead_letter_queue_url if self.aws else None,
            "aws_endpoint_url": self.aws.endpoint_url if self.aws else None,
            # The JSON list of what was published to the on-call topic.
            "oncall_alerts_url": self.on_call.url if self.on_call else None,
        }

    def stop(self, stop_database: bool = True) -> None:
        if self._scheduler is not None:
            self._scheduler.stop()
        if self.consumer is not None:
            self.consumer.stop()
        if self.push is not None:
            self.push.stop()
        if self.dynamics is not None:
            self.dynamics.stop()
        if self._api is not None:
            self._api.shutdown()
            self._api.server_close()
        if self.on_call is not None:
            self.on_call.stop()
        if self._moto is not None:
            self._moto.stop()
        if self.postgres is not None and stop_database:
            self.postgres.stop()

    def _configure_functions(self, jwt_secret: str) -> None:
        """The environment the template gives the functions on AWS, pointed at local parts."""
        assert self.aws is not None and self.database_url is not None
        os.environ.update(
            {
                "DATABASE_URL": self.functions_database_url,
                "EVENT_QUEUE_URL": self.aws.event_queue_url,
                "DEAD_LETTER_QUEUE_URL": self.aws.dead_letter_queue_url,
                "SOURCE_SECRET_PREFIX": SOURCE_SECRET_PREFIX,
                "MAX_RECEIVE_COUNT": str(MAX_RECEIVE_COUNT),
                # Locally a failed event comes back within seconds, not minutes.
                "RETRY_BASE_SECONDS": os.environ.get("RETRY_BASE_SECONDS", "1"),
                "RETRY_MAX_SECONDS": os.environ.get("RETRY_MAX_SECONDS", "4"),
                "DATABASE_RETRY_AFTER_SECONDS": os.environ.get("DATABASE_RETRY_AFTER_SECONDS", "2"),
                "PUBLIC_BASE_URL": self.base_url,
                "WEBSITE_STATE_MACHINE_ARN": self.aws.state_machine_arn,
                "ON_CALL_TOPIC_ARN": self.aws.on_call_topic_arn,
                # Locally a failed visibility attempt is retried after ~1 s, not minutes.
                "VISIBILITY_MAX_RETRIES": os.environ.get("VISIBILITY_MAX_RETRIES", "3"),
                "VISIBILITY_RETRY_INTERVAL_SECONDS": os.environ.get(
                    "VISIBILITY_RETRY_SECONDS", "1"
                ),
                "SYNC_RUN_STATE_MACHINE_ARN": self.aws.sync_run_state_machine_arn,
                # Locally a webhook arrives within a second: the demo's dropped webhooks are
                # drift as soon as a reconciliation finds their changes.
                "RECONCILE_DRIFT_GRACE_SECONDS": os.environ.get(
                    "RECONCILE_DRIFT_GRACE_SECONDS", "0"
                ),
                "ENTRA_AUTHORITY_URL": self.dynamics.url,
                # The stand-in is plain http on loopback (docs/security.md, "Dynamics base URL").
                "ALLOW_LOCAL_DYNAMICS": "true",
                "DYNAMICS_TIMEOUT_SECONDS": os.environ.get("DYNAMICS_TIMEOUT_SECONDS", "5"),
                "SUPABASE_JWT_SECRET": jwt_secret,
                "POWERTOOLS_SERVICE_NAME": "portal-sync",
                "POWERTOOLS_METRICS_NAMESPACE": "PortalSync",
                "POWERTOOLS_METRICS_DISABLED": os.environ.get(
                    "POWERTOOLS_METRICS_DISABLED", "true"
                ),
                "POWERTOOLS_LOG_LEVEL": os.environ.get("POWERTOOLS_LOG_LEVEL", "WARNING"),
            }
        )
        from portal_sync import bootstrap

        bootstrap.reset()


CONSOLE_PREFIX = "/console"


def console_csp(*connect_src: str) -> str:
    """The console's Content-Security-Policy. Everything it loads is its own (no CDN, no inline
    script or style); it calls its own origin and the origins named: the functions' and the
    Supabase project's when they are elsewhere. A deployment's CloudFront sends the same policy
    (template.yaml, ConsoleHeaders; docs/console.md, "Deployment")."""
    connect = " ".join(("'self'", *connect_src))
    return (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        f"connect-src {connect}; font-src 'self'; object-src 'none'; base-uri 'none'; "
        "form-action 'self'; frame-ancestors 'none'"
    )


# Under `make run` the functions are on the console's origin.
CONSOLE_CSP = console_csp()

_SCHEDULED_EVENT = {"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}}


def _load_handler(name: str) -> Any:
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    module = importlib.import_module(f"functions.{name}.app")
    # Cached dependencies were built for another environment (a previous test's system).
    _clear_caches(module)
    return module.handler


def _clear_caches(module: Any) -> None:
    from portal_sync import bootstrap

    bootstrap.reset()
    for attribute in vars(module).values():
        clear = getattr(attribute, "cache_clear", None)
        if callable(clear):
            clear()
