"""The README and docs/ stay true to the repository (docs/decisions.md, 2026-12-02).

What a reader acts on must exist: the README's two commands are Makefile targets that do what it
says; every file, folder and module the pages name exists; every make target, template parameter,
output and alarm the deploy steps and the runbook name is real, and every parameter, output and
alarm of template.yaml is documented; every link between pages lands on a page (and heading)
that exists. Each collection is checked to be non-empty, so a change in how the pages are
written cannot make a check pass by finding nothing.
"""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from portal_sync_dev.build import read_template

ROOT = Path(__file__).resolve().parents[2]
# `portal_sync/...` in the docs is the shared package, at layers/portal_sync/portal_sync/.
PACKAGE_PARENT = ROOT / "layers" / "portal_sync"
README = ROOT / "README.md"
DOCS = ROOT / "docs"
PAGES = [README, *sorted(DOCS.glob("*.md"))]
# The pages the issue asks for, beside the ones that existed (supabase.md, security.md).
REQUIRED_PAGES = (
    "inbound.md",
    "dataverse-mapping.md",
    "admin-api.md",
    "website-visibility.md",
    "deploy.md",
    "runbook.md",
    "cli.md",
    "decisions.md",
    "supabase.md",
    "security.md",
)
README_MAX_LINES = 90

