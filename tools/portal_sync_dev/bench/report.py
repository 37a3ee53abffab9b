"""BENCHMARKS.md from a run's results: the summary table, a section per measurement, the
findings. The tables and verdicts are computed here; the prose comes from methods.md and
findings.md (hand-edited, prose.py fills them in). The "Cold start" section is `make
bench-cold`'s (cold_start.py): kept as it is, and its table read for the summary and findings."""

from __future__ import annotations

import math
import os
import platform
import re
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from portal_sync_dev import ROOT
from portal_sync_dev.bench.prose import Prose
from portal_sync_dev.bench.workload import FUNCTIONS, Plan

# The targets the figures are held to.
INGEST_MAX_RATIO = 3.0
APPLY_MIN_RATIO = 0.5
APPLY_MIN_EVENTS_PER_S = 1000.0
IMPORT_MIN_RATIO = 0.5
IMPORT_MAX_SECONDS = 120.0
E2E_MAX_P99_S = 1.0
VISIBILITY_MAX_P99_S = 5.0
MEMORY_MAX_MB = 128.0
COLD_START_MAX_RATIO = 1.5
COLD_START_FUNCTIONS = ("WebhookIngest", "ProcessEvent", "AdminApi", "WebsiteSync", "Reconcile")

SUMMARY_HEADER = ["measurement", "figure", "baseline (same run)", "ratio", "target", ""]
COLD_START_PLACEHOLDER = "<!-- cold start -->"
# Filled from the "Cold start" section (make bench-cold's) when the report is written.
COLD_START_ROWS = "<!-- cold start rows -->"
COLD_START_FINDINGS = "<!-- cold start findings -->"
NOT_MEASURED = (
    "## Cold start\n\n"
    "_Not measured yet: `make bench-cold` writes this section; `make bench` keeps whatever it"
    " wrote._\n"
)


def methods() -> Prose:
    return Prose.load("methods.md")


def findings_prose() -> Prose:
    return Prose.load("findings.md")


# -- the machine -------------------------------------------------------------------------------


def machine(load_before: tuple[float, float, float]) -> dict[str, str]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        cpus = subprocess.run(["nproc"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        cpus = str(os.cpu_count())
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": cpus,
        "cpu": model,
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "os": f"{platform.system()} {platform.release()} ({platform.machine()})",
        "commit": commit,
        "memory_gb": _memory_gb(),
        "load": f"{load_before[0]:.1f} before the run, {os.getloadavg()[0]:.1f} after",
    }


def _memory_gb() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 1024 / 1024:.0f}"
    except OSError:
        pass
    return "?"


# -- formatting --------------------------------------------------------------------------------


def n(value: float, digits: int = 0) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:,.{digits}f}"


def ms(value: float) -> str:
    if value is None or math.isnan(value):
        return "-"
    if value < 0.0995:
        return f"{value * 1000:,.1f} µs" if value < 0.01 else f"{value * 1000:,.0f} µs"
    if value < 10:
        return f"{value:,.2f} ms"
    return f"{value:,.0f} ms"


def seconds(value: float) -> str:
    return f"{value:,.1f} s"


def percent(share: float) -> str:
    return f"{100 * share:.0f} %"


def met(ok: bool) -> str:
    return "**met**" if ok else "**missed**"


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _table_row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _share(profile: dict[str, Any], prefix: str) -> float:
    return float(sum(c["share"] for c in profile["categories"] if c["name"].startswith(prefix)))


# -- summary -----------------------------------------------------------------------------------


