# Helpers shared by the rules (no lambdas in rules).
import os
import re

DATA = config["data"]["root"]
DATASETS = config["data"]["datasets"]
SEEDS = config["train"]["seeds"]
WF = config["workflow"]
TABLE2_MODELS = WF["table2_models"]
SPLITS = WF["splits"]
REAL = config["data"]["real_root"]
URBANCLIP = config["data"]["urbanclip"]
URBANCLIP_NAMES = "|".join(re.escape(name) for name in URBANCLIP) or "(?!x)x"


def dataset_dir(wildcards):
    """Where a dataset lives: imported real cities under data.real_root, the rest under root."""
    root = REAL if wildcards.dataset in URBANCLIP else DATA
    return f"{root}/{wildcards.dataset}"


def urbanclip_source(wildcards):
    """The UrbanCLIP-toolkit folder a real city is imported from (data.urbanclip)."""
    return URBANCLIP[wildcards.city]


def parent_folder(wildcards, output):
    """The folder holding a rule's first output (e.g. the benchmark root of the cities)."""
    return os.path.dirname(output[0])


def output_stem(wildcards, output):
    """A rule's first output without its extension (for verbs that take an output stem)."""
    return os.path.splitext(output[0])[0]


def train_resources():
    """Resources of one training job; a gpu only when config asks for GPUs."""
    res = {"mem_mb": WF["train_mem_mb"], "runtime": WF["train_runtime_min"]}
    if WF["gpus"] > 0:
        res["gpu"] = WF["gpus"]
    return res


def table2_runs(wildcards=None):
    """Every run folder behind Table 2."""
    return expand(
        "results/runs/{dataset}/{split}/{model}/seed{seed}",
        dataset=DATASETS,
        split=SPLITS,
        model=TABLE2_MODELS,
        seed=SEEDS,
    )


URBANMOE_MODELS = ("urbanmoe", "urbanmoe_st", "urbanmoe_dense")


def training_settings(wildcards):
    """The configuration a training run depends on (a change reruns it); baselines also
    depend on baselines.*"""
    keys = ["features", "split", "model", "train"]
    if wildcards.model not in URBANMOE_MODELS:
        keys.append("baselines")
    return {key: config[key] for key in keys}


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


def data_note(wildcards=None):
    """What the Table 2 runs ran on, said plainly (none of it is the data of the paper)."""
    synth = [d for d in DATASETS if d in config["synth"]["cities"] and d not in URBANCLIP]
    real = [d for d in DATASETS if d in URBANCLIP]
    other = [d for d in DATASETS if d not in synth and d not in real]
    parts = []
    if synth:
        parts.append(f"the embedded synthetic benchmark ({', '.join(synth)})")
    if real:
        parts.append(f"UrbanCLIP-toolkit real cities ({', '.join(real)})")
    if other:
        parts.append(f"user datasets ({', '.join(other)})")
    return "; ".join(parts) + ", not the data of the paper"
