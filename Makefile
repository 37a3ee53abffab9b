# portal sync: `make run` starts everything locally, `make test` runs every check.
# Both set up what they need on a fresh machine (Python 3.11+, nothing else).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run migrate test lint typecheck template-lint imports unit integration \
	reliability clean build bench-cold bench bench-report

$(STAMP): pyproject.toml layers/portal_sync/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e layers/portal_sync -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

# The whole product on this machine (tools/portal_sync_dev/local/; docs/cli.md).
run: $(STAMP)
	$(BIN)/python -m portal_sync_dev.local.run

# The migrations on DATABASE_URL (a Supabase project: its direct connection, docs/supabase.md).
migrate: $(STAMP)
	$(BIN)/python -m portal_sync_dev.database.migrations

# -- checks ---------------------------------------------------------------------------------------

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

template-lint: $(STAMP)
	$(BIN)/cfn-lint template.yaml

# The layering of portal_sync: logic imports no adapter, entry point, wiring or I/O library
# (the contracts are [tool.importlinter] in pyproject.toml).
imports: $(STAMP)
	$(BIN)/lint-imports --no-cache --no-logo

# What needs no PostgreSQL or AWS stand-in: the logic, the template and the build, the tools.
unit: $(STAMP)
	$(BIN)/pytest tests/unit tests/infrastructure tests/tools

# Against a real (embedded) PostgreSQL and moto, one flow at a time.
integration: $(STAMP)
	$(BIN)/pytest tests/integration

# Faults, fuzzing and isolation: outages, poison messages, storms, exactly once.
reliability: $(STAMP)
	$(BIN)/pytest tests/reliability

test: lint typecheck template-lint imports
	$(BIN)/pytest

# -- deployment and benchmarks --------------------------------------------------------------------

# Deployment artifacts in .aws-sam/build (what `sam deploy` takes) and .aws-sam/dist (zips),
# without the SAM CLI or Docker: tools/portal_sync_dev/build.py.
build: $(STAMP)
	$(BIN)/python -m portal_sync_dev.build

# Cold import and first invocation of each function from the built artifact, against a bare
# `import boto3`; writes the "Cold start" section of BENCHMARKS.md
# (tools/portal_sync_dev/bench/cold_start.py).
bench-cold: build
	$(BIN)/python -m portal_sync_dev.bench.cold_start

# Ingest, apply, end to end and memory, each against a baseline measured in the same run
# (tools/portal_sync_dev/bench/), after the cold start; prints the table and writes
# BENCHMARKS.md around bench-cold's "Cold start" section, its prose from bench/methods.md and
# bench/findings.md. Keeps the results in .local/bench/results.json. Not part of `make test`.
bench: $(STAMP) bench-cold
	$(BIN)/python -m portal_sync_dev.bench

# BENCHMARKS.md again from the last `make bench`'s results, after an edit of its prose.
bench-report: $(STAMP)
	$(BIN)/python -m portal_sync_dev.bench report

# `sam build` runs `make build-<LogicalId>` for every function and the layer (BuildMethod:
# makefile), in a scratch copy of the resource's code with ARTIFACTS_DIR set: the same builder.
HERE := $(patsubst %/,%,$(dir $(abspath $(firstword $(MAKEFILE_LIST)))))
build-%:
	$(MAKE) -s -C $(HERE) install
	$(HERE)/$(BIN)/python -m portal_sync_dev.build --resource $* --artifacts-dir "$(ARTIFACTS_DIR)"

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
