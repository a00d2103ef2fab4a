# Two commands do all the set-up on a fresh machine with Python 3.11 (both safe to rerun):
#   make paper   set up .venv, then run the main job on the embedded synthetic benchmark
#   make test    set up .venv, then run the test suite
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell sha256sum pyproject.toml | cut -c1-12)

.PHONY: setup test paper lint clean-venv

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -e '.[dev]'
	rm -f $(VENV)/.installed-* && touch $(STAMP)

setup: $(STAMP)

test: setup
	$(BIN)/python -m pytest

lint: setup
	$(BIN)/ruff check .

# The main job: the whole workflow on the embedded default (Snakemake, 2 cores by default).
CORES ?= 2
paper: setup
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/snakemake --cores $(CORES)

clean-venv:
	rm -rf $(VENV)
