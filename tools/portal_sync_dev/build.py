"""Deployment artifacts with small cold starts, without the SAM CLI or Docker.

`make build` (`python -m portal_sync_dev.build`) writes what `sam build` would, in the same
layout, so `sam deploy` takes it as it is:

    .aws-sam/build/template.yaml        the template, CodeUri/ContentUri pointing at the dirs below
    .aws-sam/build/<Function>/          each function's code (its CodeUri)
    .aws-sam/build/SharedLayer/python/  the portal_sync package and its pinned dependencies
    .aws-sam/dist/<LogicalId>.zip       the same, zipped reproducibly (for deploying without SAM)

`sam build` itself runs this builder too: every function and the layer say `BuildMethod:
makefile`, and the Makefile's `build-%` rule calls `--resource <LogicalId> --artifacts-dir`.

Why not SAM's own Python builder: Lambda starts a cold environment by importing the handler, and
every module it imports without a usable `.pyc` is compiled first. SAM zips files with the
timestamp 1980-01-01, so ordinary (timestamp-checked) `.pyc` files never match their source and
are recompiled in memory at every cold start (the directories are read-only, nothing is cached).
Here every `.py` is compiled to an *unchecked-hash* `.pyc` (PEP 552): Python loads it without
looking at the source's time or contents. The compiling interpreter must be the runtime's
version (pycs are version-specific), which `make` guarantees: it runs the project's venv.

Third-party wheels are installed for the template's architecture and for the glibc of the
runtime's OS (python3.13 runs on Amazon Linux 2023, glibc 2.34), at the versions installed in the
running environment, i.e. the versions the tests ran with; then every native library is read
(`native_problems`) and the build refused if one would not load there.
"""

from __future__ import annotations

import argparse
import compileall
import importlib.metadata
import importlib.util
import os
import py_compile
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
DEFAULT_OUT = ROOT / ".aws-sam" / "build"

# glibc of the OS each Lambda Python runtime runs on: wheels needing a newer one install fine and
# fail at import ("version `GLIBC_2.27' not found").
RUNTIME_GLIBC = {
    "python3.9": (2, 26),
    "python3.10": (2, 26),
    "python3.11": (2, 26),  # Amazon Linux 2
    "python3.12": (2, 34),  # Amazon Linux 2023
    "python3.13": (2, 34),
    "python3.14": (2, 34),
}
MACHINES = {"x86_64": "x86_64", "arm64": "aarch64"}
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
# Written where Lambda mounts the code; pycs do not depend on the build machine's paths.
FUNCTION_ROOT = "/var/task"
LAYER_ROOT = "/opt/python"
SKIPPED = {"__pycache__", ".pytest_cache", ".mypy_cache"}


class BuildError(Exception):
    pass


# -- the template ------------------------------------------------------------------------------


class _CloudFormationLoader(yaml.SafeLoader):
    """Reads CloudFormation's short-form tags (!Ref, !Sub, ...) as their long form."""


