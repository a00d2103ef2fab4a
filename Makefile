# Two commands do all the set-up on a fresh machine with Python 3.11 (both safe to rerun):
#   make paper   set up .venv, then run the main job on the embedded synthetic benchmark
#   make test    set up .venv, then run the test suite
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell sha256sum pyproject.toml | cut -c1-12)
SEEDS ?= 0 1 2
DATA := data/synthetic
RUNS := results/runs

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

# The main job: the synthetic benchmark, UrbanMoE and the two reference predictors over seeds
# on synthetic SH, and a summary beside the noise ceiling.
paper: setup
	$(BIN)/urbanmoe synth --out $(DATA)
	for seed in $(SEEDS); do for model in urbanmoe mean ridge; do \
	  $(BIN)/urbanmoe train --dataset $(DATA)/SH --seed $$seed --set model.name=$$model \
	    --out $(RUNS)/SH/$$model/seed$$seed || exit 1; done; done
	$(BIN)/urbanmoe aggregate $(RUNS) --out results/summary.csv

clean-venv:
	rm -rf $(VENV)
