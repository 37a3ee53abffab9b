"""Cold start of each function from the built artifact, against a bare `import boto3` and
against floors of its own.

`make bench-cold` (`python -m portal_sync_dev.bench.cold_start`) measures, for every function of
template.yaml, in fresh processes laid out as Lambda lays them out:

    sys.path = <function dir> (/var/task), <layer>/python (/opt/python), <runtime dir> (/var/runtime)

where the runtime dir holds only what the Lambda Python runtime provides (boto3, botocore and their
dependencies, snapshot_restore_py; taken from the venv) and no site-packages are loaded (`python
-S`), so nothing the layer lacks can sneak in from the development environment. Per process it
times `import app` and the first invocation, and compares them with a process that only does
`import boto3`, measured in the same run, same flags, same layout. Several repetitions; medians.
`-X importtime` then names the packages that dominate each function's import, and what its first
call imports.

Each function is measured with two kinds of first invocation, each in processes of its own:

- a *trivial* one that needs no other system: a CORS preflight for HTTP functions, an empty
  batch for the queue consumer (its database connection is refused at once). This is what the
  target was first measured with; it flatters any import deferred to the first request.
- a *real* one, what the function exists for, against local stand-ins on loopback: PostgreSQL
  (embedded, migrated, seeded as `make run` seeds it) and AWS (moto's server, plain HTTP). A
  signed webhook for the ingest, a batch with one queued event for the consumer, an
  authenticated read for the two JWT APIs (see REAL_CALLS). As deployed, the functions get the
  ARNs of their secrets (the database URL, the Supabase JWT secret), not the values, and read
  them from Secrets Manager at the first connection. Its time includes the waits for those
  stand-ins, so its CPU time is reported next to it.

And against two floors of its own, measured in the same rounds (same layout, same flags):

- *its libraries bare*: a process that imports the third-party modules its `import app`
  imported (read from its own `-X importtime` and `sys.modules`: `library_modules`) and nothing
  of ours: what our code adds on top of the libraries.
- *a bare handler doing the same first I/O*, per real first call: `import boto3` (and psycopg
  when the function uses PostgreSQL), then the same calls to Secrets Manager, PostgreSQL and SQS
  as the function's first call makes (BareIO), and nothing else.

The artifact is `make build`'s .aws-sam/build when its wheels run on this machine (same CPU
architecture and Python). On another architecture it is a twin built for this machine
(`build_all(architecture=...)`): the same layout, the same pinned wheels' versions for this CPU,
unchecked-hash pycs. Only when this Python is not the runtime's (or this is not Linux) are the
functions and portal_sync compiled by this Python and the third-party packages taken from the
venv.

Results go to the "Cold start" section of BENCHMARKS.md (other sections are left alone: they
are `make bench`'s, which reads this section's first table for its summary); the paragraphs
around the tables are methods.md's `cold start` sections.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import platform
import re
import secrets
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from portal_sync_dev.bench.prose import Prose
from portal_sync_dev.build import (
    DEFAULT_OUT,
    MACHINES,
    ROOT,
    TEMPLATE,
    Target,
    build_all,
    build_function,
    build_layer,
    load_target,
    native_problems,
    read_template,
)

BENCHMARKS = ROOT / "BENCHMARKS.md"
SECTION = "## Cold start"
TARGET_RATIO = 1.5
IMPORTTIME_RUNS = 3
# What the Lambda Python runtime itself provides (on /var/runtime), besides the standard library:
# boto3 and its dependencies, and the SnapStart hooks' library (the layer ships neither).
RUNTIME_PACKAGES = (
    "boto3",
    "botocore",
    "s3transfer",
    "jmespath",
    "urllib3",
    "dateutil",
    "six",
    "snapshot_restore_py",
)
# Settings the functions read at import or on the first call; nothing here reaches a network.
ENVIRONMENT = {
    "AWS_REGION": "eu-north-1",
    "AWS_DEFAULT_REGION": "eu-north-1",
    "AWS_LAMBDA_FUNCTION_NAME": "bench",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
    "POWERTOOLS_SERVICE_NAME": "portal-sync",
    "POWERTOOLS_METRICS_NAMESPACE": "PortalSync",
    "POWERTOOLS_LOG_LEVEL": "WARNING",
    # A Unix socket that does not exist: the consumer's connection fails at once.
    "DATABASE_URL": "postgresql:///bench?host=/nonexistent-portal-sync-bench",
    "EVENT_QUEUE_URL": "https://sqs.eu-north-1.amazonaws.com/123456789012/bench",
    "SUPABASE_JWT_SECRET": "bench-secret-bench-secret-bench-secret",
    # Every variable a function's settings require (portal_sync/settings.py): missing, the cold
    # start fails. Nothing is started or read from them for the benchmark's events.
    "DEAD_LETTER_QUEUE_URL": "https://sqs.eu-north-1.amazonaws.com/123456789012/bench-dlq",
    "WEBSITE_STATE_MACHINE_ARN": "arn:aws:states:eu-north-1:123456789012:stateMachine:bench",
    "SYNC_RUN_STATE_MACHINE_ARN": "arn:aws:states:eu-north-1:123456789012:stateMachine:runs",
    # As a stack deployed with TracingMode=PassThrough: the Tracer is never created. With Active,
    # creating it imports the X-Ray SDK (docs/decisions.md, the lazy Tracer).
    "POWERTOOLS_TRACE_DISABLED": "true",
}
STATE_MACHINE_ARN = ENVIRONMENT["WEBSITE_STATE_MACHINE_ARN"]


@dataclass(frozen=True)
class BareIO:
    """A bare handler's first call: after `import boto3` (and `import psycopg` with `postgres`),
    the I/O calls a function's real first call makes, and nothing else.

    `script` runs with boto3, psycopg, os and `given` (the seeded ids: LocalServices.given) in
    scope, reads the same environment as the function (the secrets' ARNs, the queue's URL) and
    sets `status`, which must be `expected` (a floor that failed would flatter the function).
    Its PostgreSQL statements are one-row ones of the functions' tables, as many round trips as
    the function's: the floor is the I/O, not our queries' plans."""

    covers: str
    script: str
    expected: Any
    postgres: bool = True


# What every bare-I/O script can call: one-row statements the functions' role may run (under
# row-level security), one round trip each. The scripts' connections prepare nothing, as the
# functions' do not (a prepared statement costs a round trip of its own).
_ROWS = """
def read_row(conn):
    return conn.execute("select id from organizations where id = %s", (given["org_id"],)).fetchone()

