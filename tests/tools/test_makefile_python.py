"""Which Python the Makefile makes the venv with (`make install`, hence `make test` and the
build): the functions' runtime, template.yaml's `Runtime:`, wherever this machine has it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from portal_sync_dev.build import load_target

ROOT = Path(__file__).resolve().parents[2]
RUNTIME = load_target().python_version


def planned_install(tmp_path: Path, path_dirs: list[Path]) -> subprocess.CompletedProcess[str]:
    """What `make install` would run (`-n`, everything remade), on a machine whose PATH is
    `path_dirs` and the system's own directories, with its home (and pyenv's root) in tmp_path."""
    env = {
        "PATH": os.pathsep.join([*map(str, path_dirs), "/usr/bin", "/bin"]),
        "HOME": str(tmp_path / "home"),
    }
    return subprocess.run(
        ["make", "-n", "-B", "-C", str(ROOT), "install"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def venv_command(result: subprocess.CompletedProcess[str]) -> str:
    [line] = [line for line in result.stdout.splitlines() if " -m venv .venv" in line]
    return line.split(" -m venv")[0]


def test_pyenvs_runtime_python_is_found_when_path_has_none(tmp_path: Path) -> None:
    """pyenv installs 3.13 beside the system's 3.11 without putting it on PATH."""
    interpreter = tmp_path / f"home/.pyenv/versions/{RUNTIME}.9/bin/python{RUNTIME}"
    interpreter.parent.mkdir(parents=True)
    interpreter.symlink_to(sys.executable)

    result = planned_install(tmp_path, [])

    assert venv_command(result) == str(interpreter)
    assert "not found" not in result.stderr


def test_a_shim_that_cannot_run_is_not_taken_for_the_runtime(tmp_path: Path) -> None:
    """pyenv's shim answers `command -v python3.13` even when no 3.13 is selected, and then
    fails: the Makefile warns, names the fix, and falls back to python3."""
    shims = tmp_path / "shims"
    shims.mkdir()
    shim = shims / f"python{RUNTIME}"
    shim.write_text(f"#!/bin/sh\necho 'pyenv: python{RUNTIME}: command not found' >&2\nexit 127\n")
    shim.chmod(0o755)

    result = planned_install(tmp_path, [shims])

    assert result.returncode == 0, result.stderr
    assert venv_command(result) == "python3"
    assert f"python{RUNTIME} (the functions' runtime) not found" in result.stderr
    assert f"pyenv install {RUNTIME}" in result.stderr


def test_the_runtime_python_on_path_comes_first(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / f"python{RUNTIME}").symlink_to(sys.executable)
    pyenv = tmp_path / f"home/.pyenv/versions/{RUNTIME}.0/bin/python{RUNTIME}"
    pyenv.parent.mkdir(parents=True)
    pyenv.symlink_to(sys.executable)

    result = planned_install(tmp_path, [bin_dir])

    assert venv_command(result) == str(bin_dir / f"python{RUNTIME}")
