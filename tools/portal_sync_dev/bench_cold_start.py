"""Cold start of each function from the built artifact, against a bare `import boto3`.

`make bench-cold` (`python -m portal_sync_dev.bench_cold_start`) measures, for every function of
template.yaml, in fresh processes laid out as Lambda lays them out:

    sys.path = <function dir> (/var/task), <layer>/python (/opt/python), <runtime dir> (/var/runtime)

where the runtime dir holds only what the Lambda Python runtime provides (boto3, botocore and their
dependencies, taken from the venv) and no site-packages are loaded (`python -S`), so nothing the
layer lacks can sneak in from the development environment. Per process it times `import app`
and the first invocation with an event that needs no network (a CORS preflight for HTTP
functions, an empty batch for the queue consumer, whose database connection is refused at
once), and compares them with a process that only does `import boto3`, measured in the same
run, same flags, same layout. Several repetitions; medians. `-X importtime` then names the
packages that dominate each function's import.

The artifact is `make build`'s .aws-sam/build when its wheels run on this machine (same CPU
architecture and Python); otherwise the functions and portal_sync are built without third-party
wheels into a temporary directory and those come from the venv instead.

Results go to the "Cold start" section of BENCHMARKS.md (other sections are left alone), so
issue 6's `make bench` can call `run()` and `write_section()` too.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
}

CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
if sys.argv[1] == "boto3":
    import boto3
    t1 = t2 = time.perf_counter()
    where = {"boto3": boto3.__file__}
else:
    import app
    t1 = time.perf_counter()

    class Context:
        function_name = "bench"
        memory_limit_in_mb = 512
        invoked_function_arn = "arn:aws:lambda:eu-north-1:123456789012:function:bench"
        aws_request_id = "bench"

        def get_remaining_time_in_millis(self):
            return 10000

    response = app.handler(json.loads(sys.argv[1]), Context())
    t2 = time.perf_counter()
    portal_sync = sys.modules.get("portal_sync")
    status = response.get("statusCode", response) if isinstance(response, dict) else response
    where = {"app": app.__file__, "portal_sync": getattr(portal_sync, "__file__", None),
             "status": status}
sys.stdout.flush()
sys.stderr.write("BENCH " + json.dumps({"import_ms": (t1 - t0) * 1000,
                                        "first_call_ms": (t2 - t1) * 1000, **where}) + "\n")
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


@dataclass
class Measurement:
    name: str
    import_ms: list[float] = field(default_factory=list)
    first_call_ms: list[float] = field(default_factory=list)
    process_ms: list[float] = field(default_factory=list)
    status: Any = None
    dominant: list[tuple[str, float]] = field(default_factory=list)
    direct: list[tuple[str, float]] = field(default_factory=list)

    @property
    def total_ms(self) -> float:
        return statistics.median(
            i + f for i, f in zip(self.import_ms, self.first_call_ms, strict=True)
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
    """Per function, the first invocation measured: from its first HTTP route or its queue."""
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
    layout: Layout, function: str | None, argument: str, *flags: str
) -> tuple[dict[str, Any], str, float]:
    env = {
        **ENVIRONMENT,
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": os.pathsep.join(str(p) for p in layout.path_for(function)),
        # Nothing is written: the artifact is measured as shipped (its pycs are complete).
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    command = [sys.executable, "-S", "-P", *flags, "-c", CHILD, argument]
    cwd = layout.functions[function] if function else layout.runtime_dir
    started = time.perf_counter()
    result = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, check=False)
    elapsed = (time.perf_counter() - started) * 1000
    lines = [line for line in result.stderr.splitlines() if line.startswith("BENCH ")]
    if result.returncode != 0 or not lines:
        raise SystemExit(f"{function or 'boto3'} failed:\n{result.stderr[-3000:]}")
    return json.loads(lines[-1][len("BENCH ") :]), result.stderr, elapsed


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


def _medians(runs: list[list[tuple[str, float]]]) -> list[tuple[str, float]]:
    names = {name for run in runs for name, _ in run}
    medians = {n: statistics.median(dict(run).get(n, 0.0) for run in runs) for n in names}
    return sorted(medians.items(), key=lambda item: -item[1])


def measure(layout: Layout, events: dict[str, dict[str, Any]], repeat: int) -> list[Measurement]:
    results = {name: Measurement(name) for name in ["boto3", *events]}
    arguments = {"boto3": "boto3", **{name: json.dumps(event) for name, event in events.items()}}
    # One unmeasured round warms the OS file cache; then rounds alternate between the processes
    # so that any drift of the machine affects all of them alike.
    for round_ in range(repeat + 1):
        for name, measurement in results.items():
            function = None if name == "boto3" else name
            timing, _, elapsed = _run(layout, function, arguments[name])
            if function:
                _check_location(layout, function, timing)
                measurement.status = timing.get("status")
            if round_:
                measurement.import_ms.append(timing["import_ms"])
                measurement.first_call_ms.append(timing["first_call_ms"])
                measurement.process_ms.append(elapsed)
    for name, measurement in results.items():
        function = None if name == "boto3" else name
        outputs = [
            _run(layout, function, arguments[name], "-X", "importtime")[1]
            for _ in range(IMPORTTIME_RUNS)
        ]
        measurement.dominant = _medians([dominant_packages(o) for o in outputs])[:6]
        if function:
            measurement.direct = _medians([direct_imports(o) for o in outputs])[:6]
    return list(results.values())


def _check_location(layout: Layout, function: str, timing: dict[str, Any]) -> None:
    """The measured code must be the artifact's, not a copy from the development tree."""
    expected = {"app": layout.functions[function], "portal_sync": layout.layer_python}
    for module, directory in expected.items():
        location = timing.get(module) or ""
        if not Path(location).resolve().is_relative_to(directory.resolve()):
            raise SystemExit(f"{function}: {module} came from {location}, not from {directory}")


