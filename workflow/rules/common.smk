# Helpers shared by the rules (no lambdas in rules).
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