def summary_rows(results: dict[str, Any]) -> list[list[str]]:
    rows: list[list[str]] = []
    ingest = results.get("ingest")
    if ingest:
        m = ingest["median"]
        h, f = m["handler"], m["floor"]
        rows.append(
            [
                "Ingest handler, in process",
                f"{n(h['per_s'])} req/s; p50 {ms(h['p50_ms'])}, p99 {ms(h['p99_ms'])}",
                f"signature + JSON alone: {n(f['per_s'])} req/s; p50 {ms(f['p50_ms'])}",
                f"{n(m['ratio'])}x the floor's time"
                + (
                    f" ({n(m['ratio'] * (1 - _share(ingest['profile'], 'AWS emulator')))}x"
                    " without moto's own share)"
                    if "profile" in ingest
                    else ""
                ),
                f"within {INGEST_MAX_RATIO:g}x",
                met(m["ratio"] <= INGEST_MAX_RATIO),
            ]
        )
    apply = results.get("apply")
    if apply:
        for size, data in apply["batch_sizes"].items():
            m = data["median"]
            eps, ratio = m["handler"]["events_per_s"], m["ratio"]
            rows.append(
                [
                    f"Apply, batches of {size}",
                    f"{n(eps)} events/s ({ms(m['handler']['batch_p50_ms'])} per batch)",
                    f"bare batched writes of the same rows: {n(m['baseline']['events_per_s'])}"
                    " events/s",
                    f"{n(ratio, 2)}x the baseline",
                    f">= {APPLY_MIN_RATIO:g}x and >= {APPLY_MIN_EVENTS_PER_S:,.0f}/s",
                    met(ratio >= APPLY_MIN_RATIO and eps >= APPLY_MIN_EVENTS_PER_S),
                ]
            )
    full_import = results.get("import")
    if full_import:
        m = full_import["median"]
        i = m["import"]
        rows.append(
            [
                f"Import, {full_import['members']:,} members (contact + membership)",
                f"{n(i['rows_per_s'])} rows/s; whole import {seconds(i['seconds'])}"
                f" (stand-in {percent(i['standin_share'])} of it)",
                f"bare batched upsert of the same rows: {n(m['baseline']['rows_per_s'])} rows/s",
                f"{n(m['ratio'], 2)}x the baseline",
                f">= {IMPORT_MIN_RATIO:g}x and < {IMPORT_MAX_SECONDS / 60:g} min",
                met(import_met(m)),
            ]
        )
    e2e = results.get("e2e")
    if e2e:
        floor = e2e["floor"]["median"]["visible"]
        m = e2e["paced"]["median"]
        v = m["visible"]
        rows.append(
            [
                f"End to end, {e2e['rate']:g} webhooks/s",
                f"202 → row visible: p50 {ms(v['p50_ms'])}, p99 {ms(v['p99_ms'])}"
                f" ({e2e['events']:,} events per run, {n(m['not_seen'])} not seen)",
                f"watcher floor: p50 {ms(floor['p50_ms'])}, p99 {ms(floor['p99_ms'])}",
                f"{n(v['p99_ms'] / floor['p99_ms'])}x the floor (p99)",
                f"p99 < {E2E_MAX_P99_S:g} s",
                met(v["p99_ms"] < E2E_MAX_P99_S * 1000 and m["not_seen"] == 0),
            ]
        )
        b = e2e["burst"]["median"]
        v = b["visible"]
        rows.append(
            [
                f"End to end, burst ({e2e['burst_senders']} senders, stress)",
                f"202 → row visible: p50 {ms(v['p50_ms'])}, p99 {ms(v['p99_ms'])}"
                f" ({e2e['burst_events']:,} events per run, {n(b['not_seen'])} not seen)",
                f"watcher floor: p50 {ms(floor['p50_ms'])}, p99 {ms(floor['p99_ms'])}",
                f"{n(v['p99_ms'] / floor['p99_ms'])}x the floor (p99)",
                "none (context: a backlog)",
                "p99 over 1 s" if v["p99_ms"] >= E2E_MAX_P99_S * 1000 else "p99 under 1 s",
            ]
        )
        rows.append(
            [
                "Ingest over loopback HTTP (context)",
                f"{n(b['ingest_http_per_s'])} req/s at most (burst); at"
                f" {e2e['rate']:g}/s 202 p50 {ms(m['answer']['p50_ms'])},"
                f" p99 {ms(m['answer']['p99_ms'])}",
                "the handler in process (above)",
                f"{n(m['answer']['p50_ms'] / ingest['median']['handler']['p50_ms'], 1)}x its p50"
                if ingest
                else "-",
                "-",
                "-",
            ]
        )
    shown = results.get("visibility")
    if shown:
        rows += visibility_rows(shown)
    mem = results.get("memory")
    if mem:
        base = mem["baseline"]["median"]["peak_mb"]
        for function in FUNCTIONS:
            peak = mem[function]["median"]["peak_mb"]
            rows.append(
                [
                    f"Peak memory, {function}",
                    f"{n(peak, 1)} MB RSS ({n(mem[function]['median']['invocations'])}"
                    " invocations)",
                    f"python + boto3: {n(base, 1)} MB",
                    f"{n(peak / base, 2)}x",
                    f"< {MEMORY_MAX_MB:g} MB",
                    met(peak < MEMORY_MAX_MB),
                ]
            )
    return rows


# -- the document ------------------------------------------------------------------------------


