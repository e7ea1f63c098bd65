# Stratum developer commands. `make setup` then `make test` on a fresh machine.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.9
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export CDK_DISABLE_CLI_TELEMETRY := true

.PHONY: setup test test-slow test-corpus bench eval lint contracts fmt synth layers openapi sdk sdk-models demo clean

setup: ## virtualenv at .venv with pinned versions, the stratum CLI and the pinned CDK CLI
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	$(BIN)/uv pip sync --quiet --compile-bytecode --python $(BIN)/python requirements/dev.lock
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps -e .
	$(BIN)/python -m compileall -q src
	@if command -v npm >/dev/null; then npm ci --no-audit --no-fund --silent; else echo "npm not found: skipping the optional CDK CLI"; fi
	@$(BIN)/stratum --version

test: contracts ## the import and type contracts, then the whole suite (slow runs excluded; corpus tests run when ../shared/corpus exists)
	$(BIN)/python -m pytest -q -m "not slow" $(ARGS) || exit $$?

test-slow:
	$(BIN)/python -m pytest -q -m slow $(ARGS)

BENCH_RUNS ?= 5
bench: ## ingest + API benchmarks, median of BENCH_RUNS runs (figures go to bench/results/)
	$(BIN)/python -m stratum.devtools.bench all --runs $(BENCH_RUNS)

EVAL_MAPS ?= 1500
eval: ## pattern classifier on held-out synthetic maps: per-family P/R/F1, macro-F1, location/severity, ECE, maps/s
	nice $(BIN)/python -m stratum.devtools.patterns_eval -n $(EVAL_MAPS)

lint: contracts ## ruff, plus the import and type contracts
	$(BIN)/ruff check src tests functions infra sdk/python
	$(BIN)/ruff format --check src tests functions infra sdk/python

contracts: ## import-linter layers/cycles/adapters (pyproject [tool.importlinter]) and mypy on src/ and functions/
	$(BIN)/lint-imports --no-cache
	$(BIN)/mypy src/stratum
	for f in functions/*/handler.py; do $(BIN)/mypy $$f || exit 1; done  # one call each: every module is named handler

fmt:
	$(BIN)/ruff format src tests functions infra sdk/python
	$(BIN)/ruff check --fix src tests functions infra sdk/python

synth: ## offline CDK synth into infra/cdk.out
	cd infra && ../$(BIN)/python app.py

LAYER_PYTHON ?=
layers: ## build the Lambda layers (manylinux wheels via pip --platform, no Docker) with bytecode compiled by a Python 3.12 (python3.12 on PATH, pyenv, or LAYER_PYTHON=path)
	$(BIN)/python layers/build.py --all $(if $(LAYER_PYTHON),--compile-python $(LAYER_PYTHON))

openapi: ## regenerate openapi.json from the app, then the SDK's models from it
	$(BIN)/python -m stratum.api.openapi > openapi.json
	$(BIN)/python sdk/python/generate_models.py

sdk-models: ## regenerate sdk/python's models from openapi.json (a test fails on drift)
	$(BIN)/python sdk/python/generate_models.py

sdk: ## build the stratum-client wheel into sdk/python/dist/
	$(BIN)/python -m build --wheel --no-isolation --outdir sdk/python/dist sdk/python

demo:
	$(BIN)/stratum demo

clean:
	rm -rf $(VENV) node_modules infra/cdk.out layers/build .pytest_cache
