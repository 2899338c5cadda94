# The two commands of the README: `make run` and `make test`. Everything else is a helper.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: run test check setup services realtime-deps webapp-deps fmt bench cluster clean

run: $(STAMP)
	$(BIN)/hubbub serve

test: $(STAMP) services realtime-deps webapp-deps check
	$(BIN)/pytest -q

check: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

# The websocket fan-out benchmark, hubbub against a bare websockets server (docs/benchmarks.md).
# Options go through BENCH_ARGS, e.g. `make bench BENCH_ARGS=--quick`.
BENCH_STAMP := $(VENV)/.bench-stamp
BENCH_ARGS ?=

bench: $(BENCH_STAMP)
	$(BIN)/python -m bench.ws_fanout $(BENCH_ARGS)

$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install -q -e '.[dev,bench]'
	touch $(BENCH_STAMP)

# The client libraries tests/realtime runs against hubbub (docs/realtime-testing.md): mmpy-bot in
# a venv of its own (it pins httpx<0.28, below ours) and @mattermost/client from package-lock.json.
MMPY_VENV := $(VENV)/mmpy-bot
MMPY_STAMP := $(MMPY_VENV)/.installed-stamp
NODE_DIR := tests/realtime/node
NODE_STAMP := $(NODE_DIR)/node_modules/.installed-stamp

realtime-deps: $(MMPY_STAMP) $(NODE_STAMP)

$(MMPY_STAMP): | $(STAMP)
	test -x $(MMPY_VENV)/bin/python || $(PYTHON) -m venv $(MMPY_VENV)
	$(MMPY_VENV)/bin/python -m pip install -q mmpy-bot==2.2.1
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
