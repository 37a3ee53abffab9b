"""BENCHMARKS.md as `make bench` writes it (tools/portal_sync_dev/bench/report.py): the figures
of a run, its prose from the hand-edited methods.md and findings.md, the Cold start section
`make bench-cold` wrote kept as it is. bench_results.json is a run's results as `make bench`
keeps them (.local/bench/results.json); no measurement runs here."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest
from portal_sync_dev.bench import prose, report
from portal_sync_dev.bench import run as bench_run
from portal_sync_dev.bench.workload import Plan

KEPT = Path(__file__).with_name("bench_results.json")
COLD_START = """\
## Cold start

Written by `make bench-cold`.

| process | first call → answer | import (ms) | first call (ms) | of it CPU (ms) | import + first call (ms) | ratio | CPU ratio | process (ms) |
|---|---|---:|---:|---:|---:|---:|---:|---:|
| `import boto3` | - | 222 | 0 | 0 | 222 | 1.00 | 1.00 | 260 |
| `import boto3` | real: SQS SendMessage → `200` | 222 | 50 | 20 | 272 | 1.23 | 1.10 | 310 |
| WebhookIngest | trivial: CORS preflight → `200` | 300 | 14 | 10 | 314 | 1.42 | 1.30 | 350 |
| WebhookIngest | real: signed webhook → `202` | 300 | 232 | 90 | 532 | 2.40 ⚠ | 1.90 | 570 |
| ProcessEvent | real: batch of one event → `{"batchItemFailures": []}` | 250 | 42 | 30 | 292 | 1.32 | 1.20 | 330 |
"""


def kept() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(KEPT.read_text())
    return data


def plan(data: dict[str, Any]) -> Plan:
    return Plan(**{**data["plan"], "apply_batch_sizes": tuple(data["plan"]["apply_batch_sizes"])})


def write(tmp_path: Path, results: dict[str, Any] | None = None) -> str:
    """BENCHMARKS.md written over one that has a Cold start section."""
    data = kept()
    path = tmp_path / "BENCHMARKS.md"
    path.write_text("# Benchmarks\n\nan older run\n\n" + COLD_START)
    text = report.render(
        data["results"] if results is None else results, data["machine"], plan(data), "make bench"
    )
    report.write_report(path, text)
    return path.read_text()


def section(text: str, heading: str) -> str:
    start = text.index(f"\n## {heading}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else None]


def finding(text: str, name: str) -> str:
    [line] = [line for line in text.splitlines() if line.startswith(f"- **{name}** (")]
    return line


def test_the_report_has_a_section_per_measurement_and_every_figure_filled(tmp_path: Path) -> None:
    text = write(tmp_path)
    headings = re.findall(r"^## (.+)$", text, re.MULTILINE)
    assert headings == [
        "Summary",
        "Ingest",
        "Apply",
        "End to end",
        "Cold start",
        "Memory",
        "Findings",
    ]
    # Nothing of the prose's own syntax reaches the document.
    assert not re.search(r"\{[a-z_]+\}|\[\[|\]\]|<!--", text)
    findings = section(text, "Findings")
    for name in ("Ingest", "Apply", "End to end", "Memory", "Cold start"):
        assert f"- **{name}** (" in findings
    # One paragraph per line: BENCHMARKS.md's diffs stay per paragraph.
    assert all(line.startswith("- **") for line in findings.strip().splitlines()[2::2])


def test_the_findings_are_the_hand_edited_file_filled_with_the_run(tmp_path: Path) -> None:
    data = kept()
    text = write(tmp_path)
    findings = section(text, "Findings")
    ingest = data["results"]["ingest"]["median"]
    assert f"- **Ingest** (**missed**, {ingest['ratio']:,.0f}x)" in findings
    assert f"HMAC-SHA256 over {data['results']['ingest']['body_bytes']} bytes" in findings
    # A sentence of findings.md that no code writes.
    assert "so the target as written is unreachable, not missed by a margin" in findings
    memory = data["results"]["memory"]
    worst = max(report.FUNCTIONS, key=lambda f: memory[f]["median"]["peak_mb"])
    assert f"the largest is `{worst}`" in findings


def test_an_edit_of_findings_md_is_what_the_report_says(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    edited = tmp_path / "findings.md"
    original = (Path(prose.__file__).parent / "findings.md").read_text()
    edited.write_text(
        original.replace(
            "so nothing accumulates per invocation.",
            "so nothing accumulates per invocation (checked by hand, {peak} MB).",
        )
    )
    monkeypatch.setattr(prose, "HERE", tmp_path)
    (tmp_path / "methods.md").write_text((Path(prose.__file__).parent / "methods.md").read_text())
    findings = section(write(tmp_path), "Findings")
    assert "so nothing accumulates per invocation (checked by hand, " in findings
    assert " MB)." in findings


def test_without_a_profile_or_an_end_to_end_run_their_parts_are_left_out(tmp_path: Path) -> None:
    results = copy.deepcopy(kept()["results"])
    del results["ingest"]["profile"], results["e2e"]
    text = write(tmp_path, results)
    ingest = finding(text, "Ingest")
    assert ingest.endswith(".")
    assert "Where it goes" not in ingest and "over the local HTTP adapter" not in ingest
    assert "Where the handler's time goes" not in section(text, "Ingest")
    assert "## End to end" not in text
    assert "over the local HTTP adapter" in finding(write(tmp_path), "Ingest")


def test_a_figure_the_report_does_not_give_fails_the_report() -> None:
    text = "## memory\n\n- **Memory**: {peak} MB, {peek} MB.\n"
    with pytest.raises(prose.ProseError, match=r"`## memory`: no figure `\{peek\}`"):
        prose.Prose.parse(text).fill("memory", {"peak": "60"})
    with pytest.raises(prose.ProseError, match="no section `## apply`"):
        prose.Prose.parse(text).fill("apply", {})


def test_an_optional_part_is_kept_only_with_all_its_figures() -> None:
    text = (
        "## s\n\n<!-- a note for the editor -->\nThe p99 is {p99}\nin process[[ and {http}"
        " over HTTP[[ ({note})]]]] against a timeout.\n\n[[Profile:\n\n{table}]]\n"
    )
    parsed = prose.Prose.parse(text)
    assert parsed.fill("s", {"p99": "5 ms"}) == "The p99 is 5 ms in process against a timeout."
    assert parsed.fill("s", {"p99": "5 ms", "http": "9 ms", "table": "| a |\n|---|"}) == (
        "The p99 is 5 ms in process and 9 ms over HTTP against a timeout.\n\nProfile:\n\n"
        "| a |\n|---|"
    )
    assert "over HTTP (x) against" in parsed.fill("s", {"p99": "1", "http": "2", "note": "x"})


def test_the_cold_start_section_is_kept_and_summarised(tmp_path: Path) -> None:
    text = write(tmp_path)
    assert section(text, "Cold start").strip() == COLD_START.strip()
    summary = section(text, "Summary")
    assert (
        "| Cold start, WebhookIngest | 532 ms import + first call (signed webhook → `202`);"
        " 314 ms with a trivial first call |" in summary
    )
    assert "| 2.40x (trivial: 1.42x) | within 1.5x | **missed** |" in summary
    cold = finding(text, "Cold start")
    assert cold.startswith("- **Cold start** (**missed**): import and a real first request take")
    assert "is already 1.23x" in cold
    assert "(the slowest here: WebhookIngest, signed webhook, 532 ms)" in cold


def test_without_a_cold_start_section_the_report_says_it_was_not_measured(tmp_path: Path) -> None:
    data = kept()
    path = tmp_path / "BENCHMARKS.md"
    report.write_report(
        path, report.render(data["results"], data["machine"], plan(data), "make bench")
    )
    text = path.read_text()
    assert "_Not measured yet: `make bench-cold` writes this section" in section(text, "Cold start")
    assert "- **Cold start**" not in text


def test_the_report_command_writes_benchmarks_md_from_kept_results(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    output = tmp_path / "BENCHMARKS.md"
    output.write_text("# Benchmarks\n\n" + COLD_START)
    monkeypatch.setattr(bench_run, "BENCHMARKS", output)
    assert bench_run.main(["report", str(KEPT)]) == 0
    (tmp_path / "fresh").mkdir()
    assert output.read_text() == write(tmp_path / "fresh")
    assert bench_run.main(["report", str(tmp_path / "missing.json")]) == 1


def test_percentiles_are_nearest_rank_and_medians_are_taken_figure_by_figure() -> None:
    from portal_sync_dev.bench.stats import median_summary, percentile

    assert percentile([float(v) for v in range(1, 101)], 99) == 99.0
    assert percentile([0.2, 0.1], 50) == 0.1
    runs = [
        {"ratio": r, "handler": {"p99_ms": p}, "label": "a"} for r, p in [(1, 9), (3, 5), (2, 7)]
    ]
    assert median_summary(runs) == {"ratio": 2, "handler": {"p99_ms": 7}, "label": "a"}
