# Helpers shared by the rules (no lambdas in rules). Every value a rule puts into its shell
# command goes in through Snakemake's :q modifier ({input:q}, {params.note:q}, ...): dataset
# names, variants and paths may hold spaces or quotes. A helper returns a list where a value
# stands for several arguments (each element is quoted on its own).
import json
import os
import re

from urbanmoe.evaluation.experiments import (
    ablation_variants,
    figure3_variants,
    table3_variants,
    table4_variants,
)

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


def all_dataset_dirs(wildcards=None):
    """The folder of every dataset the workflow runs on."""
    return [f"{REAL if d in URBANCLIP else DATA}/{d}" for d in DATASETS]


def published_folder(wildcards, input):
    """The folder of a rule's published-table inputs."""
    return os.path.dirname(input.published[0])


def parent_folder_of_input(wildcards, input):
    """The folder holding a rule's first input."""
    return os.path.dirname(input[0])


def parent_folder(wildcards, output):
    """The folder holding a rule's first output (e.g. the benchmark root of the cities)."""
    return os.path.dirname(output[0])


def output_stem(wildcards, output):
    """A rule's first output without its extension (for verbs that take an output stem)."""
    return os.path.splitext(output[0])[0]


def seed_pattern(wildcards):
    """A run's output folder with {seed} left for the CLI to fill."""
    w = wildcards
    return f"results/{w.collection}/{w.dataset}/{w.split}/{w.variant}/seed{{seed}}"


def train_resources():
    """Resources of one training job; a gpu only when config asks for GPUs."""
    res = {"mem_mb": WF["train_mem_mb"], "runtime": WF["train_runtime_min"] * len(SEEDS)}
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


def default_model_runs(wildcards):
    """The run folders of model.name, every seed, on one dataset and split (Table 2's)."""
    w = wildcards
    return expand(
        "results/runs/{dataset}/{split}/{model}/seed{seed}",
        dataset=w.dataset,
        split=w.split,
        model=config["model"]["name"],
        seed=SEEDS,
    )


def prediction_maps(wildcards=None):
    """The folders of the default model's maps, per dataset and split."""
    return expand("paper_figures/maps/{dataset}/{split}", dataset=DATASETS, split=SPLITS)


URBANMOE_MODELS = ("urbanmoe", "urbanmoe_st", "urbanmoe_dense")


def training_settings(wildcards):
    """The configuration a training run depends on (a change reruns it); baselines also
    depend on baselines.*"""
    keys = ["features", "split", "model", "train", "spatial"]
    if wildcards.variant.split("@")[0] not in URBANMOE_MODELS:
        keys.append("baselines")
    return {key: config[key] for key in keys}


EXP = config["experiments"]


def ablation_runs(wildcards=None):
    """Every run folder behind Tables 3-4 and Figure 3 (and Figures 4-5: the full model)."""
    return expand(
        "results/ablations/{dataset}/{split}/{variant}/seed{seed}",
        dataset=EXP["dataset"],
        split=EXP["split"],
        variant=ablation_variants(config),
        seed=SEEDS,
    )


def ablation_grids(wildcards=None):
    """Figure 3's grids for the ablations notebook (papermill -y)."""
    return f"{{d_r_values: {yaml_list(EXP['d_r'])}, eps_values: {yaml_list(EXP['eps'])}}}"


def figure_run(wildcards=None):
    """The full model's run that Figures 4-5 and the sparsity table read."""
    return (
        f"results/ablations/{EXP['dataset']}/{EXP['split']}/urbanmoe/seed{EXP['figure_seed']}"
    )


def table4_baseline_runs(wildcards=None):
    """Table 4's RemoteCLIP (ST) / UrbanCLIP (ST) rows: their Table 2 runs, when configured."""
    if EXP["dataset"] not in DATASETS or EXP["split"] not in SPLITS:
        return []
    models = [m for m in ("remoteclip_st", "urbanclip_st") if m in TABLE2_MODELS]
    return expand(
        "results/runs/{dataset}/{split}/{model}/seed{seed}",
        dataset=EXP["dataset"],
        split=EXP["split"],
        model=models,
        seed=SEEDS,
    )


def experiment_runs(wildcards):
    """The run folders each MLflow experiment mirrors."""
    e = wildcards.experiment
    if e == "table2":
        return table2_runs()
    if e == "spatial_context":
        return spatial_runs()
    if e == "transfer":
        return transfer_runs()
    if e == "figures4_5":
        return [figure_run()]
    labels = {
        "table3": table3_variants(config).values(),
        "table4": table4_variants().values(),
        "figure3": [v for curve in figure3_variants(config).values() for v in curve.values()],
    }[e]
    return expand(
        "results/ablations/{dataset}/{split}/{variant}/seed{seed}",
        dataset=EXP["dataset"],
        split=EXP["split"],
        variant=list(dict.fromkeys(labels)),
        seed=SEEDS,
    )


