"""The measurements that run in a fresh interpreter of their own (`python -m portal_sync_dev.bench
worker NAME CONFIG RESULT`): ingest and apply in process against their baselines, and one
function's memory over a loop of invocations. The parent passes a JSON config, gets a JSON result.
"""

from __future__ import annotations

import importlib
import json
import math
import os
import subprocess
import sys
import time
import uuid
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from portal_sync_dev import ROOT
from portal_sync_dev.bench.profile import APPLY_RULES, INGEST_RULES, profile_breakdown
from portal_sync_dev.bench.stats import latency_summary, median_summary, percentile
from portal_sync_dev.bench.workload import (
    BASELINE_LOG,
    BASELINE_RECEIPT,
    BASELINE_UPSERT,
    BENCH_SOURCE,
    REGION,
    SOURCE_SECRET_PREFIX,
    BenchError,
    baseline_rows,
    chunks,
    context,
    ingest_event,
    memory_load,
    sqs_records,
)


def run_worker(name: str, config: dict[str, Any], work_dir: Path, timeout: float = 600) -> Any:
    """Runs one measurement in a fresh interpreter; returns what it wrote."""
    token = uuid.uuid4().hex[:8]
    config_path = work_dir / f"{name}-{token}.json"
    result_path = work_dir / f"{name}-{token}.result.json"
    config_path.write_text(json.dumps(config))
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_ENDPOINT_URL")}
    env.pop("PORTAL_SYNC_REAL_AWS", None)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    command = [sys.executable, "-m", "portal_sync_dev.bench", "worker", name]
    process = subprocess.run(
        [*command, str(config_path), str(result_path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if process.returncode != 0 or not result_path.exists():
        raise BenchError(
            f"the {name} worker failed ({process.returncode}):\n{process.stderr[-4000:]}"
        )
    return json.loads(result_path.read_text())


def worker_main(name: str, config_path: str, result_path: str) -> None:
    config = json.loads(Path(config_path).read_text())
    # The functions log (INFO, as deployed) and write EMF metrics to stdout, as on Lambda;
    # here that goes to /dev/null. Results travel in a file.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    warnings.filterwarnings("ignore")
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    result = WORKERS[name](config)
    Path(result_path).write_text(json.dumps(result, default=str))


# -- the function's environment ----------------------------------------------------------------


def _in_process_aws() -> None:
    """Environment for moto's in-process mock: no endpoint (requests are intercepted)."""
    for key in [k for k in os.environ if k.startswith("AWS_ENDPOINT_URL")]:
        del os.environ[key]
    os.environ.update(
        {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": REGION,
            "MOTO_SQS_ENFORCE_STRICT_QUEUE_PURGE_BEHAVIOUR": "false",
        }
    )


def _function_environment(database_url: str, queue_url: str, **extra: str) -> None:
    """What template.yaml gives the functions: INFO logs and EMF metrics on, as deployed."""
    os.environ.update(
        {
            "DATABASE_URL": database_url,
            "EVENT_QUEUE_URL": queue_url,
            "SOURCE_SECRET_PREFIX": SOURCE_SECRET_PREFIX,
            "POWERTOOLS_SERVICE_NAME": "portal-sync",
            "POWERTOOLS_METRICS_NAMESPACE": "PortalSync",
            "POWERTOOLS_LOG_LEVEL": "INFO",
            **extra,
        }
    )
    os.environ.pop("POWERTOOLS_METRICS_DISABLED", None)


def _load_handler(name: str) -> Callable[[dict[str, Any], Any], dict[str, Any]]:
    from portal_sync import bootstrap

    bootstrap.reset()
    handler: Callable[[dict[str, Any], Any], dict[str, Any]] = importlib.import_module(
        f"functions.{name}.app"
    ).handler
    return handler


def _consumer_connections() -> Any:
    """The consumer's cached connection provider: the wiring's, or the handler's own."""
    try:
        wiring = importlib.import_module("portal_sync.bootstrap.process_event")
    except ImportError:
        wiring = importlib.import_module("functions.process_event.app")
    if not hasattr(wiring, "connections"):
        wiring = importlib.import_module("functions.process_event.app")
    return wiring.connections


# -- probes ------------------------------------------------------------------------------------


def backend_cpu_seconds(conn: Any) -> float:
    """CPU time (user + system) of the PostgreSQL backend process of a connection, when that
    process is on this machine and readable (NaN otherwise)."""
    try:
        fields = Path(f"/proc/{conn.info.backend_pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return math.nan
    # utime and stime: fields 14 and 15 of stat(5), counted after the command name.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def count_round_trips(run: Callable[[], Any]) -> int:
    """Calls of psycopg's `Connection.wait`: one per exchange with the server (a pipelined
    `executemany` is one exchange per flush)."""
    import psycopg

    calls = 0
    original = psycopg.Connection.wait

    def counting(self: Any, *args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        return original(self, *args, **kwargs)

    psycopg.Connection.wait = counting  # type: ignore[method-assign]
    try:
        run()
    finally:
        psycopg.Connection.wait = original  # type: ignore[method-assign]
    return calls


def rss_mb() -> tuple[float, float]:
    """(peak, current) resident set size of this process in MB: VmHWM and VmRSS. (Not
    `ru_maxrss`: on Linux it starts from the parent's peak, inherited across fork and exec.)"""
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmHWM", "VmRSS"):
            fields[name] = int(value.split()[0]) / 1024
    return fields["VmHWM"], fields["VmRSS"]


# -- ingest ------------------------------------------------------------------------------------


def ingest_worker(config: dict[str, Any]) -> dict[str, Any]:
    _in_process_aws()
    from moto import mock_aws

    with mock_aws():
        import boto3
        from portal_sync.inbound.signature import (
            check_timestamp,
            parse_signed_headers,
            signature_matches,
        )

        from portal_sync_dev.local.seed import new_webhook_secret

        sqs = boto3.client("sqs", region_name=REGION)
        queue_url = sqs.create_queue(QueueName="portal-sync-events")["QueueUrl"]
        secret = new_webhook_secret()
        boto3.client("secretsmanager", region_name=REGION).create_secret(
            Name=SOURCE_SECRET_PREFIX + BENCH_SOURCE,
            SecretString=json.dumps(
                {
                    "organization_id": str(uuid.uuid4()),
                    "enabled": True,
                    "mode": "standard-webhooks",
                    "keys": [{"value": secret}],
                }
            ),
        )
        _function_environment(config["functions_database_url"], queue_url)
        handler = _load_handler("webhook_ingest")

        def drain() -> None:
            # moto's SendMessage walks every message in the queue (O(queue length)); SQS does
            # not. Emptying it after each call keeps the emulator's cost what it is at depth 0.
            sqs.purge_queue(QueueUrl=queue_url)

        def requests(count: int) -> list[tuple[dict[str, Any], bytes]]:
            return [ingest_event(BENCH_SOURCE, secret) for _ in range(count)]

        cpu = [0.0]

        def run_handler(batch: list[tuple[dict[str, Any], bytes]]) -> list[float]:
            timings = []
            cpu[0] = 0.0
            for event, _ in batch:
                started, started_cpu = time.perf_counter(), time.process_time()
                response = handler(event, context("webhook_ingest", 10))
                timings.append(time.perf_counter() - started)
                cpu[0] += time.process_time() - started_cpu
                if response["statusCode"] != 202:
                    raise BenchError(f"ingest answered {response['statusCode']}: {response}")
                drain()
            return timings

        def run_floor(batch: list[tuple[dict[str, Any], bytes]]) -> list[float]:
            timings = []
            keys = [secret]
            for event, body in batch:
                headers = event["headers"]
                started = time.perf_counter()
                signed = parse_signed_headers(headers)
                check_timestamp(signed, time.time(), 300)
                verified = signature_matches(signed, body, keys)
                json.loads(body)
                timings.append(time.perf_counter() - started)
                if not verified:
                    raise BenchError("the floor did not verify the signature")
            return timings

        run_handler(requests(50))
        run_floor(requests(50))
        reps = []
        for _ in range(config["reps"]):
            batch = requests(config["calls"])
            floor = latency_summary(run_floor(batch))
            timings = run_handler(batch)
            measured = {**latency_summary(timings), "cpu_share": cpu[0] / sum(timings)}
            reps.append(
                {"floor": floor, "handler": measured, "ratio": floor["per_s"] / measured["per_s"]}
            )
        result: dict[str, Any] = {
            "reps": reps,
            "median": median_summary(reps),
            "body_bytes": len(requests(1)[0][1]),
        }
        batch = requests(100)
        result["round_trips_per_call"] = count_round_trips(lambda: run_handler(batch)) / 100
        if config["profile"]:
            batch = requests(config["profile_calls"])
            result["profile"] = profile_breakdown(
                lambda: run_handler(batch),
                INGEST_RULES,
                "functions/webhook_ingest/app.py",
                len(batch),
            )
        return result


# -- apply -------------------------------------------------------------------------------------


def apply_worker(config: dict[str, Any]) -> dict[str, Any]:
    _in_process_aws()
    from moto import mock_aws

    with mock_aws():
        import boto3
        import psycopg

        sqs = boto3.client("sqs", region_name=REGION)
        queue_url = sqs.create_queue(QueueName="portal-sync-events")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        database_url = config["database_url"]
        organization_id = str(uuid.uuid4())
        with psycopg.connect(database_url) as conn:
            conn.execute(
                "insert into organizations (id, name) values (%s, 'benchmark')", (organization_id,)
            )
        _function_environment(
            config["functions_database_url"],
            queue_url,
            # As deployed: after each batch the handler looks for visibility changes to start.
            WEBSITE_STATE_MACHINE_ARN=(
                f"arn:aws:states:{REGION}:123456789012:stateMachine:portal-sync-website-visibility"
            ),
        )
        handler = _load_handler("process_event")
        connections = _consumer_connections()
        baseline = psycopg.connect(database_url, autocommit=False, prepare_threshold=None)

        cpu = [0.0, 0.0]

        def run_handler(size: int, count: int) -> list[float]:
            records = sqs_records(organization_id, BENCH_SOURCE, count, queue_arn)
            timings = []
            cpu[0] = 0.0
            server = backend_cpu_seconds(connections().get())
            for batch in chunks(records, size):
                started, started_cpu = time.perf_counter(), time.process_time()
                response = handler({"Records": batch}, context("process_event", 60))
                timings.append(time.perf_counter() - started)
                cpu[0] += time.process_time() - started_cpu
                if response["batchItemFailures"]:
                    raise BenchError(f"process_event failed messages: {response}")
            cpu[1] = backend_cpu_seconds(connections().get()) - server
            return timings

        def run_baseline(size: int, count: int, all_rows: bool = True) -> list[float]:
            """The same rows as the handler (receipt, profile, membership, log entry), or with
            `all_rows=False` only the profile and membership (the earlier baseline)."""
            rows = baseline_rows(organization_id, count)
            statements = (
                [BASELINE_RECEIPT, BASELINE_UPSERT, BASELINE_LOG] if all_rows else [BASELINE_UPSERT]
            )
            timings = []
            server = backend_cpu_seconds(baseline)
            for batch in chunks(rows, size):
                started = time.perf_counter()
                with baseline.transaction(), baseline.cursor() as cursor:
                    for statement in statements:
                        cursor.executemany(statement, batch)
                timings.append(time.perf_counter() - started)
            cpu[1] = backend_cpu_seconds(baseline) - server
            return timings

        def summary(timings: list[float], size: int, count: int) -> dict[str, Any]:
            total = sum(timings)
            return {
                "events_per_s": count / total,
                "batch_p50_ms": 1000 * percentile(timings, 50),
                "batch_p99_ms": 1000 * percentile(timings, 99),
                "per_event_ms": 1000 * total / count,
                # The share of the time this process computed; the rest it waited (PostgreSQL).
                "cpu_share": cpu[0] / total,
                # CPU time of the PostgreSQL backend serving it, per event.
                "server_cpu_ms_per_event": 1000 * cpu[1] / count,
            }

        for size in config["batch_sizes"]:
            run_handler(size, size * 3)
            run_baseline(size, size * 3)
        results: dict[str, Any] = {}
        count = config["events"]
        for size in config["batch_sizes"]:
            reps = []
            for _ in range(config["reps"]):
                measured = summary(run_handler(size, count), size, count)
                cpu[0] = math.nan
                bare = summary(run_baseline(size, count), size, count)
                two_tables = summary(run_baseline(size, count, all_rows=False), size, count)
                reps.append(
                    {
                        "handler": measured,
                        "baseline": bare,
                        "two_tables": two_tables,
                        "ratio": measured["events_per_s"] / bare["events_per_s"],
                    }
                )
            results[str(size)] = {"reps": reps, "median": median_summary(reps)}

        # One round trip to PostgreSQL on this machine, and how many each event costs.
        with psycopg.connect(database_url, autocommit=True, prepare_threshold=None) as conn:
            timings = []
            for _ in range(1000):
                started = time.perf_counter()
                conn.execute("select 1")
                timings.append(time.perf_counter() - started)
        profile: dict[str, Any] = {"round_trip_ms": 1000 * percentile(timings, 50)}
        size = max(config["batch_sizes"])
        profile["round_trips_per_event"] = {
            str(s): count_round_trips(lambda s=s: run_handler(s, s * 5)) / (s * 5)
            for s in config["batch_sizes"]
        }
        profile["baseline_round_trips_per_event"] = {
            str(s): count_round_trips(lambda s=s: run_baseline(s, s * 5)) / (s * 5)
            for s in config["batch_sizes"]
        }
        if config["profile"]:
            count = config["profile_events"]
            profile.update(
                profile_breakdown(
                    lambda: run_handler(size, count),
                    APPLY_RULES,
                    "functions/process_event/app.py",
                    count,
                )
            )
            profile["batch_size"] = size
        # What if the statements were prepared on the server (psycopg's default; the function
        # turns it off for transaction-mode poolers): the same batches, parsed and planned once.
        original_connect = psycopg.connect

        def preparing(*args: Any, **kwargs: Any) -> Any:
            kwargs["prepare_threshold"] = 0
            return original_connect(*args, **kwargs)

        def reconnect() -> None:
            connections().discard()
            connections.cache_clear()

        psycopg.connect = preparing  # type: ignore[assignment]
        try:
            reconnect()
            run_handler(size, size * 2)
            prepared = [
                summary(run_handler(size, count), size, count) for _ in range(config["reps"])
            ]
        finally:
            psycopg.connect = original_connect  # type: ignore[assignment]
            reconnect()
        profile["prepared"] = {"batch_size": size, **median_summary(prepared)}
        baseline.close()
        return {"batch_sizes": results, "profile": profile}


# -- memory ------------------------------------------------------------------------------------


def memory_worker(config: dict[str, Any]) -> dict[str, Any]:
    run = config["run"]
    os.environ.update(
        {
            "AWS_ENDPOINT_URL": run["aws_endpoint_url"],
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": REGION,
        }
    )
    function = config["function"]
    started_mb = rss_mb()[0]
    if function == "baseline":
        import boto3

        sqs = boto3.client("sqs")
        sqs.get_queue_attributes(QueueUrl=run["event_queue_url"], AttributeNames=["All"])
        peak, current = rss_mb()
        return {"start_mb": started_mb, "import_mb": peak, "peak_mb": peak, "end_mb": current}

    _function_environment(
        run["functions_database_url"],
        run["event_queue_url"],
        # Every variable a function's settings require (portal_sync/settings.py), as deployed.
        DEAD_LETTER_QUEUE_URL=run.get("dead_letter_queue_url") or "",
        SUPABASE_JWT_SECRET=config["jwt_secret"],
        PUBLIC_BASE_URL=run["base_url"],
        WEBSITE_STATE_MACHINE_ARN=config.get("state_machine_arn", ""),
        ENTRA_AUTHORITY_URL=run.get("dynamics_sandbox_url") or "",
        ALLOW_LOCAL_DYNAMICS="true",
    )
    handler = _load_handler(function)
    import_mb = rss_mb()[0]
    statuses: dict[str, int] = {}
    first_mb = None
    for event, lambda_context in memory_load(function, run, config["calls"]):
        response = handler(event, lambda_context)
        if "statusCode" in response:
            status = str(response["statusCode"])
        elif "batchItemFailures" in response:
            status = "batch with failures" if response["batchItemFailures"] else "batch ok"
        else:
            status = "scheduled run"
        statuses[status] = statuses.get(status, 0) + 1
        if first_mb is None:
            first_mb = rss_mb()[0]
    peak, current = rss_mb()
    return {
        "start_mb": started_mb,
        "import_mb": import_mb,
        "first_call_mb": first_mb,
        "peak_mb": peak,
        "end_mb": current,
        "invocations": sum(statuses.values()),
        "statuses": statuses,
    }


WORKERS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "ingest": ingest_worker,
    "apply": apply_worker,
    "memory": memory_worker,
}
