# The two commands of the README: `make run` and `make test`. Everything else is a helper.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
RUN_STAMP := $(VENV)/.run-stamp
# Every install comes from a lock file in requirements/ (README: "Dependencies and the lock file");
# hubbub itself is then installed editable without its dependencies.
PIP_VERSION := 26.3
LOCKS := requirements

.PHONY: run test check setup services realtime-deps webapp-deps synapse-deps fmt bench cluster clean lock

run: $(RUN_STAMP)
	$(BIN)/hubbub serve

test: $(STAMP) services realtime-deps webapp-deps check
	$(BIN)/pytest -q -n 2 --dist loadfile

check: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

setup: $(STAMP)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q pip==$(PIP_VERSION)

# `make run`: the runtime dependencies only. `make test` and every helper: runtime and dev.
$(RUN_STAMP): $(LOCKS)/run.lock pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -r $(LOCKS)/run.lock
	$(BIN)/python -m pip install -q --no-deps -e .
	touch $@

$(STAMP): $(LOCKS)/dev.lock pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -r $(LOCKS)/dev.lock
	$(BIN)/python -m pip install -q --no-deps -e .
	touch $@

# Re-resolves the lock files from pyproject.toml (and requirements/mmpy-bot.in), keeping every
# pin that still fits; `make lock LOCK_ARGS=--upgrade` (or `--upgrade-package uvicorn`) moves
# them. dev.lock is resolved first and the others within it, so shared pins are identical.
PIP_TOOLS_VERSION := 7.7.0
LOCK_VENV := $(VENV)/pip-tools
LOCK_ARGS ?=
PIP_COMPILE = CUSTOM_COMPILE_COMMAND="make lock" $(LOCK_VENV)/bin/pip-compile --quiet \
	--allow-unsafe --strip-extras --no-emit-index-url --no-emit-find-links \
	--no-emit-trusted-host $(LOCK_ARGS)

lock:
	test -x $(LOCK_VENV)/bin/python || $(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/python -m pip install -q pip==$(PIP_VERSION) pip-tools==$(PIP_TOOLS_VERSION)
	$(PIP_COMPILE) --extra dev -o $(LOCKS)/dev.lock pyproject.toml
	$(PIP_COMPILE) -c $(LOCKS)/dev.lock -o $(LOCKS)/run.lock pyproject.toml
	$(PIP_COMPILE) --extra dev --extra bench -c $(LOCKS)/dev.lock -o $(LOCKS)/bench.lock \
		pyproject.toml
	$(PIP_COMPILE) -o $(LOCKS)/mmpy-bot.lock $(LOCKS)/mmpy-bot.in
	$(PIP_COMPILE) -o $(LOCKS)/synapse.lock $(LOCKS)/synapse.in

# The benchmarks (docs/benchmarks.md), each with its baseline in the same run: all of them, or
# one by name with its options through BENCH_ARGS, e.g. `make bench BENCH_ARGS="realistic --quick"`,
# `make bench BENCH_ARGS=fanout` (the fan-out benchmark's default run), `BENCH_ARGS=--quick` (all,
# smoke sizes). The posts/s benchmark's baseline, Synapse, lives in a venv of its own.
BENCH_STAMP := $(VENV)/.bench-stamp
BENCH_ARGS ?=
SYNAPSE_VENV := $(VENV)/synapse
SYNAPSE_STAMP := $(SYNAPSE_VENV)/.installed-stamp

bench: $(BENCH_STAMP) $(SYNAPSE_STAMP)
	$(BIN)/python -m bench $(BENCH_ARGS)

synapse-deps: $(SYNAPSE_STAMP)

$(SYNAPSE_STAMP): $(LOCKS)/synapse.lock | $(STAMP)
	test -x $(SYNAPSE_VENV)/bin/python || $(PYTHON) -m venv $(SYNAPSE_VENV)
	$(SYNAPSE_VENV)/bin/python -m pip install -q pip==$(PIP_VERSION)
	$(SYNAPSE_VENV)/bin/python -m pip install -q -r $(LOCKS)/synapse.lock
	touch $(SYNAPSE_STAMP)

$(BENCH_STAMP): $(STAMP) $(LOCKS)/bench.lock
	$(BIN)/python -m pip install -q -r $(LOCKS)/bench.lock
	touch $(BENCH_STAMP)

# The client libraries tests/realtime runs against hubbub (docs/realtime-testing.md): mmpy-bot in
# a venv of its own (it pins httpx<0.28, below ours), from requirements/mmpy-bot.lock, and
# @mattermost/client from package-lock.json.
MMPY_VENV := $(VENV)/mmpy-bot
MMPY_STAMP := $(MMPY_VENV)/.installed-stamp
NODE_DIR := tests/realtime/node
NODE_STAMP := $(NODE_DIR)/node_modules/.installed-stamp

realtime-deps: $(MMPY_STAMP) $(NODE_STAMP)

$(MMPY_STAMP): $(LOCKS)/mmpy-bot.lock | $(STAMP)
	test -x $(MMPY_VENV)/bin/python || $(PYTHON) -m venv $(MMPY_VENV)
	$(MMPY_VENV)/bin/python -m pip install -q -r $(LOCKS)/mmpy-bot.lock
	touch $(MMPY_STAMP)

$(NODE_STAMP): $(NODE_DIR)/package-lock.json | services
	cd $(NODE_DIR) && npm ci --no-audit --no-fund
	touch $(NODE_STAMP)

# The web app's data layer (mattermost-redux, @mattermost/client) that tests/webapp runs.
WEBAPP_NODE_DIR := tests/webapp/node
WEBAPP_NODE_STAMP := $(WEBAPP_NODE_DIR)/node_modules/.installed-stamp

webapp-deps: $(WEBAPP_NODE_STAMP)

$(WEBAPP_NODE_STAMP): $(WEBAPP_NODE_DIR)/package-lock.json | services
	cd $(WEBAPP_NODE_DIR) && npm ci --no-audit --no-fund
	touch $(WEBAPP_NODE_STAMP)

# A local cluster on loopback: PostgreSQL, Redis, three nodes and nginx in front (docs/cluster.md).
# Ctrl-C stops it all. Options through CLUSTER_ARGS, e.g. `make cluster CLUSTER_ARGS="--nodes 2"`.
CLUSTER_ARGS ?=

cluster: $(STAMP) services
	$(BIN)/python scripts/demo-cluster $(CLUSTER_ARGS)

# System packages the tests start their own instances of (PostgreSQL today).
services:
	scripts/ensure-system-packages

fmt: $(STAMP)
	$(BIN)/ruff format src tests bench
	$(BIN)/ruff check --fix src tests bench

clean:
	rm -rf $(VENV) data .pytest_cache .mypy_cache .ruff_cache $(NODE_DIR)/node_modules \
		$(WEBAPP_NODE_DIR)/node_modules