def render(results: dict[str, Any], info: dict[str, str], plan: Plan, command: str) -> str:
    """BENCHMARKS.md with placeholders for what the Cold start section gives (write_report)."""
    lead = methods().fill("lead", {**info, "command": command, "reps": str(plan.reps)})
    parts = [
        "# Benchmarks",
        "",
        lead,
        "",
        "## Summary",
        "",
        markdown_table(SUMMARY_HEADER, summary_rows(results)),
        COLD_START_ROWS,
        "",
    ]
    if "ingest" in results:
        parts += ["## Ingest", "", ingest_section(results["ingest"], plan), ""]
    if "apply" in results:
        parts += ["## Apply", "", apply_section(results["apply"], plan), ""]
    if "import" in results:
        parts += ["## Import", "", import_section(results["import"]), ""]
    if "e2e" in results:
        parts += ["## End to end", "", e2e_section(results["e2e"]), ""]
    if "visibility" in results:
        parts += ["## Website visibility", "", visibility_section(results["visibility"]), ""]
    parts.append(COLD_START_PLACEHOLDER)
    if "memory" in results:
        parts += ["## Memory", "", memory_section(results["memory"], plan), ""]
    parts += findings(results)
    return "\n".join(parts).rstrip() + "\n"


def _breakdown_table(profile: dict[str, Any], unit: str = "call") -> str:
    rows = [
        [c["name"], ms(c["ms_per_call"]), f"{100 * c['share']:.0f} %"]
        for c in profile["categories"]
        if c["share"] >= 0.005
    ]
    return markdown_table(["where", f"per {unit}", "share"], rows)


def ingest_section(ingest: dict[str, Any], plan: Plan) -> str:
    def row(label: str, r: dict[str, Any]) -> list[str]:
        return [
            label,
            n(r["handler"]["per_s"]),
            ms(r["handler"]["p50_ms"]),
            ms(r["handler"]["p99_ms"]),
            n(r["floor"]["per_s"]),
            ms(r["floor"]["p50_ms"]),
            ms(r["floor"]["p99_ms"]),
            f"{r['ratio']:.1f}x",
        ]

    rows = [row(f"run {i + 1}", r) for i, r in enumerate(ingest["reps"])]
    rows.append(row("**median**", ingest["median"]))
    header = ["", "handler req/s", "p50", "p99", "floor req/s", "floor p50", "floor p99", "ratio"]
    figures: dict[str, str | None] = {
        "calls": f"{plan.ingest_calls:,}",
        "body_bytes": str(ingest["body_bytes"]),
        "runs_table": markdown_table(header, rows),
    }
    profile = ingest.get("profile")
    if profile:
        figures |= {
            "profile_calls": f"{profile['calls']:,}",
            "profile_ms_per_call": ms(profile["handler_ms_per_call"]),
            "profile_table": _breakdown_table(profile),
        }
    return methods().fill("ingest", figures)


def apply_section(apply: dict[str, Any], plan: Plan) -> str:
    rows = []
    for size, data in apply["batch_sizes"].items():
        for i, r in enumerate(data["reps"]):
            rows.append(_apply_row(f"{size}", f"run {i + 1}", r))
        rows.append(_apply_row(f"**{size}**", "**median**", data["median"]))
    profile = apply["profile"]
    trips = profile["round_trips_per_event"]
    bare_trips = profile["baseline_round_trips_per_event"]
    header = [
        "batch",
        "",
        "handler events/s",
        "per batch p50",
        "per batch p99",
        "client CPU",
        "server CPU / event",
        "baseline events/s",
        "baseline server CPU / event",
        "ratio",
        "two tables events/s",
    ]
    figures: dict[str, str | None] = {
        "events": f"{plan.apply_events:,}",
        "runs_table": markdown_table(header, rows),
        "round_trip": ms(profile["round_trip_ms"]),
        "round_trips": ", ".join(f"{trips[s]:.1f} (batches of {s})" for s in trips),
        "baseline_round_trips": ", ".join(
            f"{bare_trips[s]:.2f} (batches of {s})" for s in bare_trips
        ),
    }
    prepared = profile.get("prepared")
    if prepared:
        figures |= {
            "prepared_batch_size": str(prepared["batch_size"]),
            "prepared_events_per_s": n(prepared["events_per_s"]),
            "prepared_server_cpu": ms(prepared["server_cpu_ms_per_event"]),
        }
    if "categories" in profile:
        figures |= {
            "profile_events": f"{profile['calls']:,}",
            "profile_batch_size": str(profile["batch_size"]),
            "profile_ms_per_event": ms(profile["handler_ms_per_call"]),
            "profile_table": _breakdown_table(profile, "event"),
        }
    return methods().fill("apply", figures)


def _apply_row(size: str, label: str, r: dict[str, Any]) -> list[str]:
    return [
        size,
        label,
        n(r["handler"]["events_per_s"]),
        ms(r["handler"]["batch_p50_ms"]),
        ms(r["handler"]["batch_p99_ms"]),
        f"{100 * r['handler']['cpu_share']:.0f} %",
        ms(r["handler"]["server_cpu_ms_per_event"]),
        n(r["baseline"]["events_per_s"]),
        ms(r["baseline"]["server_cpu_ms_per_event"]),
        f"{r['ratio']:.2f}x",
        n(r["two_tables"]["events_per_s"]),
    ]