def _intrinsic(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    if suffix == "Ref":
        return {"Ref": value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{suffix}": value}


_CloudFormationLoader.add_multi_constructor("!", _intrinsic)


def read_template(path: Path = TEMPLATE) -> dict[str, Any]:
    loader = _CloudFormationLoader(path.read_text())
    try:
        template: dict[str, Any] = loader.get_single_data()
    finally:
        loader.dispose()
    return template


@dataclass(frozen=True)
class Function:
    logical_id: str
    code_dir: Path
    handler: str

    @property
    def module(self) -> str:
        return self.handler.rsplit(".", 1)[0]


@dataclass(frozen=True)
class Layer:
    logical_id: str
    content_dir: Path

    @property
    def requirements(self) -> Path:
        return self.content_dir / "requirements.txt"

    @property
    def requirements_without_dependencies(self) -> Path:
        """Packages whose own dependencies the runtime provides (the X-Ray SDK's botocore)."""
        return self.content_dir / "requirements-no-deps.txt"


@dataclass(frozen=True)
class Target:
    """What the template deploys: one runtime and architecture for every function and layer."""

    runtime: str
    architecture: str
    functions: tuple[Function, ...]
    layers: tuple[Layer, ...]

    @property
    def python_version(self) -> str:
        return self.runtime.removeprefix("python")

    @property
    def machine(self) -> str:
        return MACHINES[self.architecture]

    def resource(self, logical_id: str) -> Function | Layer:
        for resource in (*self.functions, *self.layers):
            if resource.logical_id == logical_id:
                return resource
        raise BuildError(f"{logical_id} is not a function or layer of the template")


def load_target(template_path: Path = TEMPLATE) -> Target:
    template = read_template(template_path)
    base = template_path.parent
    defaults = template.get("Globals", {}).get("Function", {})
    functions, layers, runtimes, architectures = [], [], set(), set()
    for logical_id, resource in template["Resources"].items():
        props = resource.get("Properties", {})
        if resource["Type"] == "AWS::Serverless::Function":
            runtimes.add(props.get("Runtime", defaults.get("Runtime")))
            architectures.update(props.get("Architectures", defaults.get("Architectures", [])))
            functions.append(Function(logical_id, base / props["CodeUri"], props["Handler"]))
        elif resource["Type"] == "AWS::Serverless::LayerVersion":
            runtimes.update(props.get("CompatibleRuntimes", []))
            architectures.update(props.get("CompatibleArchitectures", []))
            layers.append(Layer(logical_id, base / props["ContentUri"]))
    if len(runtimes) != 1 or len(architectures) != 1:
        raise BuildError(
            f"one runtime and one architecture expected, found {runtimes} / {architectures}"
        )
    return Target(runtimes.pop(), architectures.pop(), tuple(functions), tuple(layers))


def platform_tags(runtime: str, architecture: str) -> list[str]:
    """pip `--platform` values of the wheels that load on the runtime: manylinux up to its glibc."""
    machine = MACHINES[architecture]
    major, newest = RUNTIME_GLIBC[runtime]
    tags = [f"manylinux_{major}_{minor}_{machine}" for minor in range(newest, 16, -1)]
    # The legacy alias of manylinux_2_17; for x86_64 pip adds manylinux2010 and manylinux1 itself.
    return [*tags, f"manylinux2014_{machine}"]


# -- what the artifact's native code needs ----------------------------------------------------

# ELF e_machine of each architecture (System V ABI): a library for another machine fails to load.
ELF_MACHINES = {"x86_64": 62, "aarch64": 183}
_GLIBC_VERSION = re.compile(rb"GLIBC_2\.(\d+)(?![\d.])")


@dataclass(frozen=True)
class NativeLibrary:
    """One ELF shared object of the artifact, as the dynamic loader would see it."""

    path: Path
    machine: int | None  # e_machine; None when the file is not a 64-bit little-endian ELF
    glibc: tuple[int, int] | None  # the newest GLIBC_2.x symbol version it needs

    @classmethod
    def read(cls, path: Path) -> NativeLibrary:
        data = path.read_bytes()
        machine = None
        if data[:4] == b"\x7fELF" and data[4] == 2 and data[5] == 1:  # ELFCLASS64, little-endian
            machine = int.from_bytes(data[18:20], "little")
        # The version names a library needs are strings of its .dynstr; scanning the bytes finds
        # them without an ELF parser (a bundled library's own GLIBC_PRIVATE does not match).
        minors = [int(m) for m in _GLIBC_VERSION.findall(data)]
        return cls(path, machine, (2, max(minors)) if minors else None)


def native_problems(root: Path, target: Target) -> list[str]:
    """What in an installed tree would not load on the target (empty: all good).

    Checks every shared object (machine, glibc it needs, the extension's Python tag in its file
    name) and every wheel's recorded tags (`*.dist-info/WHEEL`) against the runtime's.
    """
    problems = []
    machine = ELF_MACHINES[target.machine]
    newest_glibc = RUNTIME_GLIBC[target.runtime]
    cpython = f"cpython-{target.python_version.replace('.', '')}-"
    for path in sorted(root.rglob("*.so*")):
        if not path.is_file() or not (path.suffix == ".so" or ".so." in path.name):
            continue
        name = path.relative_to(root)
        library = NativeLibrary.read(path)
        if library.machine != machine:
            problems.append(f"{name}: not an ELF library for {target.machine}")
        if library.glibc and library.glibc > newest_glibc:
            problems.append(
                f"{name}: needs glibc {'.'.join(map(str, library.glibc))}, "
                f"{target.runtime} has {'.'.join(map(str, newest_glibc))}"
            )
        if ".cpython-" in path.name and cpython not in path.name:
            problems.append(f"{name}: an extension of another Python than {target.runtime}")
    allowed = set(platform_tags(target.runtime, target.architecture)) | {"any"}
    if target.machine == "x86_64":
        allowed |= {"manylinux2010_x86_64", "manylinux1_x86_64"}
    for wheel in sorted(root.glob("*.dist-info/WHEEL")):
        tags = [
            line.split(":", 1)[1].strip()
            for line in wheel.read_text().splitlines()
            if line.startswith("Tag:")
        ]
        platforms = {tag.rsplit("-", 1)[-1] for tag in tags}
        if tags and not platforms & allowed:
            problems.append(f"{wheel.parent.name}: a wheel for {', '.join(sorted(platforms))}")
    return problems


# -- building ----------------------------------------------------------------------------------


def _check_interpreter(target: Target) -> None:
    running = f"{sys.version_info.major}.{sys.version_info.minor}"
    if running != target.python_version or sys.implementation.name != "cpython":
        raise BuildError(
            f"the functions run on {target.runtime}, but this is {sys.implementation.name} "
            f"{running}: its .pyc files would be ignored. Run the build with CPython "
            f"{target.python_version} (`make build` uses the project's venv)."
        )


def _source_files(src: Path) -> Iterator[Path]:
    for path in sorted(src.rglob("*")):
        relative = path.relative_to(src)
        if any(part in SKIPPED or part.endswith(".egg-info") for part in relative.parts):
            continue
        if path.is_file() and path.suffix not in {".pyc", ".pyo"}:
            yield path


def _copy_tree(src: Path, dest: Path) -> None:
    for path in _source_files(src):
        target = dest / path.relative_to(src)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)


def _fresh_dir(path: Path) -> Path:
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


def compile_tree(root: Path, shown_as: str) -> None:
    """Every .py under root gets an unchecked-hash .pyc in __pycache__ (what Lambda imports)."""
    ok = compileall.compile_dir(
        str(root),
        ddir=shown_as,
        quiet=1,
        # Lambda runs Python without -O, so it reads only these. Optimised pycs would need
        # PYTHONOPTIMIZE on every function, which strips asserts (and with -OO the docstrings
        # Powertools' OpenAPI document reads); measured, -OO pycs saved ~1 % of a cold import,
        # within the noise: not worth changing what runs.
        optimize=0,
        workers=0,  # one process per CPU
        invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
    )
    if not ok:
        raise BuildError(f"some files under {root} do not compile (see above)")


def pyc_problems(root: Path) -> list[str]:
    """Sources under root without an unchecked-hash .pyc for this interpreter (empty: all good)."""
    problems = []
    for source in sorted(root.rglob("*.py")):
        cached = Path(importlib.util.cache_from_source(str(source)))
        if not cached.is_file():
            problems.append(f"{source.relative_to(root)}: no .pyc")
            continue
        header = cached.read_bytes()[:8]
        if header[:4] != importlib.util.MAGIC_NUMBER:
            problems.append(f"{source.relative_to(root)}: .pyc of another Python version")
        elif int.from_bytes(header[4:8], "little") != 0b01:
            problems.append(f"{source.relative_to(root)}: not an unchecked-hash .pyc")
    return problems


def build_function(function: Function, dest: Path, target: Target) -> Path:
    """The function's code (its CodeUri) with compiled modules, at dest."""
    _check_interpreter(target)
    if not (function.code_dir / f"{function.module.replace('.', '/')}.py").is_file():
        raise BuildError(f"{function.logical_id}: no module {function.module} in its CodeUri")
    _fresh_dir(dest)
    _copy_tree(function.code_dir, dest)
    compile_tree(dest, FUNCTION_ROOT)
    return dest


def installed_versions(exclude: Iterable[str] = ()) -> list[str]:
    """`name==version` of every distribution in the running environment (pip constraints)."""
    skip = {name.lower().replace("_", "-") for name in exclude}
    pins = set()
    for dist in importlib.metadata.distributions():
        name = (dist.metadata["Name"] or "").lower().replace("_", "-")
        direct_url = dist.read_text("direct_url.json") or ""
        if name and name not in skip and '"editable": true' not in direct_url.replace(" ", ""):
            pins.add(f"{name}=={dist.version}")
    return sorted(pins)


def install_dependencies(
    requirements: Path, dest: Path, target: Target, *, their_dependencies: bool = True
) -> None:
    """The layer's pinned requirements as wheels for the runtime's platform, uncompiled."""
    with tempfile.TemporaryDirectory() as scratch:
        constraints = Path(scratch) / "constraints.txt"
        constraints.write_text("\n".join(installed_versions()) + "\n")
        command = [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-compile",  # compiled below, with unchecked hashes
            "--only-binary=:all:",
            *([] if their_dependencies else ["--no-deps"]),
            "--implementation",
            "cp",
            "--python-version",
            target.python_version,
            *[
                arg
                for tag in platform_tags(target.runtime, target.architecture)
                for arg in ("--platform", tag)
            ],
            "--target",
            str(dest),
            "--requirement",
            str(requirements),
            "--constraint",
            str(constraints),
        ]
        result = subprocess.run(command, check=False, capture_output=True, text=True)
    if result.returncode != 0:
        errors = [line for line in result.stderr.splitlines() if "is ignored" not in line]
        raise BuildError(
            f"installing {requirements.relative_to(ROOT)} for {target.runtime} on "
            f"{target.architecture} failed; every dependency needs a wheel for "
            f"{target.machine} and glibc {'.'.join(map(str, RUNTIME_GLIBC[target.runtime]))} "
            f"or older.\n" + "\n".join(errors[-15:])
        )
    # Console scripts are of no use in a layer.
    shutil.rmtree(dest / "bin", ignore_errors=True)


def build_layer(layer: Layer, dest: Path, target: Target, *, dependencies: bool = True) -> Path:
    """python/ with the layer's packages (and, unless told not to, its dependencies) at dest."""
    _check_interpreter(target)
    python = _fresh_dir(dest) / "python"
    python.mkdir()
    if dependencies and layer.requirements.is_file():
        install_dependencies(layer.requirements, python, target)
        if layer.requirements_without_dependencies.is_file():
            install_dependencies(
                layer.requirements_without_dependencies, python, target, their_dependencies=False
            )
        problems = native_problems(python, target)
        if problems:
            raise BuildError(
                f"{layer.logical_id}: what pip installed would not load on {target.runtime} "
                f"{target.architecture}: " + "; ".join(problems[:5])
            )
    packages = [p for p in sorted(layer.content_dir.iterdir()) if (p / "__init__.py").is_file()]
    if not packages:
        raise BuildError(f"{layer.logical_id}: no package in {layer.content_dir}")
    for package in packages:
        _copy_tree(package, python / package.name)
    compile_tree(python, LAYER_ROOT)
    return dest


def build_resource(logical_id: str, dest: Path, target: Target) -> Path:
    resource = target.resource(logical_id)
    if isinstance(resource, Layer):
        return build_layer(resource, dest, target)
    return build_function(resource, dest, target)


def zip_tree(src: Path, zip_path: Path) -> Path:
    """A reproducible zip: sorted entries, one timestamp, permissions normalised."""
    zip_path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for path in sorted(p for p in src.rglob("*") if p.is_file()):
            info = zipfile.ZipInfo(path.relative_to(src).as_posix(), ZIP_EPOCH)
            executable = path.stat().st_mode & stat.S_IXUSR
            info.external_attr = (stat.S_IFREG | (0o755 if executable else 0o644)) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, path.read_bytes())
    return zip_path


