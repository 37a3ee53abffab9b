"""The deployment artifacts (tools/portal_sync_dev/build.py; `make build`, and `sam build`).

What a cold start needs from them: every module compiled to a .pyc that Python uses as it is
inside Lambda's read-only copy of the zip (SAM's zips date every file 1980-01-01, so ordinary
timestamp-checked pycs would be stale and every cold start would compile every module again),
and every handler the template names importing from the artifact alone.

To stay quick these tests build the functions and the portal_sync package without the layer's
third-party wheels (`make build` installs those with pip, for the Lambda platform); the
fresh-process imports take the third-party packages from the venv instead, after the
artifact's directories, as Lambda puts /var/task and /opt/python before the runtime's own.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import sysconfig
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest
from portal_sync_dev import build

ROOT = Path(__file__).resolve().parents[2]
TARGET = build.load_target()
FUNCTIONS = {f.logical_id: f for f in TARGET.functions}
SAM_ZIP_TIME = 315532800  # 1980-01-01T00:00:00Z, the timestamp of every file in SAM's zips
UNCHECKED_HASH = 0b01  # PEP 552 flags: hash-based, do not check the source


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> build.Built:
    out = tmp_path_factory.mktemp("artifacts")
    return build.build_all(out / "build", dependencies=False, zips_dir=out / "dist")


def sources(root: Path) -> list[Path]:
    return sorted(root.rglob("*.py"))


def pyc_of(source: Path) -> Path:
    return Path(importlib.util.cache_from_source(str(source)))


def snapshot(root: Path) -> dict[Path, bytes]:
    return {path: path.read_bytes() for path in sorted(root.rglob("*.pyc"))}


def test_every_function_and_the_layer_is_built(built: build.Built) -> None:
    assert set(built.functions) == set(FUNCTIONS)
    for name, path in built.functions.items():
        assert (path / f"{FUNCTIONS[name].module}.py").is_file()
    [layer] = built.layers.values()
    python = layer / "python"
    assert (python / "portal_sync" / "__init__.py").is_file()
    assert (python / "portal_sync" / "py.typed").is_file()
    # Only importable code: no packaging leftovers from the source tree.
    assert not [p for p in python.rglob("*") if p.name.endswith((".egg-info", ".toml", ".txt"))]


def test_every_module_has_an_unchecked_hash_pyc_for_the_runtimes_python(
    built: build.Built,
) -> None:
    """Read from the files themselves: magic number (Python version), then the PEP 552 flags."""
    roots = [*built.functions.values(), *built.layers.values()]
    checked = 0
    for root in roots:
        for source in sources(root):
            header = pyc_of(source).read_bytes()[:16]
            assert header[:4] == importlib.util.MAGIC_NUMBER, source
            assert int.from_bytes(header[4:8], "little") == UNCHECKED_HASH, source
            # The hash is the source's: the pyc belongs to this very file.
            assert header[8:16] == importlib.util.source_hash(source.read_bytes()), source
            checked += 1
    assert checked > 50
    assert all(build.pyc_problems(root) == [] for root in roots)


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_each_handler_imports_from_the_artifact_in_a_fresh_process(
    built: build.Built, name: str
) -> None:
    """As Lambda runs it: sources dated 1980 (as SAM zips them), nothing on the path but the
    function dir, the layer and the third-party packages; and no .pyc is recompiled."""
    function_dir = built.functions[name]
    layer_python = next(iter(built.layers.values())) / "python"
    for root in (function_dir, layer_python):
        for source in sources(root):
            os.utime(source, (SAM_ZIP_TIME, SAM_ZIP_TIME))
    before = {**snapshot(function_dir), **snapshot(layer_python)}

    module, handler = FUNCTIONS[name].handler.rsplit(".", 1)
    probe = (
        "import json, sys\n"
        f"import {module}\n"
        f"assert callable({module}.{handler})\n"
        "import portal_sync\n"
        f"print(json.dumps({{'module': {module}.__file__, 'portal_sync': portal_sync.__file__}}))\n"
    )
    env = {
        "PATH": os.environ.get("PATH", ""),
        # No site-packages (-S): the venv's editable portal_sync cannot stand in for the built one.
        "PYTHONPATH": os.pathsep.join(
            [str(function_dir), str(layer_python), sysconfig.get_paths()["purelib"]]
        ),
        "AWS_DEFAULT_REGION": "eu-north-1",
    }
    result = subprocess.run(
        [sys.executable, "-S", "-P", "-c", probe],
        cwd=function_dir,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    where = json.loads(result.stdout.strip().splitlines()[-1])
    assert Path(where["module"]).is_relative_to(function_dir)
    assert Path(where["portal_sync"]).is_relative_to(layer_python)
    # Timestamp-checked pycs would have been found stale, recompiled and written again.
    assert {**snapshot(function_dir), **snapshot(layer_python)} == before


def test_the_zips_are_reproducible_and_carry_the_pycs(built: build.Built, tmp_path: Path) -> None:
    for name, path in built.zips.items():
        source = built.functions.get(name) or built.layers[name]
        again = build.zip_tree(source, tmp_path / f"{name}.zip")
        assert again.read_bytes() == path.read_bytes(), name
        with zipfile.ZipFile(path) as archive:
            entries = archive.infolist()
        assert {entry.date_time for entry in entries} == {build.ZIP_EPOCH}
        names = {entry.filename for entry in entries}
        assert any(n.endswith(f".{sys.implementation.cache_tag}.pyc") for n in names), name
    assert set(built.zips) == {*built.functions, *built.layers}


def test_the_built_template_points_at_the_artifacts(built: build.Built) -> None:
    template = build.read_template(built.template)
    resources = template["Resources"]
    for name in built.functions:
        assert (built.out / resources[name]["Properties"]["CodeUri"]) == built.functions[name]
    for name in built.layers:
        assert (built.out / resources[name]["Properties"]["ContentUri"]) == built.layers[name]
    machine = resources["WebsiteVisibilityStateMachine"]["Properties"]
    definition = (built.out / machine["DefinitionUri"]).resolve()
    assert definition == ROOT / "infra/statemachines/website_visibility.asl.json"
    # Everything else is the template as written.
    assert template["Parameters"] == build.read_template()["Parameters"]


def test_wheels_are_chosen_for_the_glibc_of_the_runtimes_os() -> None:
    """python3.11 runs on Amazon Linux 2 (glibc 2.26): a manylinux_2_28 wheel installs and then
    fails at import. python3.12 and later run on Amazon Linux 2023 (glibc 2.34)."""
    tags = build.platform_tags("python3.11", "x86_64")
    assert "manylinux2014_x86_64" in tags and "manylinux_2_26_x86_64" in tags
    assert "manylinux_2_27_x86_64" not in tags and "manylinux_2_28_x86_64" not in tags
    assert all(tag.endswith("_aarch64") for tag in build.platform_tags("python3.11", "arm64"))
    assert "manylinux_2_34_aarch64" in build.platform_tags("python3.12", "arm64")
    assert TARGET.runtime in build.RUNTIME_GLIBC and TARGET.architecture in build.MACHINES


def test_pycs_are_only_compiled_by_the_runtimes_python(tmp_path: Path) -> None:
    """A .pyc of another Python version is ignored, and the module compiled at every start."""
    other = build.Target("python3.12", TARGET.architecture, TARGET.functions, TARGET.layers)
    with pytest.raises(build.BuildError, match=r"python3\.12"):
        build.build_function(TARGET.functions[0], tmp_path / "f", other)


def test_sam_build_runs_the_same_builder(tmp_path: Path) -> None:
    """`sam build` runs `make --makefile <root>/Makefile build-<LogicalId>` in a scratch copy
    of the code, with ARTIFACTS_DIR set (BuildMethod: makefile); this is that call."""
    up_to_date = subprocess.run(["make", "-q", "-C", str(ROOT), "install"], check=False)
    if up_to_date.returncode != 0:
        pytest.skip("the venv is older than pyproject.toml: `make install` first")
    artifacts = tmp_path / "artifacts"
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    result = subprocess.run(
        ["make", "-s", "--makefile", str(ROOT / "Makefile"), "build-WebhookIngest"],
        cwd=scratch,
        env={**os.environ, "ARTIFACTS_DIR": str(artifacts)},
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert (artifacts / "app.py").is_file()
    assert build.pyc_problems(artifacts) == []


# -- the native libraries of the layer ----------------------------------------------------------


def fake_library(path: Path, machine: str, glibc: str = "2.17") -> Path:
    """The parts of an ELF shared object the check reads: its header and version strings."""
    header = bytearray(64)
    header[:6] = b"\x7fELF\x02\x01"  # 64-bit, little-endian
    header[18:20] = build.ELF_MACHINES[machine].to_bytes(2, "little")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bytes(header) + f"\0libc.so.6\0GLIBC_{glibc}\0GLIBC_2.2.5\0".encode())
    return path


def test_a_library_that_would_not_load_on_the_runtime_is_named(tmp_path: Path) -> None:
    """What fails only at import inside Lambda ("cannot open shared object", "GLIBC_2.38 not
    found", "invalid ELF header") is refused at build time, naming the file and why."""
    runtime = TARGET.python_version.replace(".", "")
    machine = TARGET.machine
    other = "x86_64" if machine == "aarch64" else "aarch64"
    newest = build.RUNTIME_GLIBC[TARGET.runtime]
    fine = fake_library(tmp_path / f"ok/_ok.cpython-{runtime}-{machine}-linux-gnu.so", machine)
    fake_library(tmp_path / "ok/_rust.abi3.so", machine, f"2.{newest[1]}")
    (tmp_path / "ok-1.0.dist-info").mkdir()
    (tmp_path / "ok-1.0.dist-info/WHEEL").write_text(
        f"Wheel-Version: 1.0\nTag: cp{runtime}-cp{runtime}-manylinux_2_17_{machine}\n"
        f"Tag: cp{runtime}-cp{runtime}-manylinux2014_{machine}\n"
    )
    assert build.native_problems(tmp_path, TARGET) == []

    fake_library(tmp_path / f"bad/_a.cpython-{runtime}-{other}-linux-gnu.so", other)
    fake_library(tmp_path / "bad/_b.abi3.so", machine, f"2.{newest[1] + 4}")
    fake_library(tmp_path / f"bad/_c.cpython-311-{machine}-linux-gnu.so", machine)
    (tmp_path / "bad-1.0.dist-info").mkdir()
    (tmp_path / "bad-1.0.dist-info/WHEEL").write_text(
        f"Wheel-Version: 1.0\nTag: cp{runtime}-cp{runtime}-macosx_11_0_arm64\n"
    )
    problems = build.native_problems(tmp_path, TARGET)
    assert len(problems) == 4, problems
    assert any("_a.cpython" in p and f"not an ELF library for {machine}" in p for p in problems)
    assert any("_b.abi3.so" in p and f"glibc 2.{newest[1] + 4}" in p for p in problems)
    assert any("_c.cpython-311" in p and "another Python" in p for p in problems)
    assert any("bad-1.0.dist-info" in p and "macosx_11_0_arm64" in p for p in problems)
    assert fine.is_file()


@pytest.fixture(scope="module")
def layer_with_wheels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The layer as `make build` and `sam build` make it: pip's wheels for the template's
    platform (downloaded once; pip's cache serves the next runs)."""
    [layer] = TARGET.layers
    return build.build_layer(layer, tmp_path_factory.mktemp("layer"), TARGET) / "python"


def test_the_layers_native_libraries_are_for_the_runtimes_machine_python_and_glibc(
    layer_with_wheels: Path,
) -> None:
    """psycopg-binary, cryptography, pydantic-core and cffi ship compiled code: each must be
    for the template's architecture, its Python and a glibc its OS (Amazon Linux 2023) has."""
    libraries = [
        build.NativeLibrary.read(path)
        for path in layer_with_wheels.rglob("*.so*")
        if path.is_file() and (path.suffix == ".so" or ".so." in path.name)
    ]
    names = {library.path.name.split(".")[0] for library in libraries}
    assert {"_psycopg", "_rust", "_pydantic_core", "_cffi_backend"} <= names
    assert {library.machine for library in libraries} == {build.ELF_MACHINES[TARGET.machine]}
    needed = [library.glibc for library in libraries if library.glibc]
    assert needed and max(needed) <= build.RUNTIME_GLIBC[TARGET.runtime]
    assert build.native_problems(layer_with_wheels, TARGET) == []
    # The same artifact is refused for the other machine, and on python3.11 (Amazon Linux 2).
    other = "x86_64" if TARGET.architecture == "arm64" else "arm64"
    assert build.native_problems(layer_with_wheels, replace(TARGET, architecture=other))
    on_amazon_linux_2 = build.native_problems(
        layer_with_wheels, replace(TARGET, runtime="python3.11")
    )
    assert any("glibc 2.34, python3.11 has 2.26" in problem for problem in on_amazon_linux_2)
