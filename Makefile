# Plowline: `make up` runs the embedded pipeline, `make test` runs every check CI runs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

.PHONY: up test lint typecheck contracts unit install clean

$(INSTALLED): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Plowline needs Python 3.11 or newer (set PYTHON=python3.x)")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@

install: $(INSTALLED)

up: $(INSTALLED)
	$(BIN)/plowline up

lint: $(INSTALLED)
	$(BIN)/ruff check plowline tests bench

typecheck: $(INSTALLED)
	$(BIN)/mypy

contracts: $(INSTALLED)
	$(BIN)/lint-imports

unit: $(INSTALLED)
	bash scripts/install-test-deps.sh
	bash scripts/ensure-services.sh
	$(BIN)/pytest

test: lint typecheck contracts unit

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