def write_row(conn):
    return conn.execute(
        "insert into webhook_receipts (id, source_id, organization_id, delivery_id, outcome,"
        " signature_mode, received_at) values (gen_random_uuid(), %s, %s, %s, 'accepted',"
        " 'standard-webhooks', now()) returning id",
        (given["source_id"], given["org_id"], "bare-" + os.urandom(8).hex()),
    ).fetchone()
"""


def _one_transaction(
    *, jwt_secret: bool, reads: int, writes: int = 0, nested_reads: int = 0
) -> str:
    """A bare floor's script: the secrets read (the JWT secret when the first call verifies a
    token), a connection and one transaction of one-row reads and writes (`nested_reads` in a
    savepoint); its status is how many rows came back."""
    jwt = (
        'sm.get_secret_value(SecretId=os.environ["SUPABASE_JWT_SECRET_ARN"])\n'
        if jwt_secret
        else ""
    )
    nested = (
        f"    with conn.transaction():\n        rows += [read_row(conn) for _ in range({nested_reads})]\n"
        if nested_reads
        else ""
    )
    return (
        _ROWS
        + '\nsm = boto3.client("secretsmanager")\n'
        + jwt
        + 'url = sm.get_secret_value(SecretId=os.environ["DATABASE_URL_SECRET_ARN"])["SecretString"]\n'
        + "with psycopg.connect(url, prepare_threshold=None) as conn, conn.transaction():\n"
        + f"    rows = [read_row(conn) for _ in range({reads})]"
        + (f" + [write_row(conn) for _ in range({writes})]" if writes else "")
        + "\n"
        + nested
        + "status = sum(row is not None for row in rows)\n"
    )


SQS_SEND = BareIO(
    "`boto3.client('sqs').send_message(...)` right after `import boto3`, nothing else: the "
    "floor of any function whose first request calls AWS",
    """
sent = boto3.client("sqs").send_message(QueueUrl=os.environ["EVENT_QUEUE_URL"], MessageBody="bench")
status = sent["ResponseMetadata"]["HTTPStatusCode"]
""",
    200,
    postgres=False,
)


@dataclass(frozen=True)
class RealCall:
    """A real first invocation: what it covers, the answer that proves it did the work (a
    measurement of a request that failed would flatter the function), and its bare-I/O floor."""

    function: str
    label: str
    covers: str
    expected: Any
    floor: BareIO


# The I/O of each first call as the code makes it (read there, and checked with a libpq trace
# and botocore's calls logged). The secrets are read as the functions read them: the Supabase
# JWT secret when the first token is verified, the database URL when the first connection is
# opened (bootstrap/shared.py). PostgreSQL round trips: BEGIN, the statements (psycopg pipelines
# some: the consumer's 8 statements take 5), COMMIT.
REAL_CALLS = (
    RealCall(
        "WebhookIngest",
        "signed webhook",
        "a Standard Webhooks `membership.created` signed for the seeded source: Secrets Manager "
        "GetSecretValue of the source's configuration, then of the database URL, PostgreSQL "
        "connection (autocommit) and the duplicate check (one statement), SQS SendMessage",
        202,
        BareIO(
            "GetSecretValue of the source's configuration and of the database URL, PostgreSQL "
            "connection (autocommit), one `insert ... returning`, SQS SendMessage",
            _ROWS
            + """
sm = boto3.client("secretsmanager")
sm.get_secret_value(SecretId=given["source_secret"])
url = sm.get_secret_value(SecretId=os.environ["DATABASE_URL_SECRET_ARN"])["SecretString"]
with psycopg.connect(url, autocommit=True, prepare_threshold=None) as conn:
    row = write_row(conn)
boto3.client("sqs").send_message(QueueUrl=os.environ["EVENT_QUEUE_URL"], MessageBody="bench")
status = row is not None
""",
            True,
        ),
    ),
    RealCall(
        "ProcessEvent",
        "batch of one event",
        "one queued `membership.created` of a new member: GetSecretValue of the database URL, "
        "PostgreSQL connection, one transaction (7 round trips) reading the event's state and "
        "the organisation's settings and writing the receipt, profile, membership and sync "
        "log; not a peer mentor, so no website-visibility work (the outbox and the Step "
        "Functions client are only touched after a mentor's membership changed)",
        {"batchItemFailures": []},
        BareIO(
            "GetSecretValue of the database URL, PostgreSQL connection, one transaction of 7 "
            "round trips: BEGIN, three one-row reads, two one-row inserts, COMMIT",
            _one_transaction(jwt_secret=False, reads=3, writes=2),
            5,
        ),
    ),
    RealCall(
        "AdminApi",
        "GET features",
        "`GET /orgs/{id}/features` (what the member app asks) with a global administrator's "
        "HS256 token: GetSecretValue of the JWT secret, JWT verified, GetSecretValue of the "
        "database URL, PostgreSQL connection, authority and feature queries in one transaction "
        "(7 round trips), validated response",
        200,
        BareIO(
            "GetSecretValue of the JWT secret and of the database URL, PostgreSQL connection, "
            "one transaction of 7 round trips: BEGIN, five one-row reads, COMMIT",
            _one_transaction(jwt_secret=True, reads=5),
            5,
        ),
    ),
    RealCall(
        "AdminApi",
        "GET sync/status",
        "`GET /orgs/{id}/sync/status` (the console's status page), as `GET features` with the "
        "sync summary and run queries instead of the features' (14 round trips, a savepoint "
        "for the runs' part; the pending count comes from PostgreSQL: no AWS call)",
        200,
        BareIO(
            "GetSecretValue of the JWT secret and of the database URL, PostgreSQL connection, "
            "one transaction of 14 round trips: BEGIN, eight one-row reads, SAVEPOINT, two "
            "more, RELEASE, COMMIT",
            _one_transaction(jwt_secret=True, reads=8, nested_reads=2),
            10,
        ),
    ),
    RealCall(
        "Reconcile",
        "scheduled tick",
        "the EventBridge schedule's event with no organisation due (the demo organisation "
        "reconciled a minute ago): GetSecretValue of the database URL, PostgreSQL connection, "
        "the due and stalled queries in one transaction; no Dynamics, no Step Functions client",
        {"started": 0, "resumed": 0},
        BareIO(
            "GetSecretValue of the database URL, PostgreSQL connection, one transaction: BEGIN, "
            "two one-row reads, COMMIT",
            _one_transaction(jwt_secret=False, reads=2),
            2,
        ),
    ),
    RealCall(
        "WebsiteSync",
        "GET mentor status",
        "`GET /{mentor}/status` with a global administrator's HS256 token: GetSecretValue of the "
        "JWT secret, JWT verified, GetSecretValue of the database URL, PostgreSQL connection, "
        "authority and status queries in one transaction (7 round trips), validated response",
        200,
        BareIO(
            "GetSecretValue of the JWT secret and of the database URL, PostgreSQL connection, "
            "one transaction of 7 round trips: BEGIN, five one-row reads, COMMIT",
            _one_transaction(jwt_secret=True, reads=5),
            5,
        ),
    ),
)

# What a process runs: argv[1] is what it does (APP: `import app`, then the handler's first call
# with the event in argv[2]; BOTO3: `import boto3`; LIBRARIES: the modules listed in argv[2];
# BARE_IO: `import boto3` (and psycopg), then a BareIO script). With argv[3] `modules`, the
# report lists the modules loaded before the first call.
APP, BOTO3, LIBRARIES, BARE_IO = "app", "boto3", "libraries", "bare I/O"
CHILD = r"""
import json, os, sys, time
mode, payload = sys.argv[1], json.loads(sys.argv[2])
if mode == "bare I/O":
    script = compile(payload["script"], "<bare I/O>", "exec")
