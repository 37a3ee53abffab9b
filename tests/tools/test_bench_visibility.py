"""The website-visibility rows of `make bench` (tools/portal_sync_dev/bench/visibility.py): the
summary rows and the section the report makes of a run's figures, and their verdicts. No
measurement runs here (it starts a local system of its own, minutes long)."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

from portal_sync_dev.bench import report
from portal_sync_dev.bench import run as bench_run
from portal_sync_dev.bench.workload import Plan


def latency(ms: float, count: int = 100) -> dict[str, float]:
    return {
        "count": count,
        "per_s": 1000 / ms,
        "mean_ms": ms,
        "p50_ms": ms,
        "p99_ms": 2 * ms,
        "max_ms": 3 * ms,
    }


def changes(patch_ms: float, not_seen: int, before_answer: int, answer_ms: float) -> dict[str, Any]:
    return {
        "changes": 100,
        "not_seen": not_seen,
        "patch": latency(patch_ms, 100 - not_seen),
        "before_answer": before_answer,
        "from_request": latency(patch_ms + answer_ms),
        "answer": latency(answer_ms),
        # Against the stand-in's round trip p99 (2 ms).
        "ratio": 2 * patch_ms / 2.0,
    }


def a_change_run(
    patch_ms: float, not_seen: int = 0, written_ms: float = 150, written_not_seen: int = 0
) -> dict[str, Any]:
    """A run's figures: the coordinator's changes through the route (`patch_ms`, the p50 from
    the answer), the Data API's writes (`written_ms`, from the commit) and the stand-in's own."""
    return {
        **changes(patch_ms, not_seen, before_answer=3, answer_ms=25.0),
        "data_api": changes(written_ms, written_not_seen, before_answer=0, answer_ms=1.5),
        "floor": {"not_seen": 0, "arrival": latency(0.2), "round_trip": latency(1.0)},
    }


def a_sweep_run(reached: int = 10, in_step_rows: int = 0) -> dict[str, Any]:
    return {
        "table_rows": 10_250,
        "sweep_ms": 410.0,
        "sweep_ms_per_10k": 400.0,
        "count_ms": 2.05,
        "count_ms_per_10k": 2.0,
        "ratio": 200.0,
        "returned": reached,
        "reached": reached,
        "in_step_changed": 0,
        "log_rows": reached + in_step_rows,
        "log_rows_out_of_step": reached,
        "log_rows_in_step": in_step_rows,
        "log_rows_others": 0,
    }


def results(changes: list[dict[str, Any]], sweeps: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "latency": {
            "changes": 100,
            "mentors": 20,
            "rate": 5.0,
            "pending_at_start": 0,
            "reps": changes,
            "median": changes[len(changes) // 2],
        },
        "sweep": {
            "mentors": 10_000,
            "out_of_step": 10,
            "reps": sweeps,
            "median": sweeps[len(sweeps) // 2],
        },
    }


def rendered(visibility: dict[str, Any], tmp_path: Path) -> str:
    data = json.loads(Path(__file__).with_name("bench_results.json").read_text())
    all_results = {**copy.deepcopy(data["results"]), "visibility": visibility}
    plan = Plan(**{**data["plan"], "apply_batch_sizes": tuple(data["plan"]["apply_batch_sizes"])})
    path = tmp_path / "BENCHMARKS.md"
    report.write_report(path, report.render(all_results, data["machine"], plan, "make bench"))
    return path.read_text()


def row(text: str, start: str) -> str:
    [line] = [line for line in text.splitlines() if line.startswith(f"| {start}")]
    return line


def test_the_report_has_the_visibility_rows_and_section_with_every_figure(
    tmp_path: Path,
) -> None:
    text = rendered(
        results([a_change_run(300), a_change_run(250), a_change_run(400)], [a_sweep_run()] * 3),
        tmp_path,
    )

    change = row(text, "Website visibility, change → Dynamics PATCH (5 changes/s)")
    assert "answer → PATCH at the stand-in: p50 250 ms, p99 500 ms" in change
    assert "(100 changes per run, 0 not seen)" in change
    assert "PATCH straight to the stand-in: p50 1.00 ms, p99 2.00 ms" in change
    assert "| 250x the stand-in (p99) | p99 < 5 s | **met** |" in change
    written = row(text, "Website visibility, change → Dynamics PATCH, Data API write (5 changes/s)")
    assert "commit → PATCH at the stand-in: p50 150 ms, p99 300 ms" in written
    assert "(100 changes per run, 0 not seen)" in written
    assert "PATCH straight to the stand-in: p50 1.00 ms, p99 2.00 ms" in written
    assert "| 150x the stand-in (p99) | p99 < 5 s | **met** |" in written
    sweep = row(text, "Website visibility, sweep (10,000 mentors, 10 out of step)")
    assert "400 ms per 10,000 mentors; reached 10 of 10, 10 log rows (0 for mentors in step)" in (
        sweep
    )
    assert "`select count(*)` of the same rows: 2.00 ms per 10,000" in sweep
    assert sweep.endswith("**met** |")

    headings = re.findall(r"^## (.+)$", text, re.MULTILINE)
    assert headings.index("Website visibility") == headings.index("End to end") + 1
    section = text[text.index("\n## Website visibility\n") : text.index("\n## Cold start\n")]
    assert "| **median** | 250 ms | 500 ms | 750 ms | 0 | 3 |" in section
    assert "| **median** | 150 ms | 300 ms | 450 ms | 0 | 0 | 152 ms | 303 ms | 1.50 ms |" in (
        section
    )
    assert "`update peer_mentor_status set paused = ...`" in section
    assert "| **median** | 10,250 | 410 ms | 400 ms | 10 | 10 | 0 | 10 | 0 | 0 | 2.05 ms |" in (
        section
    )
    assert "`POST /functions/v1/website-sync/{mentorId}/pause`" in section
    assert not re.search(r"\{[a-z_]+\}|\[\[|\]\]|<!--", text)


ROUTE_ROW = "Website visibility, change → Dynamics PATCH ("
DATA_API_ROW = "Website visibility, change → Dynamics PATCH, Data API write"


def test_a_slow_or_lost_patch_misses_the_target(tmp_path: Path) -> None:
    slow = rendered(results([a_change_run(2600)], [a_sweep_run()]), tmp_path)
    assert "p99 5,200 ms" in row(slow, ROUTE_ROW)
    assert row(slow, ROUTE_ROW).endswith("**missed** |")
    assert row(slow, DATA_API_ROW).endswith("**met** |")

    lost = rendered(results([a_change_run(300, not_seen=1)], [a_sweep_run()]), tmp_path)
    assert "1 not seen" in row(lost, ROUTE_ROW)
    assert row(lost, ROUTE_ROW).endswith("**missed** |")


def test_a_slow_or_lost_patch_after_a_data_api_write_misses_its_target(tmp_path: Path) -> None:
    slow = rendered(results([a_change_run(300, written_ms=2600)], [a_sweep_run()]), tmp_path)
    assert "commit → PATCH at the stand-in: p50 2,600 ms, p99 5,200 ms" in row(slow, DATA_API_ROW)
    assert row(slow, DATA_API_ROW).endswith("**missed** |")
    assert row(slow, ROUTE_ROW).endswith("**met** |")

    lost = rendered(results([a_change_run(300, written_not_seen=2)], [a_sweep_run()]), tmp_path)
    assert "2 not seen" in row(lost, DATA_API_ROW)
    assert row(lost, DATA_API_ROW).endswith("**missed** |")


def test_results_kept_from_before_the_data_api_series_still_render(tmp_path: Path) -> None:
    kept = a_change_run(300)
    del kept["data_api"]
    text = rendered(results([kept], [a_sweep_run()]), tmp_path)

    assert row(text, ROUTE_ROW).endswith("**met** |")
    assert DATA_API_ROW not in text
    assert "Data API write" not in text


def test_a_sweep_that_misses_a_mentor_or_writes_for_one_in_step_misses_the_target(
    tmp_path: Path,
) -> None:
    short = rendered(
        results([a_change_run(300)], [a_sweep_run(), a_sweep_run(reached=7)]), tmp_path
    )
    assert row(short, "Website visibility, sweep").endswith("**missed** |")

    noisy = rendered(results([a_change_run(300)], [a_sweep_run(in_step_rows=9990)]), tmp_path)
    sweep = row(noisy, "Website visibility, sweep")
    assert "10,000 log rows (9,990 for mentors in step)" in sweep
    assert sweep.endswith("**missed** |")


def test_the_bench_command_knows_the_visibility_row() -> None:
    assert "visibility" in bench_run.MEASUREMENTS
    assert {"visibility-latency", "visibility-sweep"} <= set(bench_run.WORKERS)
