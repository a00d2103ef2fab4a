"""What the Snakemake workflow asks of the configuration and the paper items, as plain Python.

``workflow/rules/common.smk`` makes one :class:`Plan` of the workflow's ``config`` (the
validated ``config/config.yaml``); the rules name its lists and its input and params functions,
so the logic is importable and unit-tested (``tests/test_workflow_module.py``). Paths are
relative to the working directory of the workflow. Which runs each paper item needs comes from
``paper_items.py`` and ``evaluation/experiments.py``.
"""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Iterable
from typing import Any

from urbanmoe.evaluation import hafusion_runs
from urbanmoe.evaluation.experiments import ablation_variants, figure3_variants, item_variants
from urbanmoe.notebook_params import (  # noqa: F401  (the rules and tests name them here)
    ablation_grids,
    bootstrap_params,
    data_note,
    verdict_params,
    yaml_list,
    yaml_scalar,
)
from urbanmoe.paper_items import ITEMS, experiments, outputs_of, rows_from
from urbanmoe.training.registry import MODELS, URBANMOE_FAMILY

Config = dict[str, Any]
FIGURES = "paper_figures"
#: The MLflow experiments of the paper items (for the track rule's wildcard).
paper_experiments = experiments
#: Config sections whose change reruns a training job.
TRAINING_SECTIONS = ("features", "split", "model", "train", "spatial")
#: A Table 2 run folder.
TABLE2_RUN = "results/runs/{dataset}/{split}/{model}/seed{seed}"


def _runs(pattern: str, **values: Iterable[Any]) -> list[str]:
    """Every combination of ``values`` filled into ``pattern`` (Snakemake's ``expand``)."""
    keys = list(values)
    return [pattern.format(**dict(zip(keys, combo, strict=True)))
            for combo in itertools.product(*(list(values[k]) for k in keys))]


def dataset_dir(cfg: Config, dataset: str) -> str:
    """Where a dataset lives: imported real cities under data.real_root, the rest under root."""
    data = cfg["data"]
    return f"{data['real_root'] if dataset in data['urbanclip'] else data['root']}/{dataset}"


def all_dataset_dirs(cfg: Config) -> list[str]:
    """The folder of every dataset the workflow runs on."""
    return [dataset_dir(cfg, d) for d in cfg["data"]["datasets"]]


def urbanclip_names(cfg: Config) -> str:
    """A regular expression that matches exactly the cities of data.urbanclip (none: nothing)."""
    return "|".join(re.escape(name) for name in cfg["data"]["urbanclip"]) or "(?!x)x"


def table2_runs(cfg: Config) -> list[str]:
    """Every run folder behind Table 2."""
    return _runs(TABLE2_RUN,
                 dataset=cfg["data"]["datasets"], split=cfg["workflow"]["splits"],
                 model=cfg["workflow"]["table2_models"], seed=cfg["train"]["seeds"])


def default_model_runs(cfg: Config, dataset: str, split: str) -> list[str]:
    """The run folders of model.name, every seed, on one dataset and split (Table 2's)."""
    return _runs(TABLE2_RUN, dataset=[dataset],
                 split=[split], model=[cfg["model"]["name"]], seed=cfg["train"]["seeds"])


def prediction_maps(cfg: Config) -> list[str]:
    """The folders of the default model's maps, per dataset and split."""
    return _runs(FIGURES + "/maps/{dataset}/{split}", dataset=cfg["data"]["datasets"],
                 split=cfg["workflow"]["splits"])


def training_settings(cfg: Config, variant: str) -> dict[str, Any]:
    """The configuration a training run depends on (a change reruns it); baselines also
    depend on baselines.*"""
    out = {key: cfg[key] for key in TRAINING_SECTIONS}
    # UrbanMoE and its variants depend on model.* only: a change of baselines.* does not
    # rerun them
    if variant.split("@")[0] not in URBANMOE_FAMILY:  # where the cache lives changes nothing
        out["baselines"] = {k: v for k, v in cfg["baselines"].items() if k != "cache_dir"}
    return out


#: Training jobs' priorities (Snakemake starts the highest ready job first): the longest first.
#: On the embedded default a representation baseline's job (image SSL, UrbanCLIP, ResNet-18)
#: takes 2-4x an UrbanMoE job and a closed form a few seconds (benchmarks/README.md).
FAMILY_PRIORITY = {"representation": 30, "neural": 20, "auto": 20, "closed_form": 10}


def train_priority(cfg: Config, collection: str, variant: str) -> int:
    """A training job's priority: by its model's family; the run Figures 4-5 read (whose
    t-SNE notebook then overlaps the other jobs) goes first of its family."""
    spec = MODELS.get(variant.split("@")[0])
    base = FAMILY_PRIORITY.get(spec.family, 0) if spec is not None else 0
    return base + 5 if collection == "ablations" and variant == "urbanmoe" else base


