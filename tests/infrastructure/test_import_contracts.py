"""The layering of portal_sync holds (`make imports`: the import-linter contracts in
pyproject.toml; docs/decisions.md), and the handlers stay thin wiring (functions/*/app.py)."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "layers" / "portal_sync" / "portal_sync"
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
CONTRACTS = {
    contract["id"]: contract["name"]
    for contract in tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"][
        "contracts"
    ]
}
HANDLERS = sorted((ROOT / "functions").glob("*/app.py"))
# What a handler may not import: I/O belongs to the adapters, built by portal_sync/bootstrap.
HANDLER_FORBIDDEN = {"psycopg", "botocore", "httpx"}
HANDLER_MAX_LINES = 90


def lint_imports(config: Path, package_parent: Path) -> subprocess.CompletedProcess[str]:
    """lint-imports with `config`, analysing the portal_sync found in `package_parent`."""
    env = {**os.environ, "PYTHONPATH": str(package_parent)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(config), "--no-cache", "--no-logo"],
        cwd=config.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_tree_keeps_every_contract() -> None:
    assert set(CONTRACTS) == {"logic", "adapters"}
    result = lint_imports(ROOT / "pyproject.toml", PACKAGE.parent)
    assert result.returncode == 0, result.stdout + result.stderr
    output = " ".join(result.stdout.split())
    for name in CONTRACTS.values():
        assert f"{name} KEPT" in output


@pytest.mark.parametrize(
    ("contract", "module", "line", "forbidden"),
    [
        ("logic", "inbound", "import psycopg", "psycopg"),
        ("logic", "admin", "import botocore.exceptions", "botocore"),
        ("logic", "visibility", "import httpx", "httpx"),
        ("logic", "access", "import jwt", "jwt"),
        (
            "logic",
            "dataverse",
            "from aws_lambda_powertools.event_handler import Response",
            "aws_lambda_powertools.event_handler",
        ),
        ("logic", "inbound", "from portal_sync.adapters.postgres import connection", "adapters"),
        ("logic", "admin", "from portal_sync import settings", "portal_sync.settings"),
        ("logic", "visibility", "from portal_sync import bootstrap", "portal_sync.bootstrap"),
        ("adapters", "adapters", "from portal_sync import entrypoints", "portal_sync.entrypoints"),
        ("adapters", "adapters", "from portal_sync import bootstrap", "portal_sync.bootstrap"),
    ],
)
def test_a_deliberate_violation_breaks_its_contract(
    tmp_path: Path, contract: str, module: str, line: str, forbidden: str
) -> None:
    """A copy of the package with one forbidden import added (in a module of its own, so the
    copy needs nothing else of the tree to stay as it is)."""
    copy = tmp_path / "src" / "portal_sync"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    (copy / module / "deliberate_violation.py").write_text(f"{line}\n")
    config = tmp_path / "pyproject.toml"
    shutil.copy(ROOT / "pyproject.toml", config)

    result = lint_imports(config, copy.parent)

    output = " ".join(result.stdout.split())
    assert result.returncode == 1, output + result.stderr
    assert f"{CONTRACTS[contract]} BROKEN" in output
    assert f"portal_sync.{module}.deliberate_violation" in output
    assert forbidden in output
    # The other contract is not disturbed by it.
    other = next(name for key, name in CONTRACTS.items() if key != contract)
    assert f"{other} KEPT" in output


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, at the top or inside a function (a lazy import counts)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
    return found


def test_the_five_handlers_are_found() -> None:
    names = [path.parent.name for path in HANDLERS]
    assert names == ["admin_api", "process_event", "reconcile", "webhook_ingest", "website_sync"]


@pytest.mark.parametrize("handler", HANDLERS, ids=lambda path: path.parent.name)
def test_a_handler_imports_no_io_library(handler: Path) -> None:
    reached = {name.split(".")[0] for name in imported_modules(handler)}
    assert not reached & HANDLER_FORBIDDEN


@pytest.mark.parametrize("handler", HANDLERS, ids=lambda path: path.parent.name)
def test_a_handler_is_wiring_not_logic(handler: Path) -> None:
    lines = len(handler.read_text().splitlines())
    assert lines <= HANDLER_MAX_LINES, f"{lines} lines"


def test_an_import_inside_a_function_counts_for_a_handler(tmp_path: Path) -> None:
    """A lazy import costs no cold start but is still the handler reaching for I/O."""
    handler = tmp_path / "app.py"
    handler.write_text("def handler(event, context):\n    from psycopg import connect\n")
    assert imported_modules(handler) == {"psycopg"}
