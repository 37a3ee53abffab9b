"""Where a handler's time goes: a pyinstrument profile of its calls, its samples put into
categories (SQS, PostgreSQL, logging, ...) by the rules below, per function."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from portal_sync_dev.bench.workload import STATE_DIR

# (category, matches(function, file), sticky): the innermost matching frame of a sample names
# its category, except that nothing inside a sticky frame is re-categorised (but the emulator).
# The rules name the code's functions and files: when those are renamed, rename them here too
# (a sample no rule matches counts as OTHER, which a profile then shows growing).
Rule = tuple[str, Callable[[str, str], bool], bool]
EMULATOR = "AWS emulator (moto, in process; not there on AWS)"
OTHER = "Powertools routing / handler glue / other"


def _is_emulator(function: str, path: str) -> bool:
    return "/moto/" in path or "/werkzeug/" in path or "/responses/" in path


def _logging(function: str, path: str) -> bool:
    return (
        "/logging/" in path and "aws_lambda_powertools" not in path
    ) or "aws_lambda_powertools/logging/formatter" in path


def _metrics(function: str, path: str) -> bool:
    return "aws_lambda_powertools/metrics" in path and function != "decorate"


def _named(*names: str) -> Callable[[str, str], bool]:
    return lambda function, path: function in names


def _in_file(fragment: str) -> Callable[[str, str], bool]:
    return lambda function, path: fragment in path


def _either(*tests: Callable[[str, str], bool]) -> Callable[[str, str], bool]:
    return lambda function, path: any(test(function, path) for test in tests)


INGEST_RULES: list[Rule] = [
    ("SQS SendMessage (boto3/botocore client side)", _in_file("aws/sqs_queue.py"), True),
    ("PostgreSQL receipt and duplicate check (claim)", _named("claim"), True),
    ("signature check + JSON parse (the floor's work)", _named("_verify"), False),
    ("source config (Secrets Manager, cached)", _in_file("aws/source_store.py"), True),
    ("pydantic (receipt, queue message)", _in_file("/pydantic"), False),
    ("logging (Powertools JSON logger)", _logging, True),
    ("metrics (Powertools EMF)", _metrics, True),
]

APPLY_RULES: list[Rule] = [
    ("read: receipts and sync-log statuses (2 selects, 1 round trip)", _named("prepare"), True),
    ("read: lock members, memberships, enrolments", _named("prepare_members"), True),
    ("write: receipts (1 insert)", _named("insert_receipts", "_insert_receipts"), True),
    (
        "write: profiles (1 insert, 1 update)",
        _named("insert_profiles", "update_profiles", "_insert_profiles", "_update_profiles"),
        True,
    ),
    (
        "write: memberships (1 upsert; is_active only where a status changed)",
        _named("write_memberships", "_write_memberships"),
        True,
    ),
    ("write: enrolments (1 upsert)", _named("write_enrollments", "_write_enrollments"), True),
    (
        "write: sync log (1 upsert)",
        _either(_named("_write_log"), _in_file("postgres/sync_log.py")),
        True,
    ),
    ("visibility: reconsider mentor (insert-select + select)", _named("reconsider"), True),
    (
        "visibility: dispatch outbox",
        _named("start_visibility_changes", "_start_visibility_changes"),
        True,
    ),
    ("transaction control (begin, commit)", _in_file("psycopg/transaction.py"), True),
    ("message and event parsing (pydantic)", _named("validate_json", "_parse"), True),
    ("apply logic and sync log entries (in memory)", _named("_process"), True),
    ("logging (Powertools JSON logger)", _logging, True),
    ("metrics (Powertools EMF)", _metrics, True),
]


def categorise(
    frame_records: list[tuple[list[str], float]], rules: list[Rule], handler_file: str
) -> tuple[dict[str, float], float]:
    """Seconds per category of the samples under the handler in `handler_file`, and their sum.
    A frame is pyinstrument's "function\\x00file\\x00line" (then \\x01 and attributes)."""
    totals: dict[str, float] = {}
    handler_time = 0.0
    for stack, seconds in frame_records:
        frames = [frame.split("\x01", 1)[0].split("\x00") for frame in stack]
        start = next(
            (
                i
                for i, parts in enumerate(frames)
                if parts[0] == "handler" and len(parts) > 1 and parts[1].endswith(handler_file)
            ),
            None,
        )
        if start is None:
            continue
        handler_time += seconds
        category = OTHER
        sticky = False
        for parts in frames[start + 1 :]:
            function, path = parts[0], parts[1] if len(parts) > 1 else ""
            if _is_emulator(function, path):
                category = EMULATOR
                break
            if sticky:
                continue
            for name, matches, is_sticky in rules:
                if matches(function, path):
                    category, sticky = name, is_sticky
                    break
        totals[category] = totals.get(category, 0.0) + seconds
    return totals, handler_time


def profile_breakdown(
    run: Callable[[], Any], rules: list[Rule], handler_file: str, calls: int
) -> dict[str, Any]:
    """Runs `run` under pyinstrument; returns time per category of the handler's samples (ms per
    call) and saves the full profile under .local/bench/."""
    from pyinstrument import Profiler

    profiler = Profiler(interval=0.0002)
    profiler.start()
    run()
    session = profiler.stop()
    totals, handler_time = categorise(session.frame_records, rules, handler_file)
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    name = Path(handler_file).parent.name
    (STATE_DIR / f"{name}-profile.txt").write_text(
        profiler.output_text(unicode=False, color=False, show_all=False)
    )
    ordered = sorted(totals.items(), key=lambda item: item[1], reverse=True)
    return {
        "calls": calls,
        "handler_ms_per_call": 1000 * handler_time / calls,
        "categories": [
            {"name": key, "ms_per_call": 1000 * value / calls, "share": value / handler_time}
            for key, value in ordered
        ],
    }