def import_met(median: dict[str, Any]) -> bool:
    return bool(
        median["ratio"] >= IMPORT_MIN_RATIO and median["import"]["seconds"] < IMPORT_MAX_SECONDS
    )


def import_section(full_import: dict[str, Any]) -> str:
    def row(label: str, r: dict[str, Any]) -> list[str]:
        i, b = r["import"], r["baseline"]
        return [
            label,
            n(i["rows"]),
            n(i["pages"]),
            seconds(i["seconds"]),
            n(i["rows_per_s"]),
            percent(i["standin_share"]),
            percent(i["reading_share"]),
            seconds(b["seconds"]),
            n(b["rows_per_s"]),
            f"{r['ratio']:.2f}x",
        ]

    rows = [row(f"run {i + 1}", r) for i, r in enumerate(full_import["reps"])]
    rows.append(row("**median**", full_import["median"]))
    header = [
        "",
        "rows read",
        "pages",
        "whole import",
        "import rows/s",
        "stand-in",
        "reading",
        "baseline",
        "baseline rows/s",
        "ratio",
    ]
    first = full_import["reps"][0]
    figures: dict[str, str | None] = {
        "members": f"{full_import['members']:,}",
        "page_size": f"{first['import']['page_size']:,}",
        "runs_table": markdown_table(header, rows),
    }
    return methods().fill("import", figures)


def e2e_section(e2e: dict[str, Any]) -> str:
    rows = []
    for key, label in (("paced", f"{e2e['rate']:g}/s"), ("burst", "burst")):
        for i, r in enumerate(e2e[key]["reps"]):
            rows.append(_e2e_row(label, f"run {i + 1}", r))
        rows.append(_e2e_row(f"**{label}**", "**median**", e2e[key]["median"]))
    floor_rows = [
        [
            f"run {i + 1}" if i < len(e2e["floor"]["reps"]) else "**median**",
            ms(r["visible"]["p50_ms"]),
            ms(r["visible"]["p99_ms"]),
            n(r["not_seen"]),
        ]
        for i, r in enumerate([*e2e["floor"]["reps"], e2e["floor"]["median"]])
    ]
    header = [
        "load",
        "",
        "visible p50",
        "visible p99",
        "max",
        "not seen",
        "202 p50",
        "202 p99",
        "HTTP req/s",
        "queue wait p50",
        "queue wait p99",
    ]
    figures = {
        "events": f"{e2e['events']:,}",
        "rate": f"{e2e['rate']:g}",
        "paced_senders": str(e2e["paced_senders"]),
        "burst_events": f"{e2e['burst_events']:,}",
        "burst_senders": str(e2e["burst_senders"]),
        "runs_table": markdown_table(header, rows),
        "floor_table": markdown_table(["", "visible p50", "visible p99", "not seen"], floor_rows),
    }
    return methods().fill("end to end", figures)


def _e2e_row(load: str, label: str, r: dict[str, Any]) -> list[str]:
    return [
        load,
        label,
        ms(r["visible"]["p50_ms"]),
        ms(r["visible"]["p99_ms"]),
        ms(r["visible"]["max_ms"]),
        n(r["not_seen"]),
        ms(r["answer"]["p50_ms"]),
        ms(r["answer"]["p99_ms"]),
        n(r["ingest_http_per_s"]),
        ms(r["queue_wait"]["p50_ms"]),
        ms(r["queue_wait"]["p99_ms"]),
    ]


def visibility_latency_met(median: dict[str, Any]) -> bool:
    return bool(median["patch"]["p99_ms"] < VISIBILITY_MAX_P99_S * 1000 and not median["not_seen"])


def visibility_sweep_met(sweep: dict[str, Any]) -> bool:
    """Every run reached every mentor out of step and wrote nothing for the ones in step."""
    return all(
        r["reached"] == sweep["out_of_step"]
        and not r["in_step_changed"]
        and not r["log_rows_in_step"]
        for r in sweep["reps"]
    )


