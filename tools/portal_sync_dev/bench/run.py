"""The `make bench` command: runs the measurements, prints the summary and findings, keeps the
results (.local/bench/results.json) and writes BENCHMARKS.md from them.

    python -m portal_sync_dev.bench [--quick] [--reps N]
                                    [--only ingest,apply,import,e2e,visibility,memory]
                                    [--import-members N]
    python -m portal_sync_dev.bench report [RESULTS]   # BENCHMARKS.md again, no measuring
    python -m portal_sync_dev.bench worker NAME CONFIG RESULT   # one measurement (workers.py)

`report` is for after an edit of methods.md or findings.md: the prose changes, the figures
stay those of the last run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from portal_sync_dev import ROOT
from portal_sync_dev.bench import import_rows, visibility
from portal_sync_dev.bench.end_to_end import end_to_end
from portal_sync_dev.bench.report import (
    COLD_START_FINDINGS,
    SUMMARY_HEADER,
    cold_start_section,
    cold_start_summary,
    findings,
    machine,
    markdown_table,
    render,
    summary_rows,
    write_report,
)
from portal_sync_dev.bench.services import BenchDatabase, SystemProcess
from portal_sync_dev.bench.stats import median_summary
from portal_sync_dev.bench.workers import WORKERS, run_worker, worker_main
from portal_sync_dev.bench.workload import FUNCTIONS, QUICK, REGION, STATE_DIR, BenchError, Plan

BENCHMARKS = ROOT / "BENCHMARKS.md"
RESULTS = STATE_DIR / "results.json"
MEASUREMENTS = {"ingest", "apply", "import", "e2e", "visibility", "memory"}
# The import's and the visibility's workers live with their measurements.
WORKERS["import"] = import_rows.import_worker
WORKERS["visibility-latency"] = visibility.latency_worker
WORKERS["visibility-sweep"] = visibility.sweep_worker


def memory(system: SystemProcess, plan: Plan, work_dir: Path) -> dict[str, Any]:
    import boto3

    endpoint = system.info["aws_endpoint_url"]
    machines = boto3.client(
        "stepfunctions",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",  # noqa: S106 - moto's
    ).list_state_machines()["stateMachines"]
    config = {
        "run": system.info,
        "jwt_secret": system.jwt_secret,
        "state_machine_arn": machines[0]["stateMachineArn"] if machines else "",
        "calls": plan.memory_calls,
    }
    # A high-water mark, not a timing: two processes at a time do not change it.
    jobs = [(function, rep) for rep in range(plan.reps) for function in ("baseline", *FUNCTIONS)]
    with ThreadPoolExecutor(max_workers=2) as pool:
        done = list(
            pool.map(
                lambda job: run_worker("memory", {**config, "function": job[0]}, work_dir), jobs
            )
        )
    results: dict[str, Any] = {}
    for function in ("baseline", *FUNCTIONS):
        reps = [r for (name, _), r in zip(jobs, done, strict=True) if name == function]
        results[function] = {"reps": reps, "median": median_summary(reps)}
    return results


def full_import(
    database: BenchDatabase, plan: Plan, members: int, work_dir: Path
) -> dict[str, Any]:
    # A worker per run: each starts with a fresh interpreter and stand-in.
    config = {
        "database_url": database.url,
        "functions_database_url": database.functions_url,
        "members": members,
    }
    reps = [run_worker("import", config, work_dir, timeout=900) for _ in range(plan.reps)]
    return {"members": members, "reps": reps, "median": median_summary(reps)}


def run_all(
    plan: Plan, only: set[str], work_dir: Path, import_members: int = import_rows.MEMBERS
) -> dict[str, Any]:
    results: dict[str, Any] = {}
    with BenchDatabase(work_dir) as database:
        if "ingest" in only:
            _progress("ingest: handler in process against signature + JSON alone")
            results["ingest"] = run_worker(
                "ingest",
                {
                    "database_url": database.url,
                    "functions_database_url": database.functions_url,
                    "calls": plan.ingest_calls,
                    "reps": plan.reps,
                    "profile": plan.profile,
                    "profile_calls": plan.ingest_profile_calls,
                },
                work_dir,
            )
        if "apply" in only:
            _progress("apply: process_event at batches of 10 and 100 against a bare upsert")
            results["apply"] = run_worker(
                "apply",
                {
                    "database_url": database.url,
                    "functions_database_url": database.functions_url,
                    "events": plan.apply_events,
                    "batch_sizes": list(plan.apply_batch_sizes),
                    "reps": plan.reps,
                    "profile": plan.profile,
                    "profile_events": min(plan.apply_events, 1000),
                },
                work_dir,
            )
        if "import" in only:
            _progress(
                f"import: {import_members:,} members from the Dataverse stand-in against a bare"
                " batched upsert"
            )
            results["import"] = full_import(database, plan, import_members, work_dir)
        if only & {"e2e", "memory"}:
            _progress("starting the local system (as `make run` does)")
            with SystemProcess(work_dir, database.url) as system:
                if "e2e" in only:
                    _progress("end to end: webhooks over HTTP until the rows are visible")
                    results["e2e"] = end_to_end(system, plan)
                if "memory" in only:
                    _progress("memory: each function in a process of its own")
                    results["memory"] = memory(system, plan, work_dir)
        if "visibility" in only:
            # Its own local system, in its workers: the measurement reads the stand-in's record.
            _progress(
                "website visibility: change → Dynamics PATCH under the local system, and the"
                f" sweep over {visibility.SWEEP_MENTORS:,} mentors"
            )
            results["visibility"] = visibility.visibility(database, plan, work_dir)
    return results


def _progress(message: str) -> None:
    print(f"[bench {datetime.now().strftime('%H:%M:%S')}] {message}", flush=True)


def print_summary(results: dict[str, Any], benchmarks: Path = BENCHMARKS) -> None:
    # The cold start is make bench-cold's (run before this): its figures come from its section.
    cold = cold_start_section(benchmarks.read_text()) if benchmarks.exists() else None
    cold_rows, cold_finding = cold_start_summary(cold) if cold else ([], "")
    print()
    print(markdown_table(SUMMARY_HEADER, summary_rows(results) + cold_rows))
    print()
    for line in findings(results)[2:]:
        line = line.replace(COLD_START_FINDINGS, cold_finding)
        if line:
            print(line)
            print()


def report(kept: Path, output: Path) -> int:
    """BENCHMARKS.md again from kept results (after an edit of the prose)."""
    if not kept.exists():
        print(f"no results at {kept}: run `make bench` first", file=sys.stderr)
        return 1
    data = json.loads(kept.read_text())
    plan = Plan(**{**data["plan"], "apply_batch_sizes": tuple(data["plan"]["apply_batch_sizes"])})
    write_report(output, render(data["results"], data["machine"], plan, data["command"]))
    print(f"written to {output} from {kept}")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["worker"]:
        worker_main(*argv[1:4])
        return 0
    if argv[:1] == ["report"]:
        kept = Path(argv[1]) if len(argv) > 1 else RESULTS
        return report(kept, BENCHMARKS)
    parser = argparse.ArgumentParser(prog="python -m portal_sync_dev.bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer events, one run (a smoke test)")
    parser.add_argument("--reps", type=int, help="runs per measurement (median taken)")
    parser.add_argument("--only", help="comma-separated: ingest,apply,import,e2e,visibility,memory")
    parser.add_argument(
        "--import-members",
        type=int,
        help=f"members the import reads (default {import_rows.MEMBERS:,};"
        f" --quick {import_rows.QUICK_MEMBERS:,})",
    )
    parser.add_argument("--output", type=Path, default=BENCHMARKS)
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    parser.add_argument("--no-profile", action="store_true")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else Plan()
    if args.reps:
        plan = replace(plan, reps=args.reps)
    if args.no_profile:
        plan = replace(plan, profile=False)
    only = set(args.only.split(",")) if args.only else MEASUREMENTS
    if only - MEASUREMENTS:
        parser.error(f"unknown measurement: {', '.join(sorted(only - MEASUREMENTS))}")

    started = time.monotonic()
    load_before = os.getloadavg()
    work_dir = Path(tempfile.mkdtemp(prefix="portal-sync-bench-"))
    try:
        members = args.import_members or (
            import_rows.QUICK_MEMBERS if args.quick else import_rows.MEMBERS
        )
        results = run_all(plan, only, work_dir, members)
    except BenchError as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    info = machine(load_before)
    command = (
        "make bench"
        if os.environ.get("MAKELEVEL")
        else " ".join(["python -m portal_sync_dev.bench", *argv])
    )
    print_summary(results)
    saved = {"machine": info, "plan": asdict(plan), "command": command, "results": results}
    # A partial or quick run writes BENCHMARKS.md (and keeps its results for `report`) only
    # when asked to (--output).
    complete = only == MEASUREMENTS and not args.quick
    for path in filter(None, [args.json, RESULTS if complete else None]):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(saved, indent=2, default=str))
    if complete or args.output != BENCHMARKS:
        write_report(args.output, render(results, info, plan, command))
        print(f"written to {args.output}")
    print(f"({time.monotonic() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