def built_template(template: dict[str, Any], out: Path, base: Path) -> dict[str, Any]:
    """The template with every built resource pointing at its directory under out."""
    resources = {}
    for logical_id, resource in template["Resources"].items():
        resource = dict(resource)
        props = dict(resource.get("Properties", {}))
        kind = resource["Type"]
        if kind == "AWS::Serverless::Function":
            props["CodeUri"] = logical_id
        elif kind == "AWS::Serverless::LayerVersion":
            props["ContentUri"] = logical_id
        elif kind == "AWS::Serverless::StateMachine" and isinstance(
            props.get("DefinitionUri"), str
        ):
            props["DefinitionUri"] = os.path.relpath(base / props["DefinitionUri"], out)
        if props:
            resource["Properties"] = props
        resources[logical_id] = resource
    return {**template, "Resources": resources}


@dataclass(frozen=True)
class Built:
    out: Path
    template: Path
    functions: dict[str, Path]
    layers: dict[str, Path]
    zips: dict[str, Path]


def build_all(
    out: Path = DEFAULT_OUT,
    *,
    template_path: Path = TEMPLATE,
    dependencies: bool = True,
    zips_dir: Path | None = None,
    verbose: bool = False,
    architecture: str | None = None,
) -> Built:
    target = load_target(template_path)
    if architecture is not None:
        # A twin for another machine (the bench's, to import the artifact where it runs); the
        # built template still says the template's architecture, so it is not for deploying.
        target = replace(target, architecture=architecture)
    _check_interpreter(target)
    _fresh_dir(out)

    def say(message: str) -> None:
        if verbose:
            print(message, flush=True)

    functions, layers = {}, {}
    for layer in target.layers:
        say(f"layer {layer.logical_id}: {target.runtime} {target.architecture}")
        layers[layer.logical_id] = build_layer(
            layer, out / layer.logical_id, target, dependencies=dependencies
        )
    for function in target.functions:
        say(f"function {function.logical_id}")
        functions[function.logical_id] = build_function(function, out / function.logical_id, target)
    for path in (*functions.values(), *layers.values()):
        problems = pyc_problems(path)
        if problems:
            raise BuildError(f"{path}: " + "; ".join(problems[:5]))

    template = built_template(read_template(template_path), out, template_path.parent)
    built_template_path = out / "template.yaml"
    built_template_path.write_text(
        "# Written by `make build` (tools/portal_sync_dev/build.py) from template.yaml.\n"
        + yaml.safe_dump(template, sort_keys=False, width=100)
    )
    zips = {}
    if zips_dir is not None:
        _fresh_dir(zips_dir)
        for logical_id, path in {**layers, **functions}.items():
            zips[logical_id] = zip_tree(path, zips_dir / f"{logical_id}.zip")
            say(f"  {zips[logical_id].relative_to(zips_dir.parent)}: {_size(zips[logical_id])}")
    return Built(out, built_template_path, functions, layers, zips)