def visibility_rows(shown: dict[str, Any]) -> list[list[str]]:
    latency, sweep = shown["latency"], shown["sweep"]
    m = latency["median"]
    floor = m["floor"]["round_trip"]
    s = sweep["median"]

    def change_row(label: str, since: str, changes: dict[str, Any]) -> list[str]:
        p = changes["patch"]
        return [
            f"Website visibility, change → Dynamics PATCH{label} ({latency['rate']:g} changes/s)",
            f"{since} → PATCH at the stand-in: p50 {ms(p['p50_ms'])}, p99 {ms(p['p99_ms'])}"
            f" ({latency['changes']:,} changes per run, {n(changes['not_seen'])} not seen)",
            f"PATCH straight to the stand-in: p50 {ms(floor['p50_ms'])}, p99 {ms(floor['p99_ms'])}",
            f"{n(changes['ratio'])}x the stand-in (p99)",
            f"p99 < {VISIBILITY_MAX_P99_S:g} s",
            met(visibility_latency_met(changes)),
        ]

    rows = [change_row("", "answer", m)]
    # Results kept from before the Data API series was measured have none.
    if "data_api" in m:
        rows.append(change_row(", Data API write", "commit", m["data_api"]))
    return [
        *rows,
        [
            f"Website visibility, sweep ({sweep['mentors']:,} mentors,"
            f" {sweep['out_of_step']} out of step)",
            f"{ms(s['sweep_ms_per_10k'])} per 10,000 mentors; reached {n(s['reached'])} of"
            f" {sweep['out_of_step']}, {n(s['log_rows'])} log rows"
            f" ({n(s['log_rows_in_step'])} for mentors in step)",
            f"`select count(*)` of the same rows: {ms(s['count_ms_per_10k'])} per 10,000",
            f"{n(s['ratio'])}x the count",
            f"all {sweep['out_of_step']} reached; nothing written for mentors in step",
            met(visibility_sweep_met(sweep)),
        ],
    ]


def visibility_section(shown: dict[str, Any]) -> str:
    latency, sweep = shown["latency"], shown["sweep"]

    def change_row(label: str, r: dict[str, Any]) -> list[str]:
        p, f = r["patch"], r["floor"]
        return [
            label,
            ms(p["p50_ms"]),
            ms(p["p99_ms"]),
            ms(p["max_ms"]),
            n(r["not_seen"]),
            n(r["before_answer"]),
            ms(r["from_request"]["p50_ms"]),
            ms(r["from_request"]["p99_ms"]),
            ms(r["answer"]["p50_ms"]),
            ms(r["answer"]["p99_ms"]),
            ms(f["arrival"]["p50_ms"]),
            ms(f["round_trip"]["p50_ms"]),
            ms(f["round_trip"]["p99_ms"]),
            f"{r['ratio']:,.0f}x",
        ]

    def sweep_row(label: str, r: dict[str, Any]) -> list[str]:
        return [
            label,
            n(r["table_rows"]),
            ms(r["sweep_ms"]),
            ms(r["sweep_ms_per_10k"]),
            n(r["returned"]),
            n(r["reached"]),
            n(r["in_step_changed"]),
            n(r["log_rows_out_of_step"]),
            n(r["log_rows_in_step"]),
            n(r["log_rows_others"]),
            ms(r["count_ms"]),
            f"{r['ratio']:,.0f}x",
        ]

    def data_api_row(label: str, r: dict[str, Any]) -> list[str]:
        d = r["data_api"]
        p = d["patch"]
        return [
            label,
            ms(p["p50_ms"]),
            ms(p["p99_ms"]),
            ms(p["max_ms"]),
            n(d["not_seen"]),
            n(d["before_answer"]),
            ms(d["from_request"]["p50_ms"]),
            ms(d["from_request"]["p99_ms"]),
            ms(d["answer"]["p50_ms"]),
            ms(d["answer"]["p99_ms"]),
            f"{d['ratio']:,.0f}x",
        ]

    changes = [change_row(f"run {i + 1}", r) for i, r in enumerate(latency["reps"])]
    changes.append(change_row("**median**", latency["median"]))
    # Results kept from before the Data API series was measured have none.
    writes = None
    if "data_api" in latency["median"]:
        writes = [data_api_row(f"run {i + 1}", r) for i, r in enumerate(latency["reps"])]
        writes.append(data_api_row("**median**", latency["median"]))
    sweeps = [sweep_row(f"run {i + 1}", r) for i, r in enumerate(sweep["reps"])]
    sweeps.append(sweep_row("**median**", sweep["median"]))
    change_header = [
        "",
        "answer → PATCH p50",
        "p99",
        "max",
        "not seen",
        "PATCH before the answer",
        "request → PATCH p50",
        "p99",
        "route answer p50",
        "p99",
        "stand-in: arrival p50",
        "round trip p50",
        "round trip p99",
        "ratio (p99)",
    ]
    data_api_header = [
        "",
        "commit → PATCH p50",
        "p99",
        "max",
        "not seen",
        "PATCH before the commit returned",
        "update sent → PATCH p50",
        "p99",
        "update + commit p50",
        "p99",
        "ratio (p99)",
    ]
    sweep_header = [
        "",
        "mentors in the table",
        "sweep",
        "per 10,000",
        "sweep() returned",
        "out of step reached",
        "in step changed",
        "log rows, out of step",
        "in step",
        "others",
        "`count(*)`",
        "ratio",
    ]
    figures: dict[str, str | None] = {
        "changes": f"{latency['changes']:,}",
        "mentors": str(latency["mentors"]),
        "rate": f"{latency['rate']:g}",
        "changes_table": markdown_table(change_header, changes),
        "data_api_table": markdown_table(data_api_header, writes) if writes else None,
        "sweep_mentors": f"{sweep['mentors']:,}",
        "out_of_step": str(sweep["out_of_step"]),
        "sweep_table": markdown_table(sweep_header, sweeps),
    }
    return methods().fill("visibility", figures)