t0 = time.perf_counter()
c0 = time.process_time()
if mode == "app":
    import app
elif mode == "libraries":
    # As every app.py imports: the cyclic collector paused, what was imported frozen.
    import gc
    gc.disable()
    for name in payload:
        __import__(name)
    gc.freeze()
    gc.enable()
else:
    import boto3
    if payload.get("postgres"):
        import psycopg
t1 = time.perf_counter()
c1 = time.process_time()
# In the order their imports began; the first call's own imports come after.
imported = list(sys.modules) if sys.argv[3:] == ["modules"] else None
status = None
if mode == "app":
    class Context:
        function_name = "bench"
        memory_limit_in_mb = 512
        invoked_function_arn = "arn:aws:lambda:eu-north-1:123456789012:function:bench"
        aws_request_id = "bench"

        def get_remaining_time_in_millis(self):
            return 10000

    response = app.handler(payload, Context())
    status = response.get("statusCode", response) if isinstance(response, dict) else response
elif mode == "libraries":
    status = sum(name in sys.modules for name in payload)
elif mode == "bare I/O":
    scope = {"boto3": boto3, "os": os, "given": payload["given"]}
    if payload.get("postgres"):
        scope["psycopg"] = psycopg
    exec(script, scope)
    status = scope["status"]
t2 = time.perf_counter()
c2 = time.process_time()
sys.stdout.flush()
# Where the measured code came from (checked against the layout; None: not imported).
where = {name: getattr(sys.modules.get(name), "__file__", None)
         for name in ("app", "portal_sync", "boto3", "psycopg", "pydantic")}
report = {"import_ms": (t1 - t0) * 1000, "import_cpu_ms": (c1 - c0) * 1000,
          "first_call_ms": (t2 - t1) * 1000, "first_call_cpu_ms": (c2 - c1) * 1000,
          "status": status, "where": where}
if imported is not None:
    report["modules"] = imported
sys.stderr.write("BENCH " + json.dumps(report) + "\n")
"""


@dataclass(frozen=True)
class Host:
    """The machine measuring: its CPU as the template names architectures, its Python."""

    architecture: str | None  # x86_64, arm64; None: neither (no twin can be built for it)
    python: str
    platform: str

    @classmethod
    def this(cls) -> Host:
        machine = platform.machine().lower()
        machine = {"amd64": "x86_64", "arm64": "aarch64"}.get(machine, machine)
        architecture = next((name for name, m in MACHINES.items() if m == machine), None)
        running = f"{sys.version_info.major}.{sys.version_info.minor}"
        return cls(architecture, running, sys.platform)


# Where the measured code comes from (the header says which).
BUILT, TWIN, VENV = "built", "twin", "venv"
SQS_FLOOR = "boto3/SQS SendMessage"


@dataclass(frozen=True)
class Layout:
    """Where the code comes from: Lambda's /var/task, /opt/python and /var/runtime."""

    functions: dict[str, Path]
    layer_python: Path
    runtime_dir: Path
    source: str  # BUILT, TWIN or VENV
    target: Target
    host: Host

    @property
    def third_party_from_venv(self) -> bool:
        return self.source == VENV

    def path_for(self, function: str | None) -> list[Path]:
        paths = [self.layer_python, self.runtime_dir]
        if self.third_party_from_venv:
            paths.append(Path(sysconfig.get_paths()["purelib"]))
        return [self.functions[function], *paths] if function else paths


@dataclass(frozen=True)
class Scenario:
    """One kind of process measured: what it runs (`mode`), in whose layout (`function`; None:
    the layer and the runtime only), and for APP the function's first invocation."""

    name: str
    function: str | None
    call: str
    event: Callable[[], dict[str, Any]] | None = None
    expected: Any = None
    # Added to ENVIRONMENT; None removes a variable.
    environment: Mapping[str, str | None] = field(default_factory=dict)
    real: bool = False
    covers: str = ""
    mode: str = APP
    libraries: tuple[str, ...] = ()  # LIBRARIES: what is imported
    io: BareIO | None = None  # BARE_IO: what is done
    given: Mapping[str, str] = field(default_factory=dict)  # BARE_IO: the seeded ids

    @property
    def floor(self) -> bool:
        """A floor of one function's (its libraries bare, a bare handler's I/O), not its code.
        The bare SQS call is not: it is every function's floor, a row `make bench` reads."""
        return self.mode in (LIBRARIES, BARE_IO) and self.name != SQS_FLOOR

    def arguments(self) -> list[str]:
        payload: Any = {}
        if self.mode == APP and self.event:
            # A new event per process: the real ones carry fresh delivery and contact ids.
            payload = self.event()
        elif self.mode == LIBRARIES:
            payload = list(self.libraries)
        elif self.mode == BARE_IO and self.io:
            payload = {"script": self.io.script, "postgres": self.io.postgres, "given": self.given}
        return [self.mode, json.dumps(payload)]


def libraries_floor_name(function: str) -> str:
    return f"{function}/libraries bare"


def io_floor_name(function: str, label: str) -> str:
    return f"{function}/{label}/bare I/O"