def shared_representation_runs(cfg: Config, collection: str, dataset: str, split: str,
                               variant: str) -> list[str]:
    """The runs that learn the representation this Table 2 run reuses, as inputs: of the models
    sharing one learner (UrbanCLIP (ST) and (MT)), the first in ``workflow.table2_models``
    learns it and caches it (``baselines.cache_dir``); the others wait and read it. Empty for
    every other run, and when the cache is off."""
    spec = MODELS.get(variant)
    models = cfg["workflow"]["table2_models"]
    if (collection != "runs" or not cfg["baselines"]["cache_dir"] or spec is None
            or spec.family != "representation"):
        return []
    first = next(m for m in models if m in MODELS and MODELS[m].target == spec.target)
    if first == variant:
        return []
    return _runs(TABLE2_RUN, dataset=[dataset],
                 split=[split], model=[first], seed=cfg["train"]["seeds"])


def train_resources(cfg: Config) -> dict[str, int]:
    """A training job's resources: memory, a runtime for all its seeds, and a GPU when
    workflow.gpus asks for one (so that parallel jobs never share it)."""
    flow = cfg["workflow"]
    res = {"mem_mb": flow["train_mem_mb"],
           "runtime": flow["train_runtime_min"] * len(cfg["train"]["seeds"])}
    return {**res, "gpu": flow["gpus"]} if flow["gpus"] > 0 else res


def _ablations(cfg: Config, variants: Iterable[str]) -> list[str]:
    exp = cfg["experiments"]
    return _runs("results/ablations/{dataset}/{split}/{variant}/seed{seed}",
                 dataset=[exp["dataset"]], split=[exp["split"]],
                 variant=list(dict.fromkeys(variants)), seed=cfg["train"]["seeds"])


def ablation_runs(cfg: Config) -> list[str]:
    """Every run folder behind Tables 3-4 and Figure 3 (and Figures 4-5: the full model)."""
    return _ablations(cfg, ablation_variants(cfg))


def figure_run(cfg: Config) -> str:
    """The full model's run that Figures 4-5 and the sparsity table read."""
    exp = cfg["experiments"]
    return f"results/ablations/{exp['dataset']}/{exp['split']}/urbanmoe/seed{exp['figure_seed']}"


def table2_sourced_runs(cfg: Config, item: str = "table4") -> list[str]:
    """The Table 2 runs the rows of ``item`` read (Table 4's RemoteCLIP and UrbanCLIP (ST)),
    on the ablations' dataset and split, when Table 2 runs them."""
    exp, wf = cfg["experiments"], cfg["workflow"]
    if exp["dataset"] not in cfg["data"]["datasets"] or exp["split"] not in wf["splits"]:
        return []
    models = [r.model for r in rows_from(item, "table2") if r.model in wf["table2_models"]]
    return _runs(TABLE2_RUN, dataset=[exp["dataset"]],
                 split=[exp["split"]], model=models, seed=cfg["train"]["seeds"])


def spatial_runs(cfg: Config) -> list[str]:
    """Every run folder of the spatial-context comparison (not in the paper)."""
    wf = cfg["workflow"]
    return _runs("results/spatial/{dataset}/{split}/{variant}/seed{seed}",
                 dataset=cfg["data"]["datasets"], split=wf["spatial_splits"],
                 variant=wf["spatial_variants"], seed=cfg["train"]["seeds"])


def transfer_runs(cfg: Config) -> list[str]:
    """Every cross-city transfer run folder."""
    wf = cfg["workflow"]
    return _runs("results/transfer/{pair}/{variant}/seed{seed}", pair=wf["transfer_pairs"],
                 variant=wf["transfer_models"], seed=cfg["train"]["seeds"])


def experiment_runs(cfg: Config, experiment: str) -> list[str]:
    """The run folders one MLflow experiment mirrors (a paper item's, or the spatial ones)."""
    if experiment == "table2":
        return table2_runs(cfg)
    if experiment == "spatial_context":
        return spatial_runs(cfg)
    if experiment == "transfer":
        return transfer_runs(cfg)
    if experiment == "figures4_5":
        return [figure_run(cfg)]
    if experiment == "hafusion":
        return hafusion_runs.runs(cfg)
    items = [i for i in ITEMS.values() if i.experiment == experiment]
    if not items:
        raise KeyError(f"no paper item or run collection mirrors into {experiment!r}")
    labels = [v for i in items for v in item_variants(i.name, cfg).values()]
    if any(i.curves for i in items):
        labels += [v for curve in figure3_variants(cfg).values() for v in curve.values()]
    return _ablations(cfg, labels)