# -- reporting ---------------------------------------------------------------------------------


def render(results: list[Measurement], layout: Layout, repeat: int) -> str:
    baseline = next(r for r in results if r.name == "boto3")
    boto3_ms = statistics.median(baseline.import_ms)
    source = (
        "the functions and portal_sync from a no-dependency build, third-party packages from the "
        "venv (this machine cannot load the layer's wheels)"
        if layout.third_party_from_venv
        else "`make build`'s .aws-sam/build (function dir, layer python/ with its wheels)"
    )
    lines = [
        SECTION,
        "",
        f"Written by `make bench-cold` (`python -m portal_sync_dev.bench_cold_start`); "
        f"{platform.machine()}, Python {platform.python_version()}, {os.cpu_count()} CPUs; "
        f"median of {repeat} fresh processes each. Code: {source}; boto3 and botocore stand in "
        "for the runtime's own copies; no site-packages (`python -S`). "
        "*import* is `import app`; *first call* the handler's first invocation (CORS preflight, "
        "or an empty batch whose database connection is refused at once); *ratio* is "
        f"import + first call over `import boto3` (target: at most {TARGET_RATIO}). *process* is "
        "the whole process, interpreter start-up included. Absolute figures depend on the "
        "machine (Lambda's 512 MB share of a CPU is slower); the ratios travel better.",
        "",
        "| process | import (ms) | first call (ms) | import + first call (ms) | ratio | process (ms) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        first = statistics.median(r.first_call_ms)
        label = "`import boto3` alone" if r.name == "boto3" else f"{r.name} → `{_short(r.status)}`"
        ratio = r.total_ms / boto3_ms
        flag = "" if r.name == "boto3" or ratio <= TARGET_RATIO else " ⚠"
        lines.append(
            f"| {label} | {statistics.median(r.import_ms):.0f} | {first:.0f} | {r.total_ms:.0f} "
            f"| {ratio:.2f}{flag} | {statistics.median(r.process_ms):.0f} |"
        )
    lines += [
        "",
        f"Where the import time goes (`-X importtime`, medians of {IMPORTTIME_RUNS} runs, ms). "
        "*By package*: self time summed per top-level package (it includes the garbage "
        "collections that happen to run during a module's import, so single figures are "
        "indicative). *App's imports*: the cumulative time of each import statement of the "
        "handler module, which pays for everything imported first through it.",
        "",
        "| process | by package | app's imports |",
        "|---|---|---|",
    ]
    for r in results:
        packages = ", ".join(f"{name} {ms:.0f}" for name, ms in r.dominant)
        direct = ", ".join(f"`{name}` {ms:.0f}" for name, ms in r.direct) or "n/a"
        label = "`import boto3`" if r.name == "boto3" else r.name
        lines.append(f"| {label} | {packages} | {direct} |")
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


def run(artifacts: Path = DEFAULT_OUT, repeat: int = 7) -> str:
    with tempfile.TemporaryDirectory(prefix="portal-sync-bench-") as scratch:
        layout = prepare(artifacts, Path(scratch))
        results = measure(layout, first_events(), repeat)
        return render(results, layout, repeat)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m portal_sync_dev.bench_cold_start")
    parser.add_argument("--artifacts", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--output", type=Path, default=BENCHMARKS)
    parser.add_argument("--print-only", action="store_true", help="do not write BENCHMARKS.md")
    args = parser.parse_args(argv)
    markdown = run(args.artifacts, args.repeat)
    print(markdown)
    if not args.print_only:
        write_section(markdown, args.output)
        print(f"written to {args.output}")


if __name__ == "__main__":
    main()
