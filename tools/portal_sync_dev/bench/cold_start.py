"""Cold start of each function from the built artifact, against a bare `import boto3`.

`make bench-cold` (`python -m portal_sync_dev.bench.cold_start`) measures, for every function of
template.yaml, in fresh processes laid out as Lambda lays them out:

    sys.path = <function dir> (/var/task), <layer>/python (/opt/python), <runtime dir> (/var/runtime)

where the runtime dir holds only what the Lambda Python runtime provides (boto3, botocore and their
dependencies, taken from the venv) and no site-packages are loaded (`python -S`), so nothing the
layer lacks can sneak in from the development environment. Per process it times `import app`
and the first invocation, and compares them with a process that only does `import boto3`,
measured in the same run, same flags, same layout. Several repetitions; medians. `-X importtime`
then names the packages that dominate each function's import, and what its first call imports.

Each function is measured with two kinds of first invocation, each in processes of its own:

- a *trivial* one that needs no other system: a CORS preflight for HTTP functions, an empty
  batch for the queue consumer (its database connection is refused at once). This is what the
  target was first measured with; it flatters any import deferred to the first request.
- a *real* one, what the function exists for, against local stand-ins on loopback: PostgreSQL
  (embedded, migrated, seeded as `make run` seeds it) and AWS (moto's server, plain HTTP). A
  signed webhook for the ingest, a batch with one queued event for the consumer, an
  authenticated read for the two JWT APIs (see REAL_CALLS). Its time includes the waits for
  those stand-ins, so its CPU time is reported next to it.

The artifact is `make build`'s .aws-sam/build when its wheels run on this machine (same CPU
architecture and Python); otherwise the functions and portal_sync are built without third-party
wheels into a temporary directory and those come from the venv instead.

Results go to the "Cold start" section of BENCHMARKS.md (other sections are left alone: they
are `make bench`'s, which reads this section's table for its summary); the paragraphs around the
tables are methods.md's `cold start` sections.
"""

from __future__ import annotations

import argparse
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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from portal_sync_dev.bench.prose import Prose
from portal_sync_dev.build import (
    DEFAULT_OUT,
    ROOT,
    TEMPLATE,
    Target,
    build_all,
    load_target,
    read_template,
)

BENCHMARKS = ROOT / "BENCHMARKS.md"
SECTION = "## Cold start"
TARGET_RATIO = 1.5
IMPORTTIME_RUNS = 3
# What the Lambda Python runtime itself provides (on /var/runtime), besides the standard library.
RUNTIME_PACKAGES = ("boto3", "botocore", "s3transfer", "jmespath", "urllib3", "dateutil", "six")
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
class RealCall:
    """A real first invocation: what it covers, and the answer that proves it did the work (a
    measurement of a request that failed would flatter the function)."""

    function: str
    label: str
    covers: str
    expected: Any


REAL_CALLS = (
    RealCall(
        "WebhookIngest",
        "signed webhook",
        "a Standard Webhooks `membership.created` signed for the seeded source: Secrets Manager "
        "GetSecretValue (the source's configuration), duplicate check in PostgreSQL, SQS "
        "SendMessage",
        202,
    ),
    RealCall(
        "ProcessEvent",
        "batch of one event",
        "one queued `membership.created` of a new member: PostgreSQL connection, receipt, "
        "profile, membership and sync log written; not a peer mentor, so no website-visibility "
        "work (the outbox and the Step Functions client are only touched after a mentor's "
        "membership changed)",
        {"batchItemFailures": []},
    ),
    RealCall(
        "AdminApi",
        "GET features",
        "`GET /orgs/{id}/features` (what the member app asks) with a global administrator's "
        "HS256 token: JWT verified, PostgreSQL connection, authority and feature queries, "
        "validated response",
        200,
    ),
    RealCall(
        "AdminApi",
        "GET sync/status",
        "`GET /orgs/{id}/sync/status` (the console's status page), as `GET features` plus the "
        "queue's depth from SQS GetQueueAttributes",
        200,
    ),
    RealCall(
        "Reconcile",
        "scheduled tick",
        "the EventBridge schedule's event with no organisation due (the demo organisation "
        "reconciled a minute ago): PostgreSQL connection, the due and stalled queries; no "
        "Dynamics, no Step Functions client",
        {"started": 0, "resumed": 0},
    ),
    RealCall(
        "WebsiteSync",
        "GET mentor status",
        "`GET /{mentor}/status` with a global administrator's HS256 token: JWT verified, "
        "PostgreSQL connection, authority and status queries, validated response",
        200,
    ),
)

CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
c0 = time.process_time()
if sys.argv[1] in ("boto3", "boto3-call"):
    import boto3
    t1 = time.perf_counter()
    c1 = time.process_time()
    status = None
    if sys.argv[1] == "boto3-call":
        import os
        sqs = boto3.client("sqs")
        sent = sqs.send_message(QueueUrl=os.environ["EVENT_QUEUE_URL"], MessageBody="bench")
        status = sent["ResponseMetadata"]["HTTPStatusCode"]
    t2 = time.perf_counter()
    c2 = time.process_time()
    where = {"boto3": boto3.__file__, "status": status}
else:
    import app
    t1 = time.perf_counter()
    c1 = time.process_time()

    class Context:
        function_name = "bench"
        memory_limit_in_mb = 512
        invoked_function_arn = "arn:aws:lambda:eu-north-1:123456789012:function:bench"
        aws_request_id = "bench"

        def get_remaining_time_in_millis(self):
            return 10000

    response = app.handler(json.loads(sys.argv[1]), Context())
    t2 = time.perf_counter()
    c2 = time.process_time()
    portal_sync = sys.modules.get("portal_sync")
    status = response.get("statusCode", response) if isinstance(response, dict) else response
    where = {"app": app.__file__, "portal_sync": getattr(portal_sync, "__file__", None),
             "status": status}
sys.stdout.flush()
sys.stderr.write("BENCH " + json.dumps({"import_ms": (t1 - t0) * 1000,
                                        "import_cpu_ms": (c1 - c0) * 1000,
                                        "first_call_ms": (t2 - t1) * 1000,
                                        "first_call_cpu_ms": (c2 - c1) * 1000, **where}) + "\n")
"""


@dataclass(frozen=True)
class Layout:
    """Where the code comes from: Lambda's /var/task, /opt/python and /var/runtime."""

    functions: dict[str, Path]
    layer_python: Path
    runtime_dir: Path
    third_party_from_venv: bool

    def path_for(self, function: str | None) -> list[Path]:
        paths = [self.layer_python, self.runtime_dir]
        if self.third_party_from_venv:
            paths.append(Path(sysconfig.get_paths()["purelib"]))
        return [self.functions[function], *paths] if function else paths


@dataclass(frozen=True)
class Scenario:
    """One kind of process measured: a function and its first invocation (None: `import boto3`)."""

    name: str
    function: str | None
    call: str
    event: Callable[[], dict[str, Any]] | None = None
    expected: Any = None
    environment: dict[str, str] = field(default_factory=dict)
    real: bool = False
    covers: str = ""

    def argument(self) -> str:
        # A new event per process: the real ones carry fresh delivery and contact ids.
        if self.event:
            return json.dumps(self.event())
        return "boto3-call" if self.real else "boto3"


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
    """What the real first invocations talk to, all on loopback."""

    environment: dict[str, str]
    events: dict[str, Callable[[], dict[str, Any]]]