EXPERIMENTS = ["table2", "table3", "table4", "figure3", "figures4_5"]


def spatial_runs(wildcards=None):
    """Every run folder of the spatial-context comparison (not in the paper)."""
    return expand(
        "results/spatial/{dataset}/{split}/{variant}/seed{seed}",
        dataset=DATASETS,
        split=WF["spatial_splits"],
        variant=WF["spatial_variants"],
        seed=SEEDS,
    )


def transfer_runs(wildcards=None):
    """Every cross-city transfer run folder."""
    return expand(
        "results/transfer/{pair}/{variant}/seed{seed}",
        pair=WF["transfer_pairs"],
        variant=WF["transfer_models"],
        seed=SEEDS,
    )


def _transfer_side(side):
    name, _, part = side.partition(".")
    root = REAL if name in URBANCLIP else DATA
    return f"{root}/{name}", name, part or "all"


def transfer_inputs(wildcards):
    """The source and target dataset folders (and feature folders) of a transfer pair."""
    source, target = wildcards.pair.split("_to_")
    return {"source": _transfer_side(source)[0], "target": _transfer_side(target)[0]}


def transfer_parts(wildcards):
    """--source-part / --target-part of a transfer pair, as arguments ({params.parts:q})."""
    source, target = wildcards.pair.split("_to_")
    return [
        "--source-part", _transfer_side(source)[2], "--target-part", _transfer_side(target)[2]
    ]


def transfer_pattern(wildcards):
    """A transfer run's output folder with {seed} left for the CLI to fill."""
    return f"results/transfer/{wildcards.pair}/{wildcards.variant}/seed{{seed}}"


SPATIAL_EXPERIMENTS = ["spatial_context"] + (["transfer"] if WF["transfer_pairs"] else [])
SPATIAL_ARTIFACTS = expand(
    "paper_figures/spatial/spatial_context.{ext}", ext=["csv", "md", "tex"]
) + expand("paper_figures/spatial/spatial_context_tasks.{ext}", ext=["png", "pdf"])
TRANSFER_ARTIFACTS = (
    expand("paper_figures/spatial/transfer.{ext}", ext=["csv", "md", "tex"])
    if WF["transfer_pairs"]
    else []
)


REPO = os.path.dirname(os.path.dirname(str(workflow.current_basedir)))
NOTEBOOKS = os.path.join(REPO, "notebooks")
PUBLISHED = os.path.join(REPO, "paper")


def yaml_scalar(value):
    """A value as YAML reads it back: strings double-quoted (JSON's quoting is valid YAML), so
    that a name holding a space, quote, comma or ``#`` stays one string; numbers as written."""
    return json.dumps(value) if isinstance(value, str) else str(value)


def yaml_list(values):
    """A list as a YAML flow sequence, for papermill's -y parameters."""
    return "[" + ", ".join(yaml_scalar(v) for v in values) + "]"


def features_override(wildcards, input):
    """The ``--set`` value pointing features.cache_dir at a rule's feature folder (its path
    YAML-quoted: the CLI reads --set values as YAML)."""
    return f"features.cache_dir={yaml_scalar(input.features)}"


TABLE_EXT = ["csv", "md", "tex"]
FIGURE_EXT = ["png", "pdf"]
PAPER_ARTIFACTS = expand("paper_figures/table2.{ext}", ext=TABLE_EXT) + expand(
    "paper_figures/published_vs_reproduced.{ext}", ext=["md", "tex"]
)
ABLATION_ARTIFACTS = (
    expand("paper_figures/{t}.{ext}", t=["table3", "table4", "table5"], ext=TABLE_EXT)
    + expand("paper_figures/figure3.{ext}", ext=FIGURE_EXT)
    + expand(
        "paper_figures/published_vs_reproduced_{t}.{ext}",
        t=["table3", "table4"],
        ext=["md", "tex"],
    )
    + ["paper_figures/ablations_summary.csv"]
)
EXPERT_ARTIFACTS = (
    expand("paper_figures/{f}.{ext}", f=["figure4", "figure5"], ext=FIGURE_EXT)
    + ["paper_figures/figure5_weights.csv"]
    + expand("paper_figures/sparsity.{ext}", ext=TABLE_EXT)
)
DATASET_ARTIFACTS = (
    expand("paper_figures/table1.{ext}", ext=TABLE_EXT)
    + expand("paper_figures/figure6.{ext}", ext=FIGURE_EXT)
    + expand("paper_figures/published_vs_reproduced_table1.{ext}", ext=["md", "tex"])
)
ALL_ARTIFACTS = (
    PAPER_ARTIFACTS
    + ABLATION_ARTIFACTS
    + EXPERT_ARTIFACTS
    + DATASET_ARTIFACTS
    + ["paper_figures/claims.md"]
)


def artifact_flags(wildcards, input):
    """--artifact FILE for each artifact of the provenance rule, as arguments
    ({params.artifacts:q})."""
    return [arg for a in input.artifacts for arg in ("--artifact", a)]


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
