# The project's image: what `snakemake --use-singularity` (apptainer) runs every rule in.
# Build: `make image` (docker or podman; the tag is the one workflow.container names).
# BASE_IMAGE: any Debian-based image whose `python`/`pip` are Python 3.11 and write where
# `pip install` may (a registry's python:3.11-slim, or the local stand-in that
# scripts/image-base.sh makes on a machine without a registry).
ARG BASE_IMAGE=python:3.11.7-slim-bookworm
FROM ${BASE_IMAGE}

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MPLBACKEND=Agg

RUN apt-get update \
    && apt-get install -y --no-install-recommends git make \
    && rm -rf /var/lib/apt/lists/*

RUN useradd --create-home --uid 1000 urbanmoe
WORKDIR /opt/urbanmoe

# The pinned dependencies first, from pyproject.toml alone (a stub package and README), so that
# a change of the sources or the README reuses this layer (several GB: torch) and only the
# package itself is reinstalled.
COPY pyproject.toml ./
RUN mkdir -p src/urbanmoe && touch src/urbanmoe/__init__.py README.md \
    && pip install --upgrade pip && pip install '.[dev]' && pip uninstall -y urbanmoe \
    && rm -rf src build README.md
COPY README.md ./
COPY src ./src
RUN pip install --no-deps . && rm -rf build && urbanmoe --help >/dev/null

USER urbanmoe
WORKDIR /work
CMD ["urbanmoe", "--help"]
