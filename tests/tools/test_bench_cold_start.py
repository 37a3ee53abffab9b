"""The cold-start benchmark's bookkeeping (`make bench-cold` runs the measurement itself)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from portal_sync_dev.bench import cold_start as bench
from portal_sync_dev.build import load_target

IMPORTTIME = """\
import time: self [us] | cumulative | imported package
import time:       100 |        100 |   _io
import time:       300 |        300 |       psycopg.pq
import time:      1000 |       1300 |     psycopg
import time:       500 |        500 |       pydantic.main
import time:       200 |        700 |     portal_sync.settings
import time:        50 |       2050 |   app
"""


def test_app_imports_are_read_from_importtime() -> None:
    assert bench.direct_imports(IMPORTTIME) == [("psycopg", 1.3), ("portal_sync.settings", 0.7)]
    packages = dict(bench.dominant_packages(IMPORTTIME))
    assert packages["psycopg"] == 1.3 and packages["pydantic"] == 0.5


def test_the_libraries_floor_imports_the_third_party_modules_app_imported() -> None:
    importtime = """\
import time: self [us] | cumulative | imported package
import time:       100 |        100 |   encodings.idna
import time:       150 |        150 |           psycopg_c
import time:       300 |        300 |         psycopg_binary.pq
import time:       400 |        700 |       psycopg.pq
import time:      1000 |       1850 |     psycopg
import time:        80 |         80 |         typing
import time:       500 |        580 |       pydantic.main
import time:        20 |         20 |       helpers
import time:       200 |        800 |     portal_sync.settings
import time:       300 |        300 |     aws_lambda_powertools.event_handler
import time:        90 |         90 |     psycopg.pq
import time:        50 |       3050 |   app
import time:       400 |        400 |   botocore.client
"""
    # What the process had loaded when `import app` returned, in the order the imports began.
    loaded = ["__main__", "encodings.idna", "typing", "psycopg", "psycopg.pq", "psycopg_binary.pq"]
    loaded += ["pydantic.main", "pydantic.fields", "helpers", "portal_sync.settings"]
    loaded += ["aws_lambda_powertools.event_handler", "app"]
    # In the order importtime lists them: neither the standard library (typing, encodings),
    # portal_sync, the function's own `helpers`, psycopg_c (its import failed: not loaded), a
    # module twice, nor what the first call imported after `app` (botocore). Then what loaded
    # without importtime seeing it (importlib.import_module's: pydantic.fields), not __main__.
    assert bench.library_modules(importtime, own={"helpers"}, loaded=loaded) == [
        "psycopg_binary.pq",
        "psycopg.pq",
        "psycopg",
        "pydantic.main",
        "aws_lambda_powertools.event_handler",
        "pydantic.fields",
    ]
    assert "psycopg_c" in bench.library_modules(importtime, own={"helpers"})
    assert bench.library_modules(IMPORTTIME.replace("app", "other")) == []


def test_only_the_cold_start_section_is_rewritten(tmp_path: Path) -> None:
    """Issue 6's `make bench` owns the rest of BENCHMARKS.md."""
    path = tmp_path / "BENCHMARKS.md"
    path.write_text(
        "# Benchmarks\n\n## Throughput\n\nkept\n\n## Cold start\n\nold\n\n## Latency\n\nkept too\n"
    )
    bench.write_section("## Cold start\n\nnew\n", path)
    assert path.read_text() == (
        "# Benchmarks\n\n## Throughput\n\nkept\n\n## Cold start\n\nnew\n\n## Latency\n\nkept too\n"
    )
    fresh = tmp_path / "NEW.md"
    bench.write_section("## Cold start\n\nnew\n", fresh)
    assert fresh.read_text() == "# Benchmarks\n\n## Cold start\n\nnew\n"


def test_every_function_gets_a_first_event_that_needs_no_network() -> None:
    events = bench.first_events()
    assert set(events) == {"WebhookIngest", "ProcessEvent", "AdminApi", "WebsiteSync", "Reconcile"}
    assert events["ProcessEvent"] == {"Records": []}
    assert events["Reconcile"] == {}  # answered without a database: not ours to run
    for name in ("WebhookIngest", "AdminApi", "WebsiteSync"):
        assert events[name]["requestContext"]["http"]["method"] == "OPTIONS"
        assert "{" not in events[name]["rawPath"]
    assert "/nonexistent" in bench.ENVIRONMENT["DATABASE_URL"]


def test_what_the_first_call_imports_is_read_after_the_app() -> None:
    during = IMPORTTIME + (
        "import time:       400 |        400 |   botocore.client\n"
        "import time:       100 |        500 | botocore\n"
        "import time:       200 |        200 | jwt\n"
    )
    assert bench.imports_after(during) == [("total", 0.7), ("botocore", 0.5), ("jwt", 0.2)]
    assert bench.imports_after(IMPORTTIME) == [("total", 0.0)]