FENCE = re.compile(r"^```([\w-]*)[^\n]*\n(.*?)^```[ \t]*$", re.M | re.S)
SPAN = re.compile(r"`([^`\n]+)`")
LINK = re.compile(r"\[[^\]\n]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.M)
# A repository path: under a top-level folder (or the package), or a top-level file.
TOP_LEVEL = "functions|layers|infra|tools|tests|docs|portal_sync"
ROOT_FILES = "template\\.yaml|Makefile|BENCHMARKS\\.md|README\\.md|pyproject\\.toml"
PATH = re.compile(rf"(?:(?:{TOP_LEVEL})/[\w./-]*|{ROOT_FILES})")
MODULE = re.compile(r"portal_sync(?:\.\w+)+")
MAKE = re.compile(r"^make\s+([\w<>%-]+)")
PASCAL = re.compile(r"[A-Z][a-z0-9]+(?:[A-Z][a-z0-9]*)+")
PLACEHOLDER = re.compile(r"\{([A-Z][A-Za-z0-9]+)\}")
OVERRIDES = re.compile(r"--parameter-overrides((?:\s+\w+=\S*)+)")


def text(page: Path) -> str:
    return page.read_text(encoding="utf-8")


def prose(page: Path) -> str:
    """The page without its fenced blocks (their backticks are not spans)."""
    return FENCE.sub("", text(page))


def fenced(page: Path, language: str | None = None) -> list[str]:
    return [body for lang, body in FENCE.findall(text(page)) if language in (None, lang)]


def spans(page: Path) -> list[str]:
    return [span.strip() for span in SPAN.findall(prose(page))]


def section(page: Path, heading: str) -> str:
    """The text under a `## heading` up to the next heading of that level or above."""
    match = re.search(rf"^(#+) {re.escape(heading)}\s*$", text(page), re.M)
    assert match, f"{page.name} has no section {heading!r}"
    level = len(match.group(1))
    rest = text(page)[match.end() :]
    end = re.search(rf"^#{{1,{level}}} ", rest, re.M)
    return rest[: end.start()] if end else rest


def table_names(markdown: str) -> list[str]:
    """The backticked names in the first column of a table's rows."""
    names: list[str] = []
    for line in markdown.splitlines():
        if line.startswith("|") and not line.startswith("|---"):
            first = line.split("|")[1]
            names += SPAN.findall(first)
    return names


def relative(page: Path) -> str:
    return str(page.relative_to(ROOT))


# --- template.yaml and the Makefile ------------------------------------------------------------


@cache
def template() -> dict[str, Any]:
    return read_template()


def template_names(node: Any) -> set[str]:
    """Every key and plain value anywhere in the template: parameters, resources, outputs,
    properties, allowed values."""
    if isinstance(node, dict):
        return set(node).union(*(template_names(value) for value in node.values()))
    if isinstance(node, list):
        return set().union(*(template_names(value) for value in node))
    return {node} if isinstance(node, str) else set()


def alarm_names() -> set[str]:
    """The alarms' names without the `portal-sync-${Stage}-` every one starts with."""
    names = set()
    for resource in template()["Resources"].values():
        if resource["Type"] == "AWS::CloudWatch::Alarm":
            name = resource["Properties"]["AlarmName"]
            name = name.get("Fn::Sub", name) if isinstance(name, dict) else name
            assert name.startswith("portal-sync-${Stage}-"), name
            names.add(name.removeprefix("portal-sync-${Stage}-"))
    return names


@cache
def makefile_rules() -> dict[str, tuple[list[str], list[str]]]:
    """target -> (prerequisites, recipe lines)."""
    rules: dict[str, tuple[list[str], list[str]]] = {}
    current: list[str] | None = None
    for line in (ROOT / "Makefile").read_text().splitlines():
        if line.startswith("\t") and current is not None:
            current.append(line.strip())
            continue
        match = re.match(r"^([^\s:#=$][^:=]*?)\s*:(?!=)\s*(.*)$", line)
        if match is None:
            if line.strip() and not line.startswith("#"):
                current = None
            continue
        current = []
        for target in match.group(1).split():
            rules[target] = (match.group(2).split(), current)
    return rules


def is_make_target(name: str) -> bool:
    name = re.sub(r"<[^>]+>", "X", name)  # `build-<LogicalId>` is one of a pattern rule's
    for target in makefile_rules():
        if target.startswith("."):
            continue
        if re.fullmatch(re.escape(target).replace("%", ".+"), name):
            return True
    return False


def recipe_closure(target: str) -> str:
    """Every recipe line `make <target>` runs, through its prerequisites."""
    seen: set[str] = set()
    lines: list[str] = []

    def visit(name: str) -> None:
        if name in seen or name not in makefile_rules():
            return
        seen.add(name)
        prerequisites, recipe = makefile_rules()[name]
        for prerequisite in prerequisites:
            visit(prerequisite)
        lines.extend(recipe)

    visit(target)
    return "\n".join(lines)


# --- what the pages name -----------------------------------------------------------------------


def named_paths(page: Path) -> set[str]:
    found = {span.rstrip("/") for span in spans(page) if PATH.fullmatch(span)}
    for diagram in fenced(page, "mermaid"):
        found |= {match.rstrip("/") for match in PATH.findall(diagram)}
    return found


def resolve(path: str) -> Path:
    in_package = path == "portal_sync" or path.startswith("portal_sync/")
    return PACKAGE_PARENT / path if in_package else ROOT / path


def make_targets_named(page: Path) -> set[str]:
    targets = {m.group(1) for span in spans(page) if (m := MAKE.match(span))}
    for block in fenced(page):
        targets |= {m.group(1) for line in block.splitlines() if (m := MAKE.match(line.strip()))}
    return targets


def module_defines(module: Path, names: list[str]) -> bool:
    """`names` (a top-level name, or a class and one of its attributes) is defined in module."""
    body = ast.parse(module.read_text()).body
    for name in names:
        defined: dict[str, ast.stmt] = {}
        for node in body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                defined[node.name] = node
            elif isinstance(node, ast.Assign):
                for target in node.targets:
                    if isinstance(target, ast.Name):
                        defined[target.id] = node
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                defined[node.target.id] = node
            elif isinstance(node, ast.ImportFrom):
                for alias in node.names:
                    defined[alias.asname or alias.name] = node
        if name not in defined:
            return False
        found = defined[name]
        body = found.body if isinstance(found, ast.ClassDef) else []
    return True


def module_exists(dotted: str) -> bool:
    parts = dotted.removesuffix("()").split(".")
    for split in range(len(parts), 0, -1):
        base = PACKAGE_PARENT.joinpath(*parts[:split])
        module = base.with_suffix(".py") if base.with_suffix(".py").is_file() else None
        if module is None and (base / "__init__.py").is_file():
            module = base / "__init__.py"
        if module is not None:
            rest = parts[split:]
            return not rest or module_defines(module, rest)
    return False


@cache
def repository_text() -> str:
    """What the code, template and migrations say, to find a name the docs cite."""
    files = [ROOT / "template.yaml", ROOT / "Makefile"]
    for folder in ("functions", "layers", "infra", "tools", "tests/fixtures"):
        files += [
            path
            for path in (ROOT / folder).rglob("*")
            if path.suffix in {".py", ".sql", ".json", ".yaml"} and ".egg-info" not in str(path)
        ]
    return "\n".join(path.read_text(errors="replace") for path in files if path.is_file())


def anchors(page: Path) -> set[str]:
    return {slug(heading) for heading in HEADING.findall(prose(page))}


def slug(heading: str) -> str:
    """GitHub's anchor of a heading."""
    plain = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", r"\1", heading).strip().lower()
    return re.sub(r"\s", "-", re.sub(r"[^\w\s-]", "", plain))


# --- the README ----------------------------------------------------------------------------------


def test_the_readme_fits_on_a_screen_and_a_half() -> None:
    lines = text(README).splitlines()
    assert 20 < len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines"


def test_the_readmes_two_commands_are_make_targets_that_do_what_it_says() -> None:
    commands = make_targets_named(README)
    assert {"run", "test"} <= commands, f"README.md names {sorted(commands)}"
    assert is_make_target("run") and is_make_target("test")
    # `make test`: "lint, type check, template lint, import contracts and the whole test suite".
    checks = recipe_closure("test")
    for tool in ("ruff check", "ruff format --check", "mypy", "cfn-lint", "lint-imports", "pytest"):
        assert tool in checks, f"make test does not run {tool}"
    # `make run`: the local system, on port 8000 unless PORT says otherwise.
    runner = re.search(r"-m (portal_sync_dev(?:\.\w+)*)", recipe_closure("run"))
    assert runner, "make run does not run the local system"
    module = ROOT / "tools" / Path(*runner.group(1).split(".")).with_suffix(".py")
    assert module.is_file(), f"make run runs {runner.group(1)}, which does not exist"
    assert '"PORT", "8000"' in module.read_text(), "make run's port is not 8000 by default"


def test_the_readme_diagram_shows_both_flows_by_their_real_files() -> None:
    diagrams = fenced(README, "mermaid")
    assert len(diagrams) == 1, "README.md should have one mermaid diagram"
    named = set(PATH.findall(diagrams[0]))
    for anchor in (
        "functions/webhook_ingest/app.py",
        "functions/process_event/app.py",
        "functions/website_sync/app.py",
        "infra/statemachines/website_visibility.asl.json",
    ):
        assert anchor in named, f"the diagram does not name {anchor}"
    missing = sorted(path for path in named if not resolve(path.rstrip("/")).exists())
    assert not missing, f"the diagram names files that do not exist: {missing}"


def test_the_readme_links_every_docs_page_and_each_exists() -> None:
    linked = {target.split("#")[0] for target in LINK.findall(prose(README))}
    pages = {f"docs/{page.name}" for page in DOCS.glob("*.md")}
    assert {f"docs/{name}" for name in REQUIRED_PAGES} <= pages, "a docs/ page is missing"
    assert pages <= linked, f"README.md does not link {sorted(pages - linked)}"
    assert all((ROOT / target).is_file() for target in linked if target.startswith("docs/"))


# --- every page --------------------------------------------------------------------------------


def test_every_path_the_pages_name_exists() -> None:
    named = {(relative(page), path) for page in PAGES for path in named_paths(page)}
    assert len({path for _, path in named}) > 20, "found too few paths: is the regex still right?"
    missing = sorted((page, path) for page, path in named if not resolve(path).exists())
    assert not missing, f"paths that do not exist (page, path): {missing}"


def test_every_module_the_pages_name_exists() -> None:
    named = {
        (relative(page), span)
        for page in PAGES
        for span in spans(page)
        if MODULE.fullmatch(span.removesuffix("()"))
    }
    assert named, "no portal_sync module named: is the regex still right?"
    # `portal_sync.<table>` is also the private database schema (docs/supabase.md).
    missing = sorted(
        (page, name)
        for page, name in named
        if not module_exists(name) and name not in repository_text()
    )
    assert not missing, f"modules or names that do not exist (page, name): {missing}"


def test_every_link_between_pages_lands_on_a_page_and_heading_that_exist() -> None:
    checked = 0
    broken = []
    for page in PAGES:
        for target in LINK.findall(prose(page)):
            if re.match(r"^[a-z]+:", target):
                continue  # https:, mailto:
            file_part, _, anchor = target.partition("#")
            destination = (page.parent / file_part).resolve() if file_part else page
            checked += 1
            lands = ROOT in destination.parents and destination.is_file()
            if not lands or (anchor and anchor not in anchors(destination)):
                broken.append((relative(page), target))
    assert checked > 20, "found too few links: is the regex still right?"
    assert not broken, f"links to nothing (page, link): {broken}"


def test_every_docs_page_and_section_the_code_cites_exists() -> None:
    """Comments cite docs/ pages (and sections, as `docs/<page>.md, "<Heading>"`) instead of
    explaining the product again: each citation must land on a page and heading that exist."""
    citation = re.compile(r'docs/([a-z-]+\.md)(?:, "([^"]+)")?')
    cited: set[tuple[str, str, str]] = set()
    sources = [ROOT / "template.yaml", ROOT / "Makefile", ROOT / "pyproject.toml"]
    for folder in ("functions", "layers", "infra", "tools", "tests"):
        sources += [p for p in (ROOT / folder).rglob("*") if p.suffix in {".py", ".sql", ".json"}]
    for source in sources:
        # A citation may wrap onto the next comment line.
        flat = re.sub(r"\s*\n\s*(?:#+|--)?\s*", " ", source.read_text(errors="replace"))
        cited |= {(relative(source), page, title) for page, title in citation.findall(flat)}
    assert len(cited) > 20, "found too few citations of docs/: is the regex still right?"
    wrong = []
    for source, page, title in sorted(cited):
        if not (DOCS / page).is_file():
            wrong.append((source, page))
        elif title and not any(h.startswith(title) for h in HEADING.findall(prose(DOCS / page))):
            wrong.append((source, f"{page}, {title!r}"))
    assert not wrong, f"citations of docs that do not exist (file, citation): {wrong}"


def test_no_page_cites_a_file_outside_the_repository() -> None:
    for page in PAGES:
        for outside in ("CONTRACT.md", "DATAVERSE.md", "../shared"):
            assert outside not in text(page), f"{relative(page)} cites {outside}"


# --- the deploy steps and the runbook ----------------------------------------------------------


def test_every_make_target_the_pages_name_exists() -> None:
    named = {(relative(page), target) for page in PAGES for target in make_targets_named(page)}
    assert {"run", "test", "build", "migrate", "bench"} <= {target for _, target in named}
    missing = sorted((page, target) for page, target in named if not is_make_target(target))
    assert not missing, f"make targets that do not exist (page, target): {missing}"


def test_the_deploy_page_documents_exactly_the_templates_parameters() -> None:
    documented = set(table_names(section(DOCS / "deploy.md", "Parameters")))
    parameters = set(template()["Parameters"])
    assert parameters, "template.yaml has no parameters"
    assert documented - parameters == set(), "documented parameters the template does not have"
    assert parameters - documented == set(), "template parameters docs/deploy.md does not explain"


def test_the_deploy_page_documents_exactly_the_templates_outputs() -> None:
    documented = set(table_names(section(DOCS / "deploy.md", "Outputs")))
    outputs = set(template()["Outputs"])
    assert outputs, "template.yaml has no outputs"
    assert documented - outputs == set(), "documented outputs the template does not have"
    assert outputs - documented == set(), "template outputs docs/deploy.md does not explain"


def test_parameter_overrides_and_output_placeholders_name_real_ones() -> None:
    overrides: set[tuple[str, str]] = set()
    placeholders: set[tuple[str, str]] = set()
    for page in PAGES:
        for block in [*spans(page), *fenced(page)]:
            for match in OVERRIDES.finditer(block):
                overrides |= {
                    (relative(page), pair.split("=")[0]) for pair in match.group(1).split()
                }
            placeholders |= {(relative(page), name) for name in PLACEHOLDER.findall(block)}
    assert overrides and placeholders, "no parameter override or {Output} placeholder found"
    parameters, outputs = set(template()["Parameters"]), set(template()["Outputs"])
    assert not sorted(o for o in overrides if o[1] not in parameters), "unknown parameter"
    assert not sorted(p for p in placeholders if p[1] not in outputs), "unknown output"


def test_every_cloudformation_name_the_deploy_page_cites_is_in_the_template() -> None:
    cited = {span for span in spans(DOCS / "deploy.md") if PASCAL.fullmatch(span)}
    assert len(cited) > 10, "found too few template names in docs/deploy.md"
    unknown = sorted(cited - template_names(template()))
    assert not unknown, f"docs/deploy.md cites names template.yaml does not have: {unknown}"


def test_every_name_the_pages_cite_in_camel_case_exists_in_the_code_or_template() -> None:
    """Parameters, outputs, metrics, Dataverse fields, state names: a renamed one fails here."""
    cited = {
        (relative(page), span) for page in PAGES for span in spans(page) if PASCAL.fullmatch(span)
    }
    assert len(cited) > 20
    words = set(re.findall(r"\w+", repository_text()))
    unknown = sorted((page, name) for page, name in cited if name not in words)
    assert not unknown, f"names found nowhere in the code or template (page, name): {unknown}"


def test_the_runbook_explains_every_alarm_and_only_real_ones() -> None:
    explained = {
        name
        for cell in table_names(section(DOCS / "runbook.md", "Alarms"))
        for name in cell.split(", ")
        if not name.startswith("portal-sync-")
    }
    alarms = alarm_names()
    assert alarms, "template.yaml has no alarms"
    assert explained - alarms == set(), "the runbook explains alarms the template does not have"
    assert alarms - explained == set(), "alarms the runbook does not explain"


@pytest.mark.parametrize("page", REQUIRED_PAGES)
def test_each_docs_page_says_what_it_is(page: str) -> None:
    lines = text(DOCS / page).splitlines()
    assert lines[0].startswith("# "), f"docs/{page} has no title"
    assert any(line.strip() and not line.startswith("#") for line in lines[1:6])
