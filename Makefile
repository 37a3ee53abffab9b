# portal sync: `make run` starts everything locally, `make test` runs every check.
# Both set up what they need on a fresh machine (Python 3.11+, nothing else).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test lint typecheck template-lint unit clean build bench-cold bench migrate

$(STAMP): pyproject.toml layers/portal_sync/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e layers/portal_sync -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/python -m portal_sync_dev.run

# The migrations on DATABASE_URL (a Supabase project: its direct connection, docs/supabase.md).
migrate: $(STAMP)
	$(BIN)/python -m portal_sync_dev.migrations

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

template-lint: $(STAMP)
	$(BIN)/cfn-lint template.yaml

test: lint typecheck template-lint
	$(BIN)/pytest

# Deployment artifacts in .aws-sam/build (what `sam deploy` takes) and .aws-sam/dist (zips),
# without the SAM CLI or Docker: tools/portal_sync_dev/build.py.
build: $(STAMP)
	$(BIN)/python -m portal_sync_dev.build

# Cold import and first invocation of each function from the built artifact, against a bare
# `import boto3`; writes the "Cold start" section of BENCHMARKS.md.
bench-cold: build
	$(BIN)/python -m portal_sync_dev.bench_cold_start

# Ingest, apply, end to end and memory, each against a baseline measured in the same run
# (tools/portal_sync_dev/bench.py), after the cold start; prints the table and writes
# BENCHMARKS.md around bench-cold's "Cold start" section. Not part of `make test`.
bench: $(STAMP) bench-cold
	$(BIN)/python -m portal_sync_dev.bench

# `sam build` runs `make build-<LogicalId>` for every function and the layer (BuildMethod:
# makefile), in a scratch copy of the resource's code with ARTIFACTS_DIR set: the same builder.
HERE := $(patsubst %/,%,$(dir $(abspath $(firstword $(MAKEFILE_LIST)))))
build-%:
	$(MAKE) -s -C $(HERE) install
	$(HERE)/$(BIN)/python -m portal_sync_dev.build --resource $* --artifacts-dir "$(ARTIFACTS_DIR)"

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