def test_every_real_call_names_its_function_and_a_unique_label() -> None:
    functions = set(bench.first_events())
    assert {call.function for call in bench.REAL_CALLS} == functions
    labels = [call.label for call in bench.REAL_CALLS]
    assert len(labels) == len(set(labels))
    # Without the local services only the calls that need none are measured.
    assert all(not s.real for s in bench.scenarios(None))


# -- which code is measured ----------------------------------------------------------------------

ARM64_TEMPLATE = """\
Transform: AWS::Serverless-2016-10-31
Globals:
  Function:
    Runtime: python3.13
    Architectures: [arm64]
Resources:
  SharedLayer:
    Type: AWS::Serverless::LayerVersion
    Properties:
      ContentUri: layer/
      CompatibleRuntimes: [python3.13]
      CompatibleArchitectures: [arm64]
  Ingest:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: ingest/
      Handler: app.handler
"""


def elf_library(path: Path, machine: int) -> None:
    """The start of a 64-bit little-endian ELF shared object for `machine` (its e_machine)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x7fELF\x02\x01" + bytes(12) + machine.to_bytes(2, "little") + bytes(44))


def test_an_arm64_artifact_is_measured_on_x86_64_from_a_twin_build(tmp_path: Path) -> None:
    template = tmp_path / "template.yaml"
    template.write_text(ARM64_TEMPLATE)
    target = load_target(template)
    built = tmp_path / "build" / "SharedLayer" / "python"
    (built / "psycopg_binary-3.3.9.dist-info").mkdir(parents=True)
    elf_library(built / "psycopg_binary" / "_psycopg.cpython-313-aarch64-linux-gnu.so", 183)

    x86_64 = bench.Host("x86_64", "3.13", "linux")
    arm64 = bench.Host("arm64", "3.13", "linux")
    assert bench.artifact_source(target, x86_64, built) == bench.TWIN
    # On Graviton the build itself runs, unless it is stale (a library of another machine).
    assert bench.artifact_source(target, arm64, built) == bench.BUILT
    elf_library(built / "psycopg_binary" / "_psycopg.cpython-313-aarch64-linux-gnu.so", 62)
    assert bench.artifact_source(target, arm64, built) == bench.TWIN
    # No wheel of the layer loads on another Python or off Linux: the venv's packages then.
    assert bench.artifact_source(target, bench.Host("x86_64", "3.12", "linux"), built) == bench.VENV
    assert bench.artifact_source(target, bench.Host("arm64", "3.13", "darwin"), built) == bench.VENV


def test_the_venv_fallback_runs_the_functions_compiled_by_this_python(tmp_path: Path) -> None:
    """Off Linux no wheel of the layer loads: the functions and portal_sync are compiled by this
    Python and the third-party packages come from the venv (no pip, so quick)."""
    here = bench.Host.this()
    elsewhere = bench.Host(here.architecture, here.python, "darwin")
    venv = bench.prepare(tmp_path / "no-artifact", tmp_path / "scratch", host=elsewhere)
    assert venv.source == bench.VENV
    assert not list(venv.layer_python.glob("*.dist-info"))  # no wheel: the venv's instead
    assert (venv.layer_python / "portal_sync" / "__pycache__").is_dir()
    tick = next(s for s in bench.scenarios(None) if s.name == "Reconcile/trivial")
    timing = bench._run(venv, tick)[0]
    assert timing["status"] == {"ignored": True}
    assert timing["where"]["portal_sync"].startswith(str(venv.layer_python))


def layout(source: str, host: bench.Host) -> bench.Layout:
    template = load_target()
    target = replace(template, runtime="python3.13", architecture="arm64")
    return bench.Layout({}, Path("/opt/python"), Path("/var/runtime"), source, target, host)


def measured(scenario: bench.Scenario, import_ms: float, first_call_ms: float) -> bench.Measurement:
    return bench.Measurement(
        scenario,
        import_ms=[import_ms],
        import_cpu_ms=[import_ms],
        first_call_ms=[first_call_ms],
        first_call_cpu_ms=[first_call_ms],
        process_ms=[import_ms + first_call_ms + 40],
        status=200,
    )


@pytest.mark.parametrize("source", [bench.BUILT, bench.TWIN, bench.VENV])
def test_the_section_says_what_was_measured_and_flags_a_missed_target(source: str) -> None:
    host = bench.Host("x86_64", "3.12" if source == bench.VENV else "3.13", "linux")
    results = [
        measured(bench.Scenario("boto3", None, "", mode=bench.BOTO3), 200, 0),
        measured(bench.Scenario("AdminApi/trivial", "AdminApi", "CORS preflight"), 250, 20),
        measured(bench.Scenario("WebsiteSync/trivial", "WebsiteSync", "CORS preflight"), 250, 100),
    ]
    text = bench.render(results, layout(source, host), repeat=7)
    lead = text.splitlines()[2]
    assert lead.startswith("Written by `make bench-cold` (`python -m portal_sync_dev.bench.cold")
    assert "median of 7 fresh processes each" in lead and "(target: at most 1.5)" in lead
    said = {
        bench.BUILT: "python3.13 arm64 functions from `make build`'s .aws-sam/build",
        bench.TWIN: "python3.13 arm64 functions, measured on x86_64 from a twin build with "
        "x86_64 wheels of the same versions",
        bench.VENV: "python3.13 arm64 functions, measured without their artifact (this is Python "
        "3.12, not 3.13): the functions and portal_sync compiled by this Python, third-party "
        "packages from the venv",
    }
    assert [kind for kind, words in said.items() if words in lead] == [source]
    # 270 ms is 1.35x `import boto3`'s 200 ms; 350 ms is 1.75x, over the target.
    assert "| AdminApi | trivial: CORS preflight → `200` | 250 | 20 | 20 | 270 | 1.35 |" in text
    assert "| 350 | 1.75 ⚠ |" in text


def test_each_function_is_set_against_its_own_floors() -> None:
    features = next(call for call in bench.REAL_CALLS if call.label == "GET features")
    libraries = bench.Scenario(
        bench.libraries_floor_name("AdminApi"), "AdminApi", "2 modules", mode=bench.LIBRARIES
    )
    bare_io = bench.Scenario(
        bench.io_floor_name("AdminApi", "GET features"),
        None,
        "AdminApi's GET features",
        real=True,
        covers=features.floor.covers,
        mode=bench.BARE_IO,
        io=features.floor,
    )
    results = [
        measured(bench.Scenario("boto3", None, "", mode=bench.BOTO3), 200, 0),
        measured(bench.Scenario("AdminApi/trivial", "AdminApi", "CORS preflight"), 250, 20),
        measured(libraries, 200, 0),
        measured(
            bench.Scenario("AdminApi/GET features", "AdminApi", "GET features", real=True), 260, 40
        ),
        measured(bare_io, 150, 50),
    ]
    text = bench.render(results, layout(bench.TWIN, bench.Host("x86_64", "3.13", "linux")), 7)
    # `import app` over its libraries bare (250 / 200, 260 / 200); import + first call over the
    # bare handler doing the same I/O (300 / 200).
    assert (
        "| AdminApi | trivial: CORS preflight | 250 | 200 | 1.25 | 1.25 | - | - | - | - |" in text
    )
    assert (
        "| AdminApi | real: GET features | 260 | 200 | 1.30 | 1.30 | 300 | 200 | 1.50 | 1.50 |"
        in (text)
    )
    # The floors are rows of the main table too, which `make bench`'s summary does not take for
    # the functions' (it reads rows whose process is a function's name or `import boto3`).
    assert "| floor: AdminApi's libraries bare | - (2 modules) | 200 |" in text
    assert (
        "| floor: `import boto3, psycopg` | bare I/O of AdminApi's GET features → `200` |" in text
    )
    assert f"- AdminApi's GET features: {features.floor.covers}." in text


def test_the_runtime_stand_in_provides_the_snapstart_hooks_library(tmp_path: Path) -> None:
    runtime = bench.runtime_dir(tmp_path / "runtime")
    assert (runtime / "snapshot_restore_py.py").is_file()
    assert (runtime / "boto3" / "__init__.py").is_file()


def test_the_console_is_found_in_an_artifact_that_carries_it(tmp_path: Path) -> None:
    """The cold-start section says how many of the console's files each artifact holds: none
    as built (the console is hosted on S3), and a copy smuggled into a function is found by its
    content whatever its name."""
    from portal_sync_dev.console_deploy import CONSOLE

    clean, carrying, layer = tmp_path / "AdminApi", tmp_path / "WebsiteSync", tmp_path / "python"
    for directory in (clean, carrying, layer):
        directory.mkdir()
        (directory / "app.py").write_text("def handler(event, context): ...\n")
    (carrying / "static.js").write_bytes((CONSOLE / "app.js").read_bytes())
    host = bench.Host("x86_64", "3.13", "linux")
    plain = layout(bench.TWIN, host)
    with_dirs = replace(
        plain, functions={"AdminApi": clean, "WebsiteSync": carrying}, layer_python=layer
    )

    served, size, rows = bench.console_in_artifacts(with_dirs)
    assert served > 10 and size > 10_000
    assert {row.name: row.console_files for row in rows} == {
        "AdminApi": 0,
        "WebsiteSync": 1,
        "layer (python/)": 0,
    }
    results = [measured(bench.Scenario("boto3", None, "", mode=bench.BOTO3), 200, 0)]
    text = bench.render(results, with_dirs, repeat=7)
    assert "| WebsiteSync | 2 | 0.0 | 1 |" in text
    assert "files whose content is one of the console's, 1 in all" in text
