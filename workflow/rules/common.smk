# Helpers shared by the rules (no lambdas in rules).
import os

DATA = config["data"]["root"]
DATASETS = config["data"]["datasets"]
SEEDS = config["train"]["seeds"]
WF = config["workflow"]
TABLE2_MODELS = WF["table2_models"]


def parent_folder(wildcards, output):
    """The folder holding a rule's first output (e.g. the benchmark root of the cities)."""
    return os.path.dirname(output[0])


def train_resources():
    """Resources of one training job; a gpu only when config asks for GPUs."""
    res = {"mem_mb": WF["train_mem_mb"], "runtime": WF["train_runtime_min"]}
    if WF["gpus"] > 0:
        res["gpu"] = WF["gpus"]
    return res


def table2_runs(wildcards=None):
    """Every run folder behind Table 2."""
    return expand(
        "results/runs/{dataset}/{model}/seed{seed}",
        dataset=DATASETS,
        model=TABLE2_MODELS,
        seed=SEEDS,
    )


def training_settings(wildcards):
    """The configuration a training run depends on (a change reruns it)."""
    return {key: config[key] for key in ("features", "split", "model", "train")}


REPO = os.path.dirname(os.path.dirname(str(workflow.current_basedir)))
NOTEBOOKS = os.path.join(REPO, "notebooks")
PUBLISHED = os.path.join(REPO, "paper")


def yaml_list(values):
    """A list as a YAML flow sequence, for papermill's -y parameters."""
    return "[" + ", ".join(str(v) for v in values) + "]"


PAPER_ARTIFACTS = expand("paper_figures/table2.{ext}", ext=["csv", "md", "tex"]) + expand(
    "paper_figures/published_vs_reproduced.{ext}", ext=["md", "tex"]
)


def artifact_flags(wildcards, input):
    """--artifact FILE for each artifact of the provenance rule."""
    return " ".join(f"--artifact {a}" for a in input.artifacts)