def spatial_experiments(cfg: Config) -> list[str]:
    """The MLflow experiments of the spatial-context target."""
    return ["spatial_context"] + (["transfer"] if cfg["workflow"]["transfer_pairs"] else [])


def spatial_artifacts(cfg: Config) -> list[str]:
    """The files of the spatial-context target: the comparison's tables and figure, and the
    transfer tables when workflow.transfer_pairs names any."""
    files = [f"spatial_context.{ext}" for ext in ("csv", "md", "tex")]
    files += [f"spatial_context_tasks.{ext}" for ext in ("png", "pdf")]
    if cfg["workflow"]["transfer_pairs"]:
        files += [f"transfer.{ext}" for ext in ("csv", "md", "tex")]
    return [f"{FIGURES}/spatial/{f}" for f in files]


def transfer_side(cfg: Config, side: str) -> tuple[str, str, str]:
    """``CITY[.PART]`` of a transfer pair -> (dataset folder, city, part)."""
    name, _, part = side.partition(".")
    return dataset_dir(cfg, name), name, part or "all"


def transfer_inputs(cfg: Config, pair: str) -> dict[str, str]:
    """The source and target dataset folders of a transfer pair ``SOURCE_to_TARGET``."""
    source, target = pair.split("_to_")
    return {"source": transfer_side(cfg, source)[0], "target": transfer_side(cfg, target)[0]}


def transfer_parts(cfg: Config, pair: str) -> list[str]:
    """--source-part / --target-part of a transfer pair, as arguments."""
    source, target = pair.split("_to_")
    return ["--source-part", transfer_side(cfg, source)[2],
            "--target-part", transfer_side(cfg, target)[2]]


def artifacts(notebook: str) -> list[str]:
    """The files one notebook writes into paper_figures/ (its paper items' outputs)."""
    return [f"{FIGURES}/{name}" for name in outputs_of(notebook)]


def all_artifacts() -> list[str]:
    """Every paper table and figure file, the claims included."""
    files = [f"{FIGURES}/{f}" for item in ITEMS.values() if item.target == "paper"
             for f in item.outputs]
    files += artifacts("ablations.ipynb")
    return list(dict.fromkeys(files))


#: Files the Snakemake report shows (tables as CSV, figures as PNG, the claims as Markdown).
REPORTED = (".csv", ".png", ".md")
CAPTIONS = "workflow/report"  # one caption per paper item, from caption_rst


def reported_artifacts(notebook: str | None) -> list[tuple[str, str, str]]:
    """(path, item name, category) of each file of ``notebook``'s items that the report shows;
    the category is the item's place in the paper."""
    return [(f"{FIGURES}/{f}", item.name, item.section) for item in ITEMS.values()
            if item.notebook == notebook for f in item.outputs if f.endswith(REPORTED)]


def report_entries(notebook: str) -> list[tuple[str, str | None, str | None]]:
    """(path, caption, category) of each file ``notebook`` writes: the caption (relative to
    ``workflow/rules``) and category of those the report shows, ``None`` for the others."""
    shown = {path: (item, section) for path, item, section in reported_artifacts(notebook)}
    entries: list[tuple[str, str | None, str | None]] = []
    for path in artifacts(notebook):
        item, section = shown.get(path, (None, None))
        entries.append((path, None, None) if item is None
                       else (path, f"../{os.path.basename(CAPTIONS)}/{item}.rst", section))
    return entries


def caption_rst(name: str) -> str:
    """The report caption of a paper item (reStructuredText), from its declaration."""
    item = ITEMS[name]
    made = f"drawn by ``notebooks/{item.notebook}``" if item.notebook else "written by the CLI"
    whose = "the paper's" if item.target == "paper" else "the published"
    versus = f" It is compared with {whose} ``paper/{item.published}``." if item.published else ""
    rows = (" Rows: " + ", ".join(f"{r.label} (``{r.key}``)" for r in item.rows) + "."
            if item.rows else "")
    where = f"{item.section} of the paper" if item.target == "paper" else item.section
    return f"{item.title}, {where}; {made}.{versus}{rows}\n"


def write_captions(folder: str = CAPTIONS) -> list[str]:
    """Write every paper item's caption into ``folder`` (the report's ``.rst`` files)."""
    from pathlib import Path

    from urbanmoe.io import write_text

    written = []
    for name in ITEMS:
        write_text(Path(folder) / f"{name}.rst", caption_rst(name), "caption")
        written.append(f"{folder}/{name}.rst")
    return written