def memory_section(mem: dict[str, Any], plan: Plan) -> str:
    rows = []
    for function in ("baseline", *FUNCTIONS):
        m = mem[function]["median"]
        rows.append(
            [
                "python + boto3 (baseline)" if function == "baseline" else f"`{function}`",
                n(m["start_mb"], 1),
                n(m["import_mb"], 1),
                n(m.get("first_call_mb") or m["peak_mb"], 1),
                f"**{n(m['peak_mb'], 1)}**",
                n(m["end_mb"], 1),
                n(m.get("invocations", 0)),
                ", ".join(
                    f"{k}: {v}" for k, v in (mem[function]["reps"][0].get("statuses") or {}).items()
                ),
            ]
        )
    header = [
        "process",
        "start MB",
        "after import MB",
        "after 1st call MB",
        "peak MB",
        "at end MB",
        "invocations",
        "answers (run 1)",
    ]
    figures = {
        "calls": f"{plan.memory_calls:,}",
        "batches": str(max(1, plan.memory_calls // 50)),
        "table": markdown_table(header, rows),
    }
    return methods().fill("memory", figures)


# -- findings ----------------------------------------------------------------------------------


def findings(results: dict[str, Any]) -> list[str]:
    """What the numbers say (findings.md), one paragraph per measurement that ran, then the
    placeholder of the cold start's."""
    prose = findings_prose()
    lines = ["## Findings", ""]
    if "ingest" in results:
        lines += [prose.fill("ingest", ingest_findings(results["ingest"], results.get("e2e"))), ""]
    if "apply" in results:
        lines += [prose.fill("apply", apply_findings(results["apply"], prose)), ""]
    if "e2e" in results:
        lines += [prose.fill("end to end", e2e_findings(results["e2e"])), ""]
    if "import" in results:
        lines += [prose.fill("import", import_findings(results["import"])), ""]
    if "memory" in results:
        lines += [prose.fill("memory", memory_findings(results["memory"])), ""]
    if "visibility" in results and "data_api" in results["visibility"]["latency"]["median"]:
        lines += [prose.fill("visibility", visibility_findings(results["visibility"])), ""]
    lines.append(COLD_START_FINDINGS)
    return lines


def ingest_findings(ingest: dict[str, Any], e2e: dict[str, Any] | None) -> dict[str, str | None]:
    m = ingest["median"]
    ratio = m["ratio"]
    handler_ms, floor_ms = m["handler"]["mean_ms"], m["floor"]["mean_ms"]
    figures: dict[str, str | None] = {
        "verdict": met(ratio <= INGEST_MAX_RATIO),
        "ratio": f"{ratio:,.0f}",
        "handler_mean": ms(handler_ms),
        "body_bytes": str(ingest["body_bytes"]),
        "floor_mean": ms(floor_ms),
    }
    profile = ingest.get("profile")
    if profile:
        # Shares are robust to the profiler's overhead; apply them to the unprofiled mean.
        def part(prefix: str) -> float:
            return float(handler_ms * _share(profile, prefix))

        emulator, sqs = part("AWS emulator"), part("SQS")
        database, verify = part("PostgreSQL"), part("signature")
        overhead = handler_ms - emulator - sqs - database - verify
        figures |= {
            "emulator": ms(emulator),
            "sqs": ms(sqs),
            "database": ms(database),
            "round_trips": f"{ingest['round_trips_per_call']:.0f}",
            "verify": ms(verify),
            "overhead": ms(overhead),
            "network_vs_floor": f"{min(database, sqs) / floor_ms:,.0f}",
            "overhead_vs_floor": f"{overhead / floor_ms:,.0f}",
            "p99": ms(m["handler"]["p99_ms"]),
            "http_p99": ms(e2e["paced"]["median"]["answer"]["p99_ms"]) if e2e else None,
        }
    return figures


def visibility_findings(shown: dict[str, Any]) -> dict[str, str | None]:
    m, s = shown["latency"]["median"], shown["sweep"]["median"]
    data_api = m["data_api"]
    return {
        "verdict": met(
            visibility_latency_met(m)
            and visibility_latency_met(data_api)
            and visibility_sweep_met(shown["sweep"])
        ),
        "route_p99": ms(m["patch"]["p99_ms"]),
        "data_api_p50": ms(data_api["patch"]["p50_ms"]),
        "data_api_p99": ms(data_api["patch"]["p99_ms"]),
        "floor_p99": ms(m["floor"]["round_trip"]["p99_ms"]),
        "sweep": ms(s["sweep_ms_per_10k"]),
        "count": ms(s["count_ms_per_10k"]),
    }


def import_findings(full_import: dict[str, Any]) -> dict[str, str | None]:
    m = full_import["median"]
    ratios = [r["ratio"] for r in full_import["reps"]]
    return {
        "verdict": met(import_met(m)),
        "ratio": f"{m['ratio']:.2f}",
        "low": f"{min(ratios):.2f}",
        "high": f"{max(ratios):.2f}",
        "members": f"{full_import['members']:,}",
        "whole": seconds(m["import"]["seconds"]),
        "rows_per_s": n(m["import"]["rows_per_s"]),
        "standin": percent(m["import"]["standin_share"]),
    }


def apply_findings(apply: dict[str, Any], prose: Prose) -> dict[str, str | None]:
    sizes = apply["batch_sizes"]
    profile = apply["profile"]
    trips = profile["round_trips_per_event"]
    parts = []
    ok_all = True
    for size, data in sizes.items():
        m = data["median"]
        eps, ratio = m["handler"]["events_per_s"], m["ratio"]
        ok_all &= ratio >= APPLY_MIN_RATIO and eps >= APPLY_MIN_EVENTS_PER_S
        parts.append(
            prose.fill(
                "apply, per batch size",
                {
                    "events_per_s": f"{eps:,.0f}",
                    "size": size,
                    "ratio": f"{ratio:.2f}",
                    "two_tables_ratio": f"{eps / m['two_tables']['events_per_s']:.2f}",
                },
            )
        )
    largest, smallest = max(sizes, key=int), min(sizes, key=int)
    m = sizes[largest]["median"]
    per_event = m["handler"]["per_event_ms"]
    client = per_event * m["handler"]["cpu_share"]
    server = m["handler"]["server_cpu_ms_per_event"]
    rest = max(0.0, per_event - client - (0 if math.isnan(server) else server))
    small = sizes[smallest]["median"]
    top = profile.get("categories", [])[:6]
    return {
        "verdict": met(ok_all),
        "per_batch_size": "; ".join(parts),
        "largest": largest,
        "smallest": smallest,
        "largest_round_trips": f"{trips[largest]:.2f}",
        "smallest_round_trips": f"{trips[smallest]:.1f}",
        "per_event": ms(per_event),
        "server_cpu": ms(server),
        "baseline_server_cpu": ms(m["baseline"]["server_cpu_ms_per_event"]),
        "client_cpu": ms(client),
        "rest": ms(rest),
        "round_trip": ms(profile["round_trip_ms"]),
        "top_categories": (
            "; ".join(f"{c['name']} {100 * c['share']:.0f} %" for c in top)
            if "categories" in profile
            else None
        ),
        "smallest_batch_p50": ms(small["handler"]["batch_p50_ms"]),
        "largest_batch_p50": ms(m["handler"]["batch_p50_ms"]),
    }


def e2e_findings(e2e: dict[str, Any]) -> dict[str, str | None]:
    paced = e2e["paced"]["median"]
    burst = e2e["burst"]["median"]
    ok = paced["visible"]["p99_ms"] < E2E_MAX_P99_S * 1000 and paced["not_seen"] == 0
    return {
        "verdict": met(ok),
        "rate": f"{e2e['rate']:g}",
        "p50": ms(paced["visible"]["p50_ms"]),
        "p99": ms(paced["visible"]["p99_ms"]),
        "queue_wait_p99": ms(paced["queue_wait"]["p99_ms"]),
        "burst_per_s": f"{burst['ingest_http_per_s']:,.0f}",
        "burst_p99": ms(burst["visible"]["p99_ms"]),
        "paced_not_seen": f"{paced['not_seen']:.0f}",
        "burst_not_seen": f"{burst['not_seen']:.0f}",
    }


def memory_findings(mem: dict[str, Any]) -> dict[str, str | None]:
    worst = max(FUNCTIONS, key=lambda f: mem[f]["median"]["peak_mb"])
    m = mem[worst]["median"]
    peak = m["peak_mb"]
    return {
        "verdict": met(all(mem[f]["median"]["peak_mb"] < MEMORY_MAX_MB for f in FUNCTIONS)),
        "worst": worst,
        "peak": f"{peak:.0f}",
        "peak_vs_baseline": f"{peak / mem['baseline']['median']['peak_mb']:.1f}",
        "import_mb": f"{m['import_mb']:.0f}",
        "after_first_call": f"{peak - (m.get('first_call_mb') or peak):.1f}",
    }


# -- the cold start (make bench-cold's section) ------------------------------------------------


def _cold_start_table(section: str) -> list[list[str]]:
    """The rows of the cold-start table: process, first call, import, first call, of it CPU,
    import + first call, ratio, CPU ratio, process (as make bench-cold writes them)."""
    rows = []
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 9 and cells[0].strip("`") in (*COLD_START_FUNCTIONS, "import boto3"):
            rows.append(cells)
    return rows


def _ratio(cell: str) -> float:
    return float(cell.replace("⚠", "").strip())


def cold_start_summary(section: str) -> tuple[list[list[str]], str]:
    """Summary rows and the finding (findings.md's `cold start`) from the section's table."""
    table = _cold_start_table(section)
    floor = next((r for r in table if r[0] == "`import boto3`" and r[1] == "-"), None)
    with_call = next((r for r in table if r[0] == "`import boto3`" and r[1] != "-"), None)
    if floor is None:
        return [], ""
    rows, worst = [], []
    for function in COLD_START_FUNCTIONS:
        own = [r for r in table if r[0] == function]
        real = [r for r in own if r[1].startswith("real")]
        trivial = [r for r in own if r[1].startswith("trivial")]
        if not own:
            continue
        slowest = max(real or own, key=lambda r: _ratio(r[6]))
        ratio = _ratio(slowest[6])
        worst.append((function, ratio, slowest[1]))
        rows.append(
            [
                f"Cold start, {function}",
                f"{slowest[5]} ms import + first call ({slowest[1].split(': ', 1)[-1]})"
                + (f"; {trivial[0][5]} ms with a trivial first call" if trivial else ""),
                f"`import boto3`: {floor[5]} ms"
                + (f"; with one SQS call {with_call[5]} ms" if with_call else ""),
                f"{ratio:.2f}x" + (f" (trivial: {_ratio(trivial[0][6]):.2f}x)" if trivial else ""),
                f"within {COLD_START_MAX_RATIO:g}x",
                met(ratio <= COLD_START_MAX_RATIO),
            ]
        )
    trivial_ratios = [_ratio(r[6]) for r in table if r[1].startswith("trivial")]
    slowest_row = max((r for r in table if r[0] != "`import boto3`"), key=lambda r: float(r[5]))
    text = findings_prose().fill(
        "cold start",
        {
            "verdict": met(all(ratio <= COLD_START_MAX_RATIO for _, ratio, _ in worst)),
            "low": f"{min(r for _, r, _ in worst):.2f}",
            "high": f"{max(r for _, r, _ in worst):.2f}",
            "with_call": f"{_ratio(with_call[6]):.2f}" if with_call else None,
            "trivial_low": f"{min(trivial_ratios, default=math.nan):.2f}",
            "trivial_high": f"{max(trivial_ratios, default=math.nan):.2f}",
            "slowest_name": (
                f"{slowest_row[0]}, {slowest_row[1].split(': ', 1)[-1].split(' → ')[0]}"
            ),
            "slowest_ms": slowest_row[5],
        },
    )
    return rows, text


def cold_start_section(text: str) -> str | None:
    lines = text.splitlines(keepends=True)
    for index, line in enumerate(lines):
        heading = re.match(r"^(#{1,6})\s+cold start\b", line, re.IGNORECASE)
        if heading is None:
            continue
        level = len(heading.group(1))
        end = len(lines)
        for later in range(index + 1, len(lines)):
            other = re.match(r"^(#{1,6})\s", lines[later])
            if other and len(other.group(1)) <= level:
                end = later
                break
        return "".join(lines[index:end])
    return None


def write_report(path: Path, text: str) -> None:
    """Writes `text`, putting the existing "Cold start" section (`make bench-cold`'s) where the
    placeholder is, unchanged."""
    cold = cold_start_section(path.read_text()) if path.exists() else None
    if cold is None:
        cold = NOT_MEASURED
    rows, finding = cold_start_summary(cold)
    text = text.replace(COLD_START_ROWS + "\n", "".join(_table_row(r) + "\n" for r in rows))
    text = text.replace(COLD_START_FINDINGS, finding + "\n" if finding else "")
    path.write_text(text.replace(COLD_START_PLACEHOLDER, cold.rstrip() + "\n"))
