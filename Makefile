# toolsdb: `make help` lists the targets. Every target creates the local
# virtualenv (.venv) from pyproject.toml on first use and reuses it after, with
# every extra ('.[dev]' includes toolsdb[all]: redis, mcp, validate) and the dev tools.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
# Benchmark-only virtualenv: the project plus what the benchmarks compare with (the queues of
# tests/bench_queue.py, the limits library of tests/bench_redis.py).
BENCH_VENV  := .venv-bench
BENCH_STAMP := $(BENCH_VENV)/.installed-stamp
TOOLSDB := $(BIN)/toolsdb
SQL_DIRS := schema migrations repeatable seeds

.DEFAULT_GOAL := help
.PHONY: help migrate seed rollback status new-migration psql lint test bench db-start db-stop reset clean venv

help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  make %-15s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@

venv: $(STAMP) ## Create or update the virtualenv only

migrate: $(STAMP) ## Apply pending migrations (starts the embedded server if no database is configured)
	$(TOOLSDB) migrate --remember

seed: $(STAMP) ## Load the demo data in seeds/
	$(TOOLSDB) seed

rollback: $(STAMP) ## Roll back the newest migration (id=ID: down to and including ID; force=1: even if it drops rows)
	$(TOOLSDB) rollback $(if $(id),--id $(id)) $(if $(force),--force)

status: $(STAMP) ## Show the database in use and applied/pending migrations
	$(TOOLSDB) status

new-migration: $(STAMP) ## Create migrations/NNNN.<name>.sql and its rollback (name=...)
	@test -n "$(name)" || { echo "usage: make new-migration name=add_something" >&2; exit 2; }
	$(TOOLSDB) new-migration $(name)

psql: $(STAMP) ## Open psql on the database
	$(TOOLSDB) psql

lint: $(STAMP) ## sqlfluff on the SQL, squawk on migrations/, ruff on the Python
	$(BIN)/sqlfluff lint $(SQL_DIRS)
	$(BIN)/squawk --config .squawk.toml migrations/*.sql
	$(BIN)/ruff check runner tests migrations
	$(BIN)/ruff format --check runner tests migrations

# Test processes (pytest-xdist): one per core, at most 4; each starts its own
# servers, and a module's tests stay together in one process (--dist loadscope).
TEST_WORKERS ?= $(shell n=$$(nproc 2>/dev/null || echo 2); [ $$n -gt 4 ] && n=4; echo $$n)

test: lint ## Lint, then run the whole suite (PostgreSQL 18 and, where installed, 15), in parallel
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadscope $(PYTEST_ARGS)

$(BENCH_STAMP): pyproject.toml
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(BENCH_VENV)/bin/python -m pip install --quiet -e '.[all]' procrastinate pgqueuer limits
	@touch $@

bench: $(STAMP) $(BENCH_STAMP) ## Run the benchmarks (figures as ratios against a same-run baseline; 35-45 minutes)
	$(BIN)/python -m tests.bench
	$(BIN)/python -m tests.bench_work
	$(BENCH_VENV)/bin/python -m tests.bench_queue
	$(BIN)/python -m tests.bench_agent_tools
	$(BENCH_VENV)/bin/python -m tests.bench_redis
	$(BIN)/python -m tests.bench_churn
	$(BIN)/python -m tests.bench_ops
	$(BIN)/python -m tests.bench_compat
	$(BIN)/python -m tests.bench_serve
	$(BIN)/python -m tests.bench_transcripts
	$(BIN)/python -m tests.bench_cluster

db-start: $(STAMP) ## Start the embedded PostgreSQL server
	$(TOOLSDB) server start

db-stop: $(STAMP) ## Stop the embedded PostgreSQL server
	$(TOOLSDB) server stop

reset: $(STAMP) ## Drop, re-create and migrate the embedded database (asks; force=1 skips)
	$(TOOLSDB) reset $(if $(force),--force)

clean: ## Remove .venv, .venv-bench, caches and the embedded database in .toolsdb (asks; force=1 skips)
	@if [ -d .toolsdb ] && [ "$(force)" != 1 ]; then \
	    printf 'Delete the embedded database in .toolsdb, with all its data? [y/N] '; \
	    read -r answer || answer=; \
	    case "$$answer" in y|Y|yes) ;; *) echo "Aborted: nothing was removed (force=1 skips the question)." >&2; exit 1;; esac; \
	fi
	-@test -x $(TOOLSDB) && $(TOOLSDB) server stop
	rm -rf $(VENV) $(BENCH_VENV) .toolsdb build dist .pytest_cache .ruff_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