@dataclass
class Measurement:
    scenario: Scenario
    import_ms: list[float] = field(default_factory=list)
    import_cpu_ms: list[float] = field(default_factory=list)
    first_call_ms: list[float] = field(default_factory=list)
    first_call_cpu_ms: list[float] = field(default_factory=list)
    process_ms: list[float] = field(default_factory=list)
    status: Any = None
    dominant: list[tuple[str, float]] = field(default_factory=list)
    direct: list[tuple[str, float]] = field(default_factory=list)
    during_call: list[tuple[str, float]] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.scenario.name

    @property
    def total_ms(self) -> float:
        return statistics.median(
            i + f for i, f in zip(self.import_ms, self.first_call_ms, strict=True)
        )

    @property
    def total_cpu_ms(self) -> float:
        return statistics.median(
            i + f for i, f in zip(self.import_cpu_ms, self.first_call_cpu_ms, strict=True)
        )


# -- events ------------------------------------------------------------------------------------


def preflight(path: str) -> dict[str, Any]:
    """An API Gateway HTTP API (payload 2.0) CORS preflight: no credentials, no database."""
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {
            "origin": "https://app.example.org",
            "access-control-request-method": "POST",
            "access-control-request-headers": "authorization, content-type",
        },
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "bench",
            "domainName": "bench.execute-api.eu-north-1.amazonaws.com",
            "domainPrefix": "bench",
            "http": {
                "method": "OPTIONS",
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "192.0.2.1",
                "userAgent": "bench",
            },
            "requestId": "bench",
            "routeKey": "$default",
            "stage": "$default",
            "time": "23/Nov/2026:10:00:00 +0000",
            "timeEpoch": 0,
        },
        "isBase64Encoded": False,
    }


def first_events(template_path: Path = TEMPLATE) -> dict[str, dict[str, Any]]:
    """Per function, the trivial first invocation: from its first HTTP route or its queue."""
    events = {}
    for name, resource in read_template(template_path)["Resources"].items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        sources = resource["Properties"].get("Events", {}).values()
        kinds = {source["Type"]: source.get("Properties", {}) for source in sources}
        if "HttpApi" in kinds:
            path = re.sub(r"\{proxy\+\}", "bench/status", kinds["HttpApi"]["Path"])
            events[name] = preflight(re.sub(r"\{\w+\}", "bench", path))
        elif "SQS" in kinds:
            events[name] = {"Records": []}
        else:
            events[name] = {}
    return events


def _trivial_call(event: dict[str, Any]) -> str:
    if "Records" in event:
        return "empty batch, database refused"
    return "CORS preflight" if event.get("requestContext") else "empty event"


@dataclass(frozen=True)
class LocalServices:
    """What the real first invocations talk to, all on loopback; `given`: the seeded ids the
    bare-I/O floors need (the functions find them in their events and secrets)."""

    environment: dict[str, str | None]
    events: dict[str, Callable[[], dict[str, Any]]]
    given: dict[str, str]


@contextmanager
def local_services(work_dir: Path) -> Iterator[LocalServices]:
    """PostgreSQL (embedded, or a throwaway database on DATABASE_URL's server, as `make bench`
    does), moto's server with the queue, the webhook source's secret and the functions' own
    secrets (the database URL, the Supabase JWT secret), the seeded demo organisation with its
    administrator and mentor; and the events of REAL_CALLS."""
    import psycopg

    from portal_sync_dev.bench.services import BenchDatabase
    from portal_sync_dev.bench.workload import ingest_event, sqs_records
    from portal_sync_dev.local.aws_local import (
        SOURCE_SECRET_PREFIX,
        provision,
        start_moto,
        use_endpoint,
    )
    from portal_sync_dev.local.dataverse_standin import DataverseStandIn
    from portal_sync_dev.local.lambda_http import build_http_event
    from portal_sync_dev.local.seed import new_webhook_secret, seed_demo

    with BenchDatabase(work_dir) as database:
        # start_moto (MOTO_PORT, which moto's Step Functions call Lambda back on) and
        # use_endpoint (AWS_ENDPOINT_URL) point this process at this moto; afterwards, back: a
        # test session's own emulator must not be replaced by one that stopped.
        before = dict(os.environ)
        moto, endpoint = start_moto()
        dynamics = DataverseStandIn().start()
        try:
            use_endpoint(endpoint)
            aws = provision(endpoint)
            import boto3

            queue_arn = boto3.client("sqs").get_queue_attributes(
                QueueUrl=aws.event_queue_url, AttributeNames=["QueueArn"]
            )["Attributes"]["QueueArn"]
            jwt_secret = secrets.token_urlsafe(48)
            seed = seed_demo(database.url, jwt_secret, new_webhook_secret(), dynamics=dynamics)
            org = str(seed.org_id)
            # As template.yaml deploys them: the functions get the ARNs and read the values.
            secrets_manager = boto3.client("secretsmanager")
            database_url_arn = secrets_manager.create_secret(
                Name="portal-sync/bench/database-url", SecretString=database.functions_url
            )["ARN"]
            jwt_secret_arn = secrets_manager.create_secret(
                Name="portal-sync/bench/supabase-jwt-secret", SecretString=jwt_secret
            )["ARN"]

            def authenticated_get(path: str) -> dict[str, Any]:
                headers = {"authorization": f"Bearer {seed.admin_token}", "host": "bench"}
                return build_http_event("GET", path, headers, b"", "192.0.2.1")

            admin_api = f"/functions/v1/admin-api/orgs/{org}"
            # Keyed by RealCall.label.
            events: dict[str, Callable[[], dict[str, Any]]] = {
                "signed webhook": lambda: ingest_event(seed.source_id, seed.webhook_secret)[0],
                "batch of one event": lambda: {
                    "Records": sqs_records(org, seed.source_id, 1, queue_arn)
                },
                "GET features": lambda: authenticated_get(f"{admin_api}/features"),
                "GET sync/status": lambda: authenticated_get(f"{admin_api}/sync/status"),
                "GET mentor status": lambda: authenticated_get(
                    f"/functions/v1/website-sync/{seed.mentor_id}/status"
                ),
                "scheduled tick": lambda: {
                    "source": "aws.events",
                    "detail-type": "Scheduled Event",
                },
            }
            # Reconciled a minute ago: the tick finds nothing due.
            with psycopg.connect(database.url, autocommit=True) as conn:
                conn.execute(
                    "insert into portal_sync_runs (organization_id, kind, phase, tables,"
                    " started_at, finished_at) values (%s, 'reconcile', 'succeeded', '{}',"
                    " now() - interval '1 minute', now())",
                    (seed.org_id,),
                )
            environment: dict[str, str | None] = {
                # Not the values: the functions read them from Secrets Manager, as deployed.
                "DATABASE_URL": None,
                "SUPABASE_JWT_SECRET": None,
                "DATABASE_URL_SECRET_ARN": database_url_arn,
                "SUPABASE_JWT_SECRET_ARN": jwt_secret_arn,
                "AWS_ENDPOINT_URL": endpoint,
                "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing",
                "EVENT_QUEUE_URL": aws.event_queue_url,
                "DEAD_LETTER_QUEUE_URL": aws.dead_letter_queue_url,
                "WEBSITE_STATE_MACHINE_ARN": STATE_MACHINE_ARN,
                "ENTRA_AUTHORITY_URL": dynamics.url,
                "ALLOW_LOCAL_DYNAMICS": "true",
            }
            given = {
                "org_id": org,
                "source_id": seed.source_id,
                "source_secret": f"{SOURCE_SECRET_PREFIX}{seed.source_id}",
                "mentor_id": str(seed.mentor_id),
            }
            yield LocalServices(environment, events, given)
        finally:
            dynamics.stop()
            moto.stop()
            os.environ.clear()
            os.environ.update(before)


