"""The import row of `make bench` (tools/portal_sync_dev/bench/import_rows.py): one run of the
measurement against the real PostgreSQL and the Dataverse stand-in, with a small environment,
and the row and section the report makes of a run's figures."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

from conftest import Database
from portal_sync_dev.bench import import_rows, report
from portal_sync_dev.bench.workload import Plan

MEMBERS = 6000  # two pages of contacts and two of memberships at the production page size


def test_one_run_imports_every_member_and_writes_the_same_rows_bare(db: Database) -> None:
    result = import_rows.import_worker(
        {"database_url": db.url, "functions_database_url": db.functions_url, "members": MEMBERS}
    )

    imported, bare = result["import"], result["baseline"]
    assert imported["rows"] == imported["rows_changed"] == 2 * MEMBERS
    assert bare["rows"] == 2 * MEMBERS
    # Contacts, memberships, the empty enrolment table: pages of up to 5,000 rows.
    assert imported["pages"] == 2 + 2 + 1
    assert result["ratio"] == imported["rows_per_s"] / bare["rows_per_s"]
    # The stand-in answers inside the reader's calls, which are inside the import.
    assert 0 < imported["standin_share"] < imported["reading_share"] < 1
    # Each side cleaned up after itself: the next run starts from the same empty tables.
    assert db.rows("select id from organizations") == []
    assert db.rows("select id from profiles") == []
    assert db.rows("select id from portal_sync_events") == []


def a_run(ratio: float, import_seconds: float) -> dict[str, Any]:
    rows = 200_000
    return {
        "members": 100_000,
        "import": {
            "page_size": 1000,
            "rows": rows,
            "rows_changed": rows,
            "pages": 201,
            "requests": 202,
            "seconds": import_seconds,
            "rows_per_s": rows / import_seconds,
            "standin_share": 0.12,
            "reading_share": 0.2,
        },
        "baseline": {
            "rows": rows,
            "pages": 200,
            "seconds": import_seconds * ratio,
            "rows_per_s": rows / (import_seconds * ratio),
        },
        "ratio": ratio,
    }


def rendered(full_import: dict[str, Any], tmp_path: Path) -> str:
    data = json.loads(Path(__file__).with_name("bench_results.json").read_text())
    results = {**copy.deepcopy(data["results"]), "import": full_import}
    plan = Plan(**{**data["plan"], "apply_batch_sizes": tuple(data["plan"]["apply_batch_sizes"])})
    path = tmp_path / "BENCHMARKS.md"
    report.write_report(path, report.render(results, data["machine"], plan, "make bench"))
    return path.read_text()


def test_the_report_has_the_import_row_and_section_with_every_figure(tmp_path: Path) -> None:
    reps = [a_run(0.6, 70.0), a_run(0.7, 65.0), a_run(0.65, 80.0)]
    text = rendered({"members": 100_000, "reps": reps, "median": reps[2]}, tmp_path)

    [row] = [line for line in text.splitlines() if line.startswith("| Import, 100,000 members")]
    assert "2,500 rows/s; whole import 80.0 s (stand-in 12 % of it)" in row
    assert "0.65x the baseline" in row and row.endswith("**met** |")
    section = text[text.index("\n## Import\n") : text.index("\n## End to end\n")]
    assert "| **median** | 200,000 | 201 | 80.0 s | 2,500 | 12 % | 20 % |" in section
    assert "pages of 1,000" in section
    assert not re.search(r"\{[a-z_]+\}|\[\[|\]\]", text)


def test_an_import_over_two_minutes_misses_the_target_whatever_its_ratio(tmp_path: Path) -> None:
    slow = a_run(0.9, 130.0)
    text = rendered({"members": 100_000, "reps": [slow], "median": slow}, tmp_path)

    [row] = [line for line in text.splitlines() if line.startswith("| Import, 100,000 members")]
    assert "0.90x the baseline" in row and row.endswith("**missed** |")