class Plan(hafusion_runs.HafusionPlan):
    """What the rules ask of one configuration. ``common.smk`` makes one
    (``plan = Plan(config, repo)``); the rules name its lists (attributes), its input functions
    (which take Snakemake's ``wildcards``) and its params functions (``wildcards`` and the job's
    ``input`` or ``output``, named as Snakemake passes them). Each asks the module function of
    the same name."""

    def __init__(self, cfg: Config, repo: str = ".") -> None:
        data = cfg["data"]
        self.cfg, self.repo = cfg, repo
        self.datasets: list[str] = data["datasets"]
        self.seeds: list[int] = cfg["train"]["seeds"]
        self.seed_args = " ".join(str(s) for s in self.seeds)  # --seed's arguments
        self.synth_dirs = [f"{data['root']}/{city}" for city in cfg["synth"]["cities"]]
        self.real_dir = data["real_root"] + "/{city}"  # an imported city's folder
        self.urbanclip_names = urbanclip_names(cfg)
        self.dataset_dirs = all_dataset_dirs(cfg)
        self.table2_runs = table2_runs(cfg)
        self.ablation_runs = ablation_runs(cfg)
        self.table4_baseline_runs = table2_sourced_runs(cfg, "table4")
        self.spatial_runs = spatial_runs(cfg)
        self.transfer_runs = transfer_runs(cfg)
        self.figure_run = figure_run(cfg)
        self.prediction_maps = prediction_maps(cfg)
        self.experiments = paper_experiments()
        self.hafusion_experiments = paper_experiments("hafusion")
        self.spatial_experiments = spatial_experiments(cfg)
        self.paper_artifacts = all_artifacts()
        self.spatial_artifacts = spatial_artifacts(cfg)
        self.train_resources = train_resources(cfg)
        self.data_note = data_note(cfg)
        # papermill -y parameters
        self.datasets_yaml = f"datasets: {yaml_list(self.datasets)}"
        self.dataset_dirs_yaml = f"dataset_dirs: {yaml_list(self.dataset_dirs)}"
        self.ablation_grids = ablation_grids(cfg)
        self.verdict_params = verdict_params(cfg)
        self.bootstrap_params = bootstrap_params(cfg)
        self.hafusion_init()

    def notebook(self, name: str) -> str:
        """A notebook of the repository's notebooks/."""
        return os.path.join(self.repo, "notebooks", name)

    def published(self, name: str) -> str:
        """A table of the paper, in the repository's paper/."""
        return os.path.join(self.repo, "paper", name)

    def seed_folders(self, prefix: str) -> list[str]:
        """A training job's outputs: one folder per seed under ``prefix`` (a wildcard pattern)."""
        return [f"{prefix}/seed{seed}" for seed in self.seeds]

    # input functions
    def dataset_dir(self, wildcards: Any) -> str:
        return dataset_dir(self.cfg, wildcards.dataset)

    def urbanclip_source(self, wildcards: Any) -> str:
        return self.cfg["data"]["urbanclip"][wildcards.city]

    def default_model_runs(self, wildcards: Any) -> list[str]:
        return default_model_runs(self.cfg, wildcards.dataset, wildcards.split)

    def experiment_runs(self, wildcards: Any) -> list[str]:
        return experiment_runs(self.cfg, wildcards.experiment)

    def transfer_inputs(self, wildcards: Any) -> dict[str, str]:
        return transfer_inputs(self.cfg, wildcards.pair)

    def shared_representation_runs(self, wildcards: Any) -> list[str]:
        w = wildcards
        return shared_representation_runs(self.cfg, w.collection, w.dataset, w.split, w.variant)

    # params functions
    def training_settings(self, wildcards: Any) -> dict[str, Any]:
        return training_settings(self.cfg, wildcards.variant)

    def train_priority(self, wildcards: Any) -> int:
        return train_priority(self.cfg, wildcards.collection, wildcards.variant)

    def transfer_parts(self, wildcards: Any) -> list[str]:
        return transfer_parts(self.cfg, wildcards.pair)

    # --out of a training job, its seed folders' pattern. These read the wildcards, not the
    # output: Snakemake records (and compares) only params that read neither input nor output.
    @staticmethod
    def seed_pattern(wildcards: Any) -> str:
        w = wildcards
        return f"results/{w.collection}/{w.dataset}/{w.split}/{w.variant}/seed{{seed}}"

    @staticmethod
    def transfer_pattern(wildcards: Any) -> str:
        return f"results/transfer/{wildcards.pair}/{wildcards.variant}/seed{{seed}}"

    @staticmethod
    def features_override(wildcards: Any, input: Any) -> str:
        """The --set that points a run at the job's features folder."""
        return f"features.cache_dir={yaml_scalar(input.features)}"

    @staticmethod
    def artifact_flags(wildcards: Any, input: Any) -> list[str]:
        """``--artifact FILE`` for each of the job's artifacts, as arguments."""
        return [arg for path in input.artifacts for arg in ("--artifact", path)]

    @staticmethod
    def published_folder(wildcards: Any, input: Any) -> str:
        """The folder of the job's published tables."""
        return os.path.dirname(input.published[0])
