# portal sync: `make run` starts everything locally, `make test` runs every check.
# Both set up what they need on a fresh machine (Python 3.11+, nothing else).

# The venv is made with the functions' runtime (template.yaml's `Runtime:`), since the builder
# compiles for it and the tests should run what Lambda runs: python3.13 on PATH, else pyenv's
# (a pyenv shim answers `command -v` even when its version is not selected, so each candidate
# is run). Another python3 only when none is found: the tests run, the build refuses and says so.
RUNTIME := $(shell sed -n 's/^ *Runtime: python\([0-9.]*\)$$/\1/p' template.yaml | head -1)
RUNTIME_PYTHON := $(shell for p in python$(RUNTIME) \
	$$(ls -d $${PYENV_ROOT:-$$HOME/.pyenv}/versions/$(RUNTIME).*/bin/python$(RUNTIME) 2>/dev/null | sort -V -r); do \
	$$p -c '' 2>/dev/null && { command -v $$p; break; }; done)
PYTHON ?= $(or $(RUNTIME_PYTHON),python3)
ifeq ($(RUNTIME_PYTHON),)
$(warning python$(RUNTIME) (the functions' runtime) not found: using $(PYTHON); `make build` and `sam build` refuse it. Install it, e.g. `pyenv install $(RUNTIME)`.)
endif
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-python$(RUNTIME)

.PHONY: install run migrate test lint typecheck template-lint imports unit integration \
	reliability clean build bench-cold bench bench-report deploy-check browser-tools browser \
	deploy-console console-lint

$(STAMP): pyproject.toml layers/portal_sync/pyproject.toml
	@# A venv of another Python (made before the runtime changed) is made again, not reused.
	@if [ -x $(BIN)/python ] && [ "$$($(BIN)/python -c 'import platform; print(platform.python_version())' | cut -d. -f1,2)" != "$$($(PYTHON) -c 'import platform; print(platform.python_version())' | cut -d. -f1,2)" ]; then \
		echo "$(VENV) is another Python than $(PYTHON): making it again"; rm -rf $(VENV); fi
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

# The admin console in Debian's Chromium, driven by Playwright, checked by axe-core.
browser: $(STAMP) browser-tools
	$(BIN)/pytest tests/browser

# What the browser tests need beside the venv: Debian's Chromium (apt) and axe-core (npm ci from
# console/package-lock.json); each script does nothing when its install is there already.
# The console's files as prettier formats them (console/package-lock.json pins it).
console-lint: browser-tools
	cd console && npx --no-install prettier --check .

browser-tools:
	bash tools/browser/install-chromium.sh
	bash tools/browser/install-axe.sh

test: lint typecheck template-lint imports deploy-check browser-tools console-lint
	$(BIN)/pytest

# -- deployment and benchmarks --------------------------------------------------------------------

# The template as a user deploys it: the real SAM CLI (`sam validate --lint`, `sam build`, no
# Docker) and checkov, whose accepted findings .checkov.yaml lists with their reasons; in a
# tool environment of its own (.tools/deploy-check, tools/deploy_check/requirements.txt).
TOOLS := .tools/deploy-check
$(TOOLS)/.installed: tools/deploy_check/requirements.txt
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet --upgrade pip
	$(TOOLS)/bin/python -m pip install --quiet -r tools/deploy_check/requirements.txt
	touch $@

deploy-check: $(STAMP) $(TOOLS)/.installed
	SAM_CLI_TELEMETRY=0 $(TOOLS)/bin/sam validate --lint --template template.yaml
	SAM_CLI_TELEMETRY=0 $(TOOLS)/bin/sam build --template template.yaml --build-dir .aws-sam/deploy-check
	$(TOOLS)/bin/checkov --config-file .checkov.yaml --file template.yaml

# The admin console into a deployed stack's bucket, behind its CloudFront distribution
# (docs/deploy.md, "Console"): the lockfile's npm install (supabase-js's browser bundle), then
# the files and a config.json written from the stack's outputs. STACK names the stack.
STACK ?= portal-sync-prod
deploy-console: $(STAMP)
	bash tools/browser/install-axe.sh
	$(BIN)/python -m portal_sync_dev.console_deploy --stack $(STACK) $(if $(AWS_REGION),--region $(AWS_REGION))

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