def _size(path: Path) -> str:
    return f"{path.stat().st_size / 1024 / 1024:.1f} MiB"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m portal_sync_dev.build", description=__doc__)
    parser.add_argument("--template", type=Path, default=TEMPLATE)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="build directory")
    parser.add_argument(
        "--no-dependencies",
        action="store_true",
        help="leave the layer's third-party dependencies out (quick; not deployable)",
    )
    parser.add_argument("--no-zip", action="store_true", help="do not write .aws-sam/dist/*.zip")
    parser.add_argument(
        "--resource", help="build one function or layer only (what `sam build` asks for)"
    )
    parser.add_argument(
        "--artifacts-dir", type=Path, help="with --resource: where to put it (SAM's ARTIFACTS_DIR)"
    )
    args = parser.parse_args(argv)
    try:
        if args.resource:
            target = load_target(args.template)
            dest = args.artifacts_dir or args.out / args.resource
            build_resource(args.resource, dest, target)
            problems = pyc_problems(dest)
            if problems:
                raise BuildError("; ".join(problems[:5]))
            return
        zips_dir = None if args.no_zip else args.out.parent / "dist"
        built = build_all(
            args.out,
            template_path=args.template,
            dependencies=not args.no_dependencies,
            zips_dir=zips_dir,
            verbose=True,
        )
    except BuildError as exc:
        sys.exit(f"build failed: {exc}")
    print(f"built {built.template}; deploy with `sam deploy --guided` (it picks up that template)")


if __name__ == "__main__":
    main()