@contextmanager
def local_services(work_dir: Path) -> Iterator[LocalServices]:
    """PostgreSQL (embedded, or a throwaway database on DATABASE_URL's server, as `make bench`
    does), moto's server with the queue and the webhook source's secret, the seeded demo
    organisation with its administrator and mentor; and the events of REAL_CALLS."""
    import psycopg

    from portal_sync_dev.bench.services import BenchDatabase
    from portal_sync_dev.bench.workload import ingest_event, sqs_records
    from portal_sync_dev.local.aws_local import provision, start_moto, use_endpoint
    from portal_sync_dev.local.dataverse_standin import DataverseStandIn
    from portal_sync_dev.local.lambda_http import build_http_event
    from portal_sync_dev.local.seed import new_webhook_secret, seed_demo

    with BenchDatabase(work_dir) as database:
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
            environment = {
                "DATABASE_URL": database.functions_url,
                "AWS_ENDPOINT_URL": endpoint,
                "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing",
                "EVENT_QUEUE_URL": aws.event_queue_url,
                "DEAD_LETTER_QUEUE_URL": aws.dead_letter_queue_url,
                "SUPABASE_JWT_SECRET": jwt_secret,
                "WEBSITE_STATE_MACHINE_ARN": STATE_MACHINE_ARN,
                "ENTRA_AUTHORITY_URL": dynamics.url,
                "ALLOW_LOCAL_DYNAMICS": "true",
            }
            yield LocalServices(environment, events)
        finally:
            dynamics.stop()
            moto.stop()


