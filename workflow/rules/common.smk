# Helpers shared by the rules (no lambdas in rules).
import os

DATA = config["data"]["root"]
DATASETS = config["data"]["datasets"]
SEEDS = config["train"]["seeds"]
MAIN_MODELS = ["urbanmoe", "ridge", "mean"]


def run_dirs(wildcards=None):
    """Every run folder of the main job."""
    return expand(
        "results/runs/{dataset}/{model}/seed{seed}",
        dataset=DATASETS,
        model=MAIN_MODELS,
        seed=SEEDS,
    )


def parent_folder(wildcards, output):
    """The folder holding a rule's first output (e.g. the benchmark root of the cities)."""
    return os.path.dirname(output[0])