def scenarios(services: LocalServices | None, template_path: Path = TEMPLATE) -> list[Scenario]:
    """`import boto3` (and with services, one SQS call after it: the floor of any function
    whose first request calls AWS), then per function its trivial and its real first calls,
    each real one followed by its bare-I/O floor. The libraries floors need the artifact's
    imports: `with_library_floors` adds them."""
    found = [Scenario("boto3", None, "", mode=BOTO3)]
    if services is not None:
        found.append(
            Scenario(
                SQS_FLOOR,
                None,
                "SQS SendMessage",
                expected=SQS_SEND.expected,
                environment=services.environment,
                real=True,
                covers=SQS_SEND.covers,
                mode=BARE_IO,
                io=SQS_SEND,
            )
        )
    for function, event in first_events(template_path).items():
        found.append(
            Scenario(f"{function}/trivial", function, _trivial_call(event), lambda e=event: e)
        )
        for real in REAL_CALLS:
            if services is None or real.function != function:
                continue
            found.append(
                Scenario(
                    f"{function}/{real.label}",
                    function,
                    real.label,
                    services.events[real.label],
                    expected=real.expected,
                    environment=services.environment,
                    real=True,
                    covers=real.covers,
                )
            )
            found.append(
                Scenario(
                    io_floor_name(function, real.label),
                    None,
                    f"{real.function}'s {real.label}",
                    expected=real.floor.expected,
                    environment=services.environment,
                    real=True,
                    covers=real.floor.covers,
                    mode=BARE_IO,
                    io=real.floor,
                    given=services.given,
                )
            )
    return found


def with_library_floors(layout: Layout, found: list[Scenario]) -> list[Scenario]:
    """`found` with, after each function's trivial call, the process importing its libraries
    bare: the third-party modules its `import app` imports (`library_modules`, from one
    `-X importtime` run of that trivial call and the modules loaded when `import app` returned)."""
    result = []
    for scenario in found:
        result.append(scenario)
        function = scenario.function
        if function is None or scenario.real or scenario.mode != APP:
            continue
        arguments = [*scenario.arguments(), "modules"]
        timing, importtime, _ = _run(layout, scenario, "-X", "importtime", arguments=arguments)
        own = own_modules(layout.functions[function])
        modules = library_modules(importtime, own, loaded=timing["modules"])
        if not modules:
            raise SystemExit(f"{function}: no third-party import found in its -X importtime")
        result.append(
            Scenario(
                libraries_floor_name(function),
                function,
                f"{len(modules)} modules of {len({m.split('.')[0] for m in modules})} packages",
                expected=len(modules),
                mode=LIBRARIES,
                libraries=tuple(modules),
            )
        )
    return result


# -- layout ------------------------------------------------------------------------------------


def runtime_dir(dest: Path) -> Path:
    """A stand-in for /var/runtime: links to the venv's copies of what Lambda provides."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in RUNTIME_PACKAGES:
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None:
            raise SystemExit(f"{name} is not installed; run `make install`")
        origin = Path(spec.origin)
        source = origin.parent if origin.name == "__init__.py" else origin
        link = dest / source.name
        if not link.exists():
            link.symlink_to(source, target_is_directory=source.is_dir())
    return dest


def artifact_source(target: Target, host: Host, built: Path) -> str:
    """Which code is measured: BUILT, `make build`'s artifact (`built`: its layer's python/),
    when this machine loads its wheels; else TWIN, one built for this CPU with the same wheels'
    versions; VENV only where no wheel of the layer would load (another Python, not Linux)."""
    if host.python != target.python_version or host.platform != "linux" or not host.architecture:
        return VENV
    if (
        host.architecture == target.architecture
        and built.is_dir()
        and any(built.glob("*.dist-info"))
        and not native_problems(built, target)
    ):
        return BUILT
    return TWIN


def prepare(
    artifacts: Path, scratch: Path, template_path: Path = TEMPLATE, host: Host | None = None
) -> Layout:
    host = host or Host.this()
    target = load_target(template_path)
    runtime = runtime_dir(scratch / "runtime")
    layer = target.layers[0]
    artifacts = artifacts.absolute()  # PYTHONPATH is read from each function's directory
    built = artifacts / layer.logical_id / "python"
    source = artifact_source(target, host, built)
    if source == BUILT:
        functions = {f.logical_id: artifacts / f.logical_id for f in target.functions}
        return Layout(functions, built, runtime, source, target, host)
    if source == TWIN:
        # The deployed layout but for the CPU: the layer's wheels for this machine, at the
        # versions the artifact pins (the venv's), unchecked-hash pycs.
        print(
            f"building the {host.architecture} twin of the {target.architecture} artifact "
            "(pip downloads its wheels)",
            file=sys.stderr,
            flush=True,
        )
        twin = build_all(
            scratch / "build",
            template_path=template_path,
            architecture=host.architecture,
            dependencies=True,
            zips_dir=None,
        )
        python = twin.layers[layer.logical_id] / "python"
        return Layout(twin.functions, python, runtime, source, target, host)
    # The builder compiles only for the runtime's Python; these pycs are this Python's, and the
    # third-party packages are the venv's.
    here = replace(target, runtime=f"python{host.python}")
    out = scratch / "build"
    functions = {
        f.logical_id: build_function(f, out / f.logical_id, here) for f in target.functions
    }
    python = build_layer(layer, out / layer.logical_id, here, dependencies=False) / "python"
    return Layout(functions, python, runtime, source, target, host)


@dataclass(frozen=True)
class ArtifactContents:
    """One directory a function loads code from (its own, or the layer's python/): its files,
    their bytes, and how many of them are the console's (the same content as a file the
    console serves)."""

    name: str
    files: int
    size: int
    console_files: int


def console_in_artifacts(layout: Layout) -> tuple[int, int, list[ArtifactContents]]:
    """The console's served files (count, bytes) and what each artifact holds of them: the
    console adds nothing to a cold start only if it is in no function's artifact."""
    from portal_sync_dev.console_deploy import served_files

    served = list(served_files(bundle_required=False).values())
    digests = {hashlib.sha256(path.read_bytes()).digest() for path in served}
    places = {**layout.functions, "layer (python/)": layout.layer_python}
    rows = []
    for name, root in places.items():
        files = [path for path in root.rglob("*") if path.is_file()]
        rows.append(
            ArtifactContents(
                name,
                len(files),
                sum(path.stat().st_size for path in files),
                sum(
                    1
                    for path in files
                    if path.stat().st_size and hashlib.sha256(path.read_bytes()).digest() in digests
                ),
            )
        )
    return len(served), sum(path.stat().st_size for path in served), rows


