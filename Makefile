# The two commands: `make run` (whole stack against the sandboxes) and `make test` (every test).
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_DATABASE_URL ?= postgresql+asyncpg://postgres@127.0.0.1:5432/connector_test

.PHONY: install services run test lint bench migrate preflight clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

# PostgreSQL and RabbitMQ on this machine, set up as the tests need them (see deploy/services.sh);
# quick and changes nothing when they already are. SKIP_SERVICES=1 when they run elsewhere.
services:
	@deploy/services.sh

preflight: install services
	$(BIN)/python -m shared.preflight

migrate: preflight
	$(BIN)/python -m shared.db.migrate

run: migrate
	@$(BIN)/python -m deploy.run

test: install services
	DATABASE_URL=$(TEST_DATABASE_URL) $(BIN)/python -m shared.preflight
	DATABASE_URL=$(TEST_DATABASE_URL) $(BIN)/python -m shared.db.migrate
	DATABASE_URL=$(TEST_DATABASE_URL) $(BIN)/pytest -q -p no:cacheprovider $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: install preflight
	DATABASE_URL=$(TEST_DATABASE_URL) $(BIN)/python -m shared.db.migrate
	DATABASE_URL=$(TEST_DATABASE_URL) $(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
