# The two commands of the README's quick start:
#   make reproduce   runs the DVC pipeline (profile from params.yaml, `quick` by default),
#                    two train stages at a time (ppdnn.reproduce; plain `dvc repro` is the same, serially)
#   make test        runs the whole test suite (unit tests, notebooks, smoke pipeline)
# Both create .venv/ on first use; a second call skips finished work (make + DVC caching).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# DVC stages call `python`, `papermill`: they must resolve to the virtual environment's.
export PATH := $(abspath $(BIN)):$(PATH)
# A crash in a native library prints every Python thread's stack instead of dying silently.
export PYTHONFAULTHANDLER := 1

.PHONY: reproduce test bench clean-venv lock

# Installs the exact versions of requirements.lock (generated from pyproject.toml's ranges:
# `make lock`), then the package itself without resolving anything again.
$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch first and alone: its CUDA build is large, and pinning it here keeps pip from
	# resolving another version through a dependency.
	$(BIN)/python -m pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $@

# Regenerate the lock file after a change of pyproject.toml's dependencies (needs uv:
# `pip install uv`); commit both files together.
lock:
	uv pip compile pyproject.toml --extra dev --python-version 3.11 --universal -o requirements.lock

reproduce: $(STAMP)
	$(BIN)/python -m ppdnn.reproduce --jobs 2

test: $(STAMP)
	$(BIN)/python -m pytest -q -ra tests notebooks --nbval-lax -p no:cacheprovider

bench: $(STAMP)
	for b in benchmarks/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean-venv:
	rm -rf $(VENV)
