# The workshop kit's entry points. `make run` and `make test` are the two quick-start commands; both are idempotent.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PINS := $(wildcard workshop_lib/pins/*.txt) pyproject.toml
PYTEST_ARGS ?=

.PHONY: help venv venv-test setup run test lab bench clean clean-all

help:
	@echo "make run    set up and run the four notebooks on the local lab (runs/<timestamp>/)"
	@echo "make test   set up and run the test suite (unit, lab, notebooks)"
	@echo "make lab    open JupyterLab on notebooks/"
	@echo "make bench  run the benchmarks under benchmarks/ and record their results"
	@echo "make clean  stop the lab and remove runs/ and caches (keeps .venv and the built libfabric)"

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python >= 3.11 is needed: set PYTHON=python3.11")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# The kit with the lab extra, then NIXL 0.9.0 without its declared torch (see workshop_lib/pins/nixl.txt).
$(VENV)/.stamp-lab: $(BIN)/python $(PINS)
	$(BIN)/pip install -q -e ".[lab]"
	$(BIN)/pip install -q --no-deps -r workshop_lib/pins/nixl.txt
	@touch $@

$(VENV)/.stamp-test: $(VENV)/.stamp-lab
	$(BIN)/pip install -q -e ".[lab,test]"
	@touch $@

venv: $(VENV)/.stamp-lab
venv-test: $(VENV)/.stamp-test

# System packages, the libcuda stub and libfabric for the local lab; cached under .lab/, so it runs once.
setup: venv
	$(BIN)/workshop lab setup

run: setup
	$(BIN)/workshop run --target local

test: venv-test setup
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lab: setup
	$(BIN)/jupyter lab notebooks/

bench: venv-test setup
	$(BIN)/python -m benchmarks

clean:
	-$(BIN)/workshop lab down 2>/dev/null
	rm -rf runs .pytest_cache .ruff_cache .hypothesis
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

clean-all: clean
	rm -rf $(VENV) .lab