def own_modules(function_dir: Path) -> set[str]:
    """The top-level modules of a function's own code (its CodeUri)."""
    return {p.stem for p in function_dir.glob("*.py")} | {
        p.name for p in function_dir.iterdir() if (p / "__init__.py").is_file()
    }


# -- measuring ---------------------------------------------------------------------------------


def _run(
    layout: Layout, scenario: Scenario, *flags: str, arguments: list[str] | None = None
) -> tuple[dict[str, Any], str, float]:
    function = scenario.function
    variables: dict[str, str | None] = {
        **ENVIRONMENT,
        **scenario.environment,
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": os.pathsep.join(str(p) for p in layout.path_for(function)),
        # Nothing is written: the artifact is measured as shipped (its pycs are complete).
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    env = {name: value for name, value in variables.items() if value is not None}
    arguments = scenario.arguments() if arguments is None else arguments
    command = [sys.executable, "-S", "-P", *flags, "-c", CHILD, *arguments]
    cwd = layout.functions[function] if function else layout.runtime_dir
    started = time.perf_counter()
    result = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, check=False)
    elapsed = (time.perf_counter() - started) * 1000
    lines = [line for line in result.stderr.splitlines() if line.startswith("BENCH ")]
    if result.returncode != 0 or not lines:
        raise SystemExit(f"{scenario.name} failed:\n{result.stderr[-3000:]}")
    timing: dict[str, Any] = json.loads(lines[-1][len("BENCH ") :])
    if scenario.expected is not None and timing.get("status") != scenario.expected:
        raise SystemExit(
            f"{scenario.name} answered {timing.get('status')!r}, not {scenario.expected!r}; "
            f"the measurement would not be of the real work:\n{result.stderr[-3000:]}"
        )
    _check_location(layout, scenario, timing["where"])
    return timing, result.stderr, elapsed


def _check_location(layout: Layout, scenario: Scenario, where: dict[str, str | None]) -> None:
    """The measured code must be the artifact's, not a copy from the development tree; a floor
    must run none of ours."""
    # The layer's wheels, or with VENV the venv's packages (the last entry of the path).
    third_party = layout.path_for(None)[-1] if layout.third_party_from_venv else layout.layer_python
    expected = {"boto3": layout.runtime_dir, "psycopg": third_party, "pydantic": third_party}
    if scenario.mode == APP and scenario.function:
        expected |= {"app": layout.functions[scenario.function], "portal_sync": layout.layer_python}
    elif where.get("app") or where.get("portal_sync"):
        raise SystemExit(f"{scenario.name}: a floor imported our code ({where})")
    for module, directory in expected.items():
        location = where.get(module)
        if location is None and module in ("app", "portal_sync"):
            raise SystemExit(f"{scenario.name}: {module} was not imported")
        # Not resolved: the runtime dir's packages are links into the venv.
        if location and not Path(location).absolute().is_relative_to(directory.absolute()):
            raise SystemExit(f"{scenario.name}: {module} came from {location}, not {directory}")


def _importtime_rows(importtime: str) -> list[tuple[int, str, int, int]]:
    """(depth, module, self µs, cumulative µs) per line of `-X importtime` output."""
    rows = []
    for line in importtime.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, cumulative_us, name = line.removeprefix("import time:").split("|", 2)
        depth = (len(name) - len(name.lstrip())) // 2
        rows.append((depth, name.strip(), int(self_us), int(cumulative_us)))
    return rows


def _subtree(rows: list[tuple[int, str, int, int]], module: str) -> list[tuple[int, str, int, int]]:
    """The rows of what `import module` imported (importtime prints them before it)."""
    found = [i for i, row in enumerate(rows) if row[1] == module]
    if not found:
        return []
    end = found[-1]
    depth = rows[end][0]
    start = end
    while start > 0 and rows[start - 1][0] > depth:
        start -= 1
    return rows[start:end]


def dominant_packages(importtime: str) -> list[tuple[str, float]]:
    """Self import time per top-level package (ms), largest first."""
    totals: Counter[str] = Counter()
    for _, name, self_us, _ in _importtime_rows(importtime):
        totals[name.split(".")[0]] += self_us
    return [(name, us / 1000) for name, us in totals.most_common()]


def direct_imports(importtime: str, module: str = "app") -> list[tuple[str, float]]:
    """Cumulative time (ms) of each import `module` makes itself; the first importer pays."""
    rows = _importtime_rows(importtime)
    found = [row for row in rows if row[1] == module]
    if not found:
        return []
    depth = found[-1][0]
    children = [(name, cum / 1000) for d, name, _, cum in _subtree(rows, module) if d == depth + 1]
    return sorted(children, key=lambda item: -item[1])


