# Two commands set everything up on a fresh machine: `make lecture` and `make test`.
# TORCH_SPEC picks the PyTorch build: the default is the local CPU wheel; `make TORCH_SPEC=torch lecture`
# takes whatever the package index serves (a multi-GB CUDA build on Linux).
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin
STAMP := $(VENV)/.torchgd-installed

.PHONY: lecture test lint bench tb clean

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[dev]"
	touch $@

lecture: $(STAMP)
	$(BIN)/torchgd lecture

# one worker per core (pytest-xdist), each test module on one worker: 4m26s -> 2m44s on 2 cores.
# Bytecode is cached (in __pycache__, ignored by git) even where the environment sets
# PYTHONDONTWRITEBYTECODE: else every process the tests start compiles torchgd again, and every
# worker the tests and hypothesis (measured from a fresh clone on 2 cores: 186 s -> 164 s).
test: $(STAMP)
	PYTHONDONTWRITEBYTECODE= $(BIN)/python -m pytest -q -n auto --dist loadscope

lint: $(STAMP)
	$(BIN)/ruff check torchgd tests scripts
	$(BIN)/ruff format --check torchgd tests scripts

bench: $(STAMP)
	$(BIN)/torchgd bench

tb: $(STAMP)
	$(BIN)/torchgd tb runs

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache .hypothesis
