# The project's image: what `snakemake --use-singularity` (apptainer) runs every rule in.
# Build: docker build -t urbanmoe:0.1.0 .   (the workflow's container: directive names this tag)
FROM python:3.11.7-slim-bookworm

ENV PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MPLBACKEND=Agg

RUN apt-get update \
    && apt-get install -y --no-install-recommends git make \
    && rm -rf /var/lib/apt/lists/*

RUN useradd --create-home --uid 1000 urbanmoe
WORKDIR /opt/urbanmoe

# Dependencies first (cached layer), then the package itself.
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install --upgrade pip && pip install '.[dev]'

USER urbanmoe
WORKDIR /work
CMD ["urbanmoe", "--help"]
