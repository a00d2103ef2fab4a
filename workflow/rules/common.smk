# Input functions only: each asks urbanmoe.workflow (importable, unit-tested) with the config.
# Shell commands take every value through Snakemake's q modifier ({input:q}); a helper returns
# a list where a value stands for several arguments.
import os
import re

from urbanmoe import workflow as wf

DATA = config["data"]["root"]
REAL = config["data"]["real_root"]
DATASETS = config["data"]["datasets"]
SEEDS = config["train"]["seeds"]
WF = config["workflow"]
EXP = config["experiments"]
URBANCLIP = config["data"]["urbanclip"]
URBANCLIP_NAMES = "|".join(re.escape(name) for name in URBANCLIP) or "(?!x)x"
REPO = os.path.dirname(os.path.dirname(str(workflow.current_basedir)))
NOTEBOOKS = os.path.join(REPO, "notebooks")
PUBLISHED = os.path.join(REPO, "paper")
EXPERIMENTS = wf.paper_experiments()
SPATIAL_EXPERIMENTS = wf.spatial_experiments(config)
ALL_ARTIFACTS = wf.all_artifacts()
SPATIAL_ARTIFACTS = expand(
    "paper_figures/spatial/spatial_context.{ext}", ext=["csv", "md", "tex"]
) + expand("paper_figures/spatial/spatial_context_tasks.{ext}", ext=["png", "pdf"])
TRANSFER_ARTIFACTS = expand(
    "paper_figures/spatial/transfer.{ext}", ext=["csv", "md", "tex"] if WF["transfer_pairs"] else []
)


def dataset_dir(wildcards):
    return wf.dataset_dir(config, wildcards.dataset)


def urbanclip_source(wildcards):
    return URBANCLIP[wildcards.city]


def all_dataset_dirs(wildcards=None):
    return wf.all_dataset_dirs(config)


def table2_runs(wildcards=None):
    return wf.table2_runs(config)


def ablation_runs(wildcards=None):
    return wf.ablation_runs(config)


def default_model_runs(wildcards):
    return wf.default_model_runs(config, wildcards.dataset, wildcards.split)


def table4_baseline_runs(wildcards=None):
    return wf.table2_sourced_runs(config, "table4")


def experiment_runs(wildcards):
    return wf.experiment_runs(config, wildcards.experiment)


def spatial_runs(wildcards=None):
    return wf.spatial_runs(config)


def transfer_runs(wildcards=None):
    return wf.transfer_runs(config)


def transfer_inputs(wildcards):
    return wf.transfer_inputs(config, wildcards.pair)


def transfer_parts(wildcards):
    return wf.transfer_parts(config, wildcards.pair)


def training_settings(wildcards):
    return wf.training_settings(config, wildcards.variant)


def train_resources():
    res = {"mem_mb": WF["train_mem_mb"], "runtime": WF["train_runtime_min"] * len(SEEDS)}
    return {**res, "gpu": WF["gpus"]} if WF["gpus"] > 0 else res


def seed_pattern(wildcards):
    w = wildcards
    return f"results/{w.collection}/{w.dataset}/{w.split}/{w.variant}/seed{{seed}}"


def transfer_pattern(wildcards):
    return f"results/transfer/{wildcards.pair}/{wildcards.variant}/seed{{seed}}"


def features_override(wildcards, input):
    return f"features.cache_dir={wf.yaml_scalar(input.features)}"


def artifact_flags(wildcards, input):
    return [arg for a in input.artifacts for arg in ("--artifact", a)]


def published_folder(wildcards, input):
    return os.path.dirname(input.published[0])


def parent_folder_of_input(wildcards, input):
    return os.path.dirname(input[0])


def parent_folder(wildcards, output):
    return os.path.dirname(output[0])


def output_stem(wildcards, output):
    return os.path.splitext(output[0])[0]


def data_note(wildcards=None):
    return wf.data_note(config)


def reported(notebook):
    """A notebook's outputs, those the report shows flagged with their paper item's caption."""
    shown = {path: (item, section) for path, item, section in wf.reported_artifacts(notebook)}
    out = []
    for path in wf.artifacts(notebook):
        item, section = shown.get(path, (None, None))
        caption = f"../report/{item}.rst"
        out.append(path if item is None else report(path, caption=caption, category=section))
    return out