def scenarios(services: LocalServices | None, template_path: Path = TEMPLATE) -> list[Scenario]:
    """`import boto3` (and with services, one SQS call after it: the floor of any function
    whose first request calls AWS), then per function its trivial and its real first calls."""
    found = [Scenario("boto3", None, "")]
    if services is not None:
        found.append(
            Scenario(
                "boto3/SQS SendMessage",
                None,
                "SQS SendMessage",
                expected=200,
                environment=services.environment,
                real=True,
                covers="`boto3.client('sqs').send_message(...)` right after `import boto3`, "
                "nothing else: the floor of any function whose first request calls AWS",
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
    return found


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


def host_runs(target: Target) -> bool:
    machine = platform.machine().lower()
    host = {"amd64": "x86_64", "arm64": "aarch64"}.get(machine, machine)
    running = f"{sys.version_info.major}.{sys.version_info.minor}"
    return host == target.machine and running == target.python_version and sys.platform == "linux"


def prepare(artifacts: Path, scratch: Path, template_path: Path = TEMPLATE) -> Layout:
    target = load_target(template_path)
    runtime = runtime_dir(scratch / "runtime")
    layer = target.layers[0].logical_id
    built = artifacts / layer / "python"
    if host_runs(target) and built.is_dir() and any(built.glob("*.dist-info")):
        functions = {f.logical_id: artifacts / f.logical_id for f in target.functions}
        return Layout(functions, built, runtime, third_party_from_venv=False)
    result = build_all(
        scratch / "build", template_path=template_path, dependencies=False, zips_dir=None
    )
    return Layout(
        result.functions, result.layers[layer] / "python", runtime, third_party_from_venv=True
    )


# -- measuring ---------------------------------------------------------------------------------


def _run(
    layout: Layout, scenario: Scenario, *flags: str, argument: str | None = None
) -> tuple[dict[str, Any], str, float]:
    function = scenario.function
    env = {
        **ENVIRONMENT,
        **scenario.environment,
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": os.pathsep.join(str(p) for p in layout.path_for(function)),
        # Nothing is written: the artifact is measured as shipped (its pycs are complete).
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    argument = scenario.argument() if argument is None else argument
    command = [sys.executable, "-S", "-P", *flags, "-c", CHILD, argument]
    cwd = layout.functions[function] if function else layout.runtime_dir
    started = time.perf_counter()
    result = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, check=False)
    elapsed = (time.perf_counter() - started) * 1000
    lines = [line for line in result.stderr.splitlines() if line.startswith("BENCH ")]
    if result.returncode != 0 or not lines:
        raise SystemExit(f"{scenario.name} failed:\n{result.stderr[-3000:]}")
    timing: dict[str, Any] = json.loads(lines[-1][len("BENCH ") :])
    if scenario.real and timing.get("status") != scenario.expected:
        raise SystemExit(
            f"{scenario.name} answered {timing.get('status')!r}, not {scenario.expected!r}; "
            f"the measurement would not be of the real work:\n{result.stderr[-3000:]}"
        )
    return timing, result.stderr, elapsed


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


def dominant_packages(importtime: str) -> list[tuple[str, float]]:
    """Self import time per top-level package (ms), largest first."""
    totals: Counter[str] = Counter()
    for _, name, self_us, _ in _importtime_rows(importtime):
        totals[name.split(".")[0]] += self_us
    return [(name, us / 1000) for name, us in totals.most_common()]


def direct_imports(importtime: str, module: str = "app") -> list[tuple[str, float]]:
    """Cumulative time (ms) of each import `module` makes itself; the first importer pays."""
    rows = _importtime_rows(importtime)
    found = [i for i, row in enumerate(rows) if row[1] == module]
    if not found:
        return []
    end = found[-1]
    depth = rows[end][0]
    start = end
    while start > 0 and rows[start - 1][0] > depth:
        start -= 1
    children = [(name, cum / 1000) for d, name, _, cum in rows[start:end] if d == depth + 1]
    return sorted(children, key=lambda item: -item[1])


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
            scenario = measurement.scenario
            timing, _, elapsed = _run(layout, scenario)
            if scenario.function:
                _check_location(layout, scenario.function, timing)
            measurement.status = timing.get("status")
            if round_:
                measurement.import_ms.append(timing["import_ms"])
                measurement.import_cpu_ms.append(timing["import_cpu_ms"])
                measurement.first_call_ms.append(timing["first_call_ms"])
                measurement.first_call_cpu_ms.append(timing["first_call_cpu_ms"])
                measurement.process_ms.append(elapsed)
    for measurement in results:
        scenario = measurement.scenario
        outputs = [_run(layout, scenario, "-X", "importtime")[1] for _ in range(IMPORTTIME_RUNS)]
        measurement.dominant = _medians([dominant_packages(o) for o in outputs])[:6]
        if scenario.function:
            measurement.direct = _medians([direct_imports(o) for o in outputs])[:6]
        if scenario.real:
            first = "app" if scenario.function else "boto3"
            measurement.during_call = _medians([imports_after(o, first) for o in outputs])[:6]
    return results


def _check_location(layout: Layout, function: str, timing: dict[str, Any]) -> None:
    """The measured code must be the artifact's, not a copy from the development tree."""
    expected = {"app": layout.functions[function], "portal_sync": layout.layer_python}
    for module, directory in expected.items():
        location = timing.get(module) or ""
        if not Path(location).resolve().is_relative_to(directory.resolve()):
            raise SystemExit(f"{function}: {module} came from {location}, not from {directory}")


# -- reporting ---------------------------------------------------------------------------------


def render(results: list[Measurement], layout: Layout, repeat: int) -> str:
    baseline = next(r for r in results if r.scenario.function is None and not r.scenario.real)
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
                # Which of the two sources of the code (an empty figure keeps its part).
                "from_venv": "" if layout.third_party_from_venv else None,
                "built": None if layout.third_party_from_venv else "",
                "target": str(TARGET_RATIO),
            },
        ),
        "",
    ]
    real = [r for r in results if r.scenario.real]
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
        if r.scenario.function is None:
            label = "`import boto3`"
            call = f"real: {r.scenario.call} → `{r.status}`" if r.scenario.real else "-"
        else:
            label = r.scenario.function
            kind = "real" if r.scenario.real else "trivial"
            call = f"{kind}: {r.scenario.call} → `{_short(r.status)}`"
        ratio = r.total_ms / boto3_ms
        flag = "" if r.scenario is baseline.scenario or ratio <= TARGET_RATIO else " ⚠"
        lines.append(
            f"| {label} | {call} | {statistics.median(r.import_ms):.0f} | {first:.0f} "
            f"| {cpu:.0f} | {r.total_ms:.0f} | {ratio:.2f}{flag} "
            f"| {r.total_cpu_ms / boto3_cpu_ms:.2f} | {statistics.median(r.process_ms):.0f} |"
        )
    lines += [
        "",
        prose.fill("cold start, by package", {"runs": str(IMPORTTIME_RUNS)}),
        "",
        "| process | by package | app's imports |",
        "|---|---|---|",
    ]
    for r in results:
        if r.scenario.real:
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
            return render(measure(layout, scenarios(None), repeat), layout, repeat)
        with local_services(Path(scratch)) as services:
            results = measure(layout, scenarios(services), repeat)
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