def library_modules(
    importtime: str,
    own: Collection[str] = (),
    module: str = "app",
    loaded: Sequence[str] | None = None,
) -> list[str]:
    """The third-party modules `import module` loaded: those whose top-level package is neither
    the standard library, portal_sync nor the function's own (`own`), in the order importtime
    lists them. With `loaded` (the process's modules after the import, in the order their
    imports began) only those that loaded, then those importtime missed: it logs the import
    statement's imports and their failures (psycopg tries psycopg_c first), not
    importlib.import_module's (pydantic's lazy names: `pydantic.main` on the first `BaseModel`).

    Every such module, not only the top-level packages: `import pydantic` or `import
    aws_lambda_powertools` alone loads almost nothing (their names are imported lazily, on
    first use), so the libraries' share of a cold start is the modules the import pulled in."""
    ours = {"__main__", "portal_sync", module, *own}

    def third_party(name: str) -> bool:
        top = name.split(".")[0]
        return top not in sys.stdlib_module_names and top not in ours

    rows = _subtree(_importtime_rows(importtime), module)
    found = list(dict.fromkeys(name for _, name, _, _ in rows if third_party(name)))
    if loaded is None:
        return found
    present = set(loaded)
    missed = [name for name in loaded if third_party(name) and name not in found]
    return [name for name in found if name in present] + missed


def imports_after(importtime: str, module: str = "app") -> list[tuple[str, float]]:
    """What was imported after `module` (during the first call): ("total", ms), then the self
    time per top-level package, largest first."""
    rows = _importtime_rows(importtime)
    found = [i for i, row in enumerate(rows) if row[1] == module]
    if not found:
        return []
    later = rows[found[-1] + 1 :]
    total = sum(cumulative for depth, _, _, cumulative in later if depth == 0)
    totals: Counter[str] = Counter()
    for _, name, self_us, _ in later:
        totals[name.split(".")[0]] += self_us
    return [("total", total / 1000), *((name, us / 1000) for name, us in totals.most_common())]


def _medians(runs: list[list[tuple[str, float]]]) -> list[tuple[str, float]]:
    names = {name for run in runs for name, _ in run}
    medians = {n: statistics.median(dict(run).get(n, 0.0) for run in runs) for n in names}
    return sorted(medians.items(), key=lambda item: -item[1])


def measure(layout: Layout, to_measure: list[Scenario], repeat: int) -> list[Measurement]:
    results = [Measurement(scenario) for scenario in to_measure]
    # One unmeasured round warms the OS file cache; then rounds alternate between the processes
    # so that any drift of the machine affects all of them alike.
    for round_ in range(repeat + 1):
        for measurement in results:
            timing, _, elapsed = _run(layout, measurement.scenario)
            measurement.status = timing.get("status")
            if round_:
                measurement.import_ms.append(timing["import_ms"])
                measurement.import_cpu_ms.append(timing["import_cpu_ms"])
                measurement.first_call_ms.append(timing["first_call_ms"])
                measurement.first_call_cpu_ms.append(timing["first_call_cpu_ms"])
                measurement.process_ms.append(elapsed)
    for measurement in results:
        scenario = measurement.scenario
        if scenario.floor:
            continue
        outputs = [_run(layout, scenario, "-X", "importtime")[1] for _ in range(IMPORTTIME_RUNS)]
        measurement.dominant = _medians([dominant_packages(o) for o in outputs])[:6]
        if scenario.function:
            measurement.direct = _medians([direct_imports(o) for o in outputs])[:6]
        if scenario.real:
            first = "app" if scenario.function else "boto3"
            measurement.during_call = _medians([imports_after(o, first) for o in outputs])[:6]
    return results


# -- reporting ---------------------------------------------------------------------------------


def _process_label(scenario: Scenario) -> str:
    """The first column. `make bench` reads the rows of a function's name or `import boto3`:
    a floor's name is neither."""
    if scenario.mode == LIBRARIES:
        return f"floor: {scenario.function}'s libraries bare"
    if scenario.floor:
        imported = "boto3, psycopg" if scenario.io and scenario.io.postgres else "boto3"
        return f"floor: `import {imported}`"
    return scenario.function or "`import boto3`"


def _call_label(r: Measurement) -> str:
    scenario = r.scenario
    if scenario.mode == LIBRARIES:
        return f"- ({scenario.call})"
    if scenario.floor:
        return f"bare I/O of {scenario.call} → `{_short(r.status)}`"
    if scenario.function is None:
        return f"real: {scenario.call} → `{r.status}`" if scenario.real else "-"
    kind = "real" if scenario.real else "trivial"
    return f"{kind}: {scenario.call} → `{_short(r.status)}`"


def header_figures(layout: Layout) -> dict[str, str | None]:
    """What the header says was measured (an empty figure keeps its optional part)."""
    target, host = layout.target, layout.host
    reason = None
    if layout.source == VENV and host.python != target.python_version:
        reason = f"this is Python {host.python}, not {target.python_version}"
    elif layout.source == VENV:
        reason = f"this is {host.platform} on {platform.machine()}: no Linux wheel for it"
    return {
        "runtime": target.runtime,
        "architecture": target.architecture,
        "host_architecture": host.architecture or platform.machine(),
        "built": "" if layout.source == BUILT else None,
        "twin": "" if layout.source == TWIN else None,
        "from_venv": reason,
    }


