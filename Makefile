# Relisten: two commands for a newcomer.
#   make run   set up .venv, migrate, load the demo clinic, serve on http://127.0.0.1:8000 (+ worker)
#   make test  ruff, mypy, pytest on SQLite, then the whole suite again on PostgreSQL if reachable

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
RELISTEN_TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/relisten

.PHONY: run test lint typecheck pytest pytest-postgres vendor clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Relisten needs Python 3.11 or newer (set PYTHON=python3.12, for example)")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $(STAMP)

# Demo mode: debug on, known demo passwords, two-factor optional. Never for real clients.
run: export RELISTEN_DEBUG ?= 1
run: export RELISTEN_DEMO_MODE ?= 1
run: $(STAMP)
	$(BIN)/relisten migrate --verbosity 0
	$(BIN)/relisten demo
	$(BIN)/relisten serve --with-worker

lint: $(STAMP)
	$(BIN)/ruff check relisten tests scripts bench

typecheck: $(STAMP)
	$(BIN)/mypy relisten bench

pytest: $(STAMP)
	$(BIN)/pytest

pytest-postgres: $(STAMP)
	@$(BIN)/python scripts/service_check.py postgres "$(RELISTEN_TEST_DATABASE_URL)"; status=$$?; \
	if [ $$status -eq 0 ]; then \
		echo "== the whole suite again on PostgreSQL =="; \
		RELISTEN_DATABASE_URL="$(RELISTEN_TEST_DATABASE_URL)" $(BIN)/pytest; \
	elif [ $$status -ne 1 ]; then exit $$status; fi

test: lint typecheck pytest pytest-postgres

vendor: $(STAMP)
	$(BIN)/python scripts/vendor_js.py

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
