# Two commands do all the set-up on a fresh machine with Python 3.11 (both safe to rerun):
#   make paper   set up .venv, then run the main job on the embedded synthetic benchmark
#   make test    set up .venv, then run the test suite
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell sha256sum pyproject.toml | cut -c1-12)

.PHONY: setup test paper resume pull lint clean-venv image image-base image-sif image-workflow cluster cluster-stop

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -e '.[dev]'
	rm -f $(VENV)/.installed-* && touch $(STAMP)

setup: $(STAMP)

test: setup
	$(BIN)/python -m pytest

lint: setup
	$(BIN)/ruff check .
	$(BIN)/lint-imports

# The main job: the whole workflow on the embedded default (Snakemake, 2 cores by default).
CORES ?= 2
paper: setup
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/snakemake --cores $(CORES)

# After Snakemake was killed: stop the jobs it left, unlock, rerun what was cut short.
resume: setup
	PATH="$(CURDIR)/$(BIN):$$PATH" scripts/resume.sh --cores $(CORES)

# A fresh clone's data, one line each: the toolkit cities (network), and the DVC products where
# a dvc.lock records them; exit 0 offline (scripts/pull.py).
pull: setup
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python scripts/pull.py

# The container (docker or podman): the image, tagged as workflow.container names it.
#   make image-base    a local stand-in for the base image where no registry is reachable
#   make image IMAGE_BASE=localhost/python-bookworm:3.11 [IMAGE_HOST_PIP=1]
#   make image-sif     the image as an apptainer .sif (needs apptainer)
#   make image-workflow   the tiny configuration end to end inside the image (into .cache/)
image:
	scripts/image.sh build

image-base:
	scripts/image-base.sh

image-sif:
	scripts/image.sh sif urbanmoe.sif

image-workflow:
	scripts/image-workflow.sh .cache/image-workflow

# A one-node SLURM cluster on this machine (root; Debian's slurm-wlm, slurmdbd, munge, mariadb).
cluster:
	scripts/slurm-local.sh start

cluster-stop:
	scripts/slurm-local.sh stop

clean-venv:
	rm -rf $(VENV)