def render(results: list[Measurement], layout: Layout, repeat: int) -> str:
    baseline = next(r for r in results if r.scenario.mode == BOTO3)
    boto3_ms = statistics.median(baseline.import_ms)
    boto3_cpu_ms = statistics.median(baseline.import_cpu_ms)
    prose = Prose.load("methods.md")
    lines = [
        SECTION,
        "",
        prose.fill(
            "cold start",
            {
                "machine": platform.machine(),
                "python": platform.python_version(),
                "cpus": str(os.cpu_count()),
                "repeat": str(repeat),
                "target": str(TARGET_RATIO),
                **header_figures(layout),
            },
        ),
        "",
    ]
    real = [r for r in results if r.scenario.real and not r.scenario.floor]
    if real:
        lines.append("The real first calls:")
        lines.append("")
        for r in real:
            who = r.scenario.function or "`import boto3`"
            lines.append(f"- {who}, {r.scenario.call}: {r.scenario.covers}.")
        lines.append("")
    lines += [
        "| process | first call → answer | import (ms) | first call (ms) | of it CPU (ms) "
        "| import + first call (ms) | ratio | CPU ratio | process (ms) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        first = statistics.median(r.first_call_ms)
        cpu = statistics.median(r.first_call_cpu_ms)
        ratio = r.total_ms / boto3_ms
        # The target is the functions' (and the bare SQS call's, the floor of any of them).
        flagged = r.scenario is not baseline.scenario and not r.scenario.floor
        flag = " ⚠" if flagged and ratio > TARGET_RATIO else ""
        lines.append(
            f"| {_process_label(r.scenario)} | {_call_label(r)} "
            f"| {statistics.median(r.import_ms):.0f} | {first:.0f} "
            f"| {cpu:.0f} | {r.total_ms:.0f} | {ratio:.2f}{flag} "
            f"| {r.total_cpu_ms / boto3_cpu_ms:.2f} | {statistics.median(r.process_ms):.0f} |"
        )
    lines += _floors_table(results, prose)
    console_files, console_size, artifacts = console_in_artifacts(layout)
    table = ["| artifact | files | size (MB) | console files in it |", "|---|---:|---:|---:|"]
    table += [
        f"| {a.name} | {a.files:,} | {a.size / 1e6:.1f} | {a.console_files} |" for a in artifacts
    ]
    lines += [
        "",
        prose.fill(
            "cold start, the console",
            {
                "console_files": str(console_files),
                "console_kb": f"{console_size / 1e3:.0f}",
                "in_artifacts": str(sum(a.console_files for a in artifacts)),
                "table": "\n".join(table),
            },
        ),
    ]
    lines += [
        "",
        prose.fill("cold start, by package", {"runs": str(IMPORTTIME_RUNS)}),
        "",
        "| process | by package | app's imports |",
        "|---|---|---|",
    ]
    for r in results:
        if r.scenario.real or r.scenario.floor:
            continue
        packages = ", ".join(f"{name} {ms:.0f}" for name, ms in r.dominant)
        direct = ", ".join(f"`{name}` {ms:.0f}" for name, ms in r.direct) or "n/a"
        label = "`import boto3`" if r.scenario.function is None else r.scenario.function
        lines.append(f"| {label} | {packages} | {direct} |")
    if real:
        lines += [
            "",
            prose.fill("cold start, during the first call", {}),
            "",
            "| process | first call | imported during the call |",
            "|---|---|---|",
        ]
        for r in real:
            during = ", ".join(f"{name} {ms:.0f}" for name, ms in r.during_call) or "nothing"
            who = r.scenario.function or "`import boto3`"
            lines.append(f"| {who} | {r.scenario.call} | {during} |")
    return "\n".join(lines) + "\n"


def _floors_table(results: list[Measurement], prose: Prose) -> list[str]:
    """Each function's processes against its own floors: `import app` against its libraries
    bare, import + real first call against the bare handler doing the same I/O."""
    by_name = {r.name: r for r in results}
    rows = []
    for r in results:
        scenario = r.scenario
        if scenario.mode != APP or scenario.function is None:
            continue
        libraries = by_name.get(libraries_floor_name(scenario.function))
        io = by_name.get(io_floor_name(scenario.function, scenario.call))
        if libraries is None and io is None:
            continue
        import_ms = statistics.median(r.import_ms)
        cells = [scenario.function, ("real: " if scenario.real else "trivial: ") + scenario.call]
        if libraries is not None:
            bare_ms = statistics.median(libraries.import_ms)
            bare_cpu_ms = statistics.median(libraries.import_cpu_ms)
            import_cpu_ms = statistics.median(r.import_cpu_ms)
            cells += [
                f"{import_ms:.0f}",
                f"{bare_ms:.0f}",
                f"{import_ms / bare_ms:.2f}",
                f"{import_cpu_ms / bare_cpu_ms:.2f}",
            ]
        else:
            cells += [f"{import_ms:.0f}", "-", "-", "-"]
        if io is not None:
            cells += [
                f"{r.total_ms:.0f}",
                f"{io.total_ms:.0f}",
                f"{r.total_ms / io.total_ms:.2f}",
                f"{r.total_cpu_ms / io.total_cpu_ms:.2f}",
            ]
        else:
            cells += ["-", "-", "-", "-"]
        rows.append("| " + " | ".join(cells) + " |")
    if not rows:
        return []
    floors = [r for r in results if r.scenario.floor and r.scenario.mode == BARE_IO]
    lines = ["", prose.fill("cold start, against its floors", {}), ""]
    if floors:
        lines += ["The bare handlers' first calls:", ""]
        for r in floors:
            lines.append(f"- {r.scenario.call}: {r.scenario.covers}.")
        lines.append("")
    return [
        *lines,
        "| function | first call | `import app` (ms) | its libraries bare (ms) "
        "| import / libraries | CPU | import + first call (ms) | bare handler, same I/O (ms) "
        "| real / bare I/O | CPU |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        *rows,
    ]


def _short(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, int) else str(value)
    return text if len(text) <= 30 else text[:29] + "…"


def write_section(markdown: str, path: Path = BENCHMARKS) -> None:
    """Replaces the section (from its heading to the next `## `) or appends it."""
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    heading = markdown.splitlines()[0]
    pattern = re.compile(rf"^{re.escape(heading)}\n.*?(?=^#{{1,2}} |\Z)", re.MULTILINE | re.DOTALL)
    if pattern.search(text):
        text = pattern.sub(lambda _: markdown + "\n", text, count=1).rstrip("\n") + "\n"
    else:
        text = text.rstrip("\n") + "\n\n" + markdown
    path.write_text(text)


def run(artifacts: Path = DEFAULT_OUT, repeat: int = 7, real: bool = True) -> str:
    with tempfile.TemporaryDirectory(prefix="portal-sync-bench-") as scratch:
        layout = prepare(artifacts, Path(scratch))
        if not real:
            to_measure = with_library_floors(layout, scenarios(None))
            return render(measure(layout, to_measure, repeat), layout, repeat)
        with local_services(Path(scratch)) as services:
            to_measure = with_library_floors(layout, scenarios(services))
            results = measure(layout, to_measure, repeat)
        return render(results, layout, repeat)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m portal_sync_dev.bench.cold_start")
    parser.add_argument("--artifacts", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--output", type=Path, default=BENCHMARKS)
    parser.add_argument("--print-only", action="store_true", help="do not write BENCHMARKS.md")
    parser.add_argument(
        "--trivial-only",
        action="store_true",
        help="only the first calls that need no PostgreSQL or AWS stand-in (quick)",
    )
    args = parser.parse_args(argv)
    markdown = run(args.artifacts, args.repeat, real=not args.trivial_only)
    print(markdown)
    if not args.print_only:
        write_section(markdown, args.output)
        print(f"written to {args.output}")


if __name__ == "__main__":
    main()
