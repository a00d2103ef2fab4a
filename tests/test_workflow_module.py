"""urbanmoe.workflow: what the Snakemake input functions return, checked as plain Python on
the tiny configuration (.test/config) and the project's."""

from __future__ import annotations

import inspect
import re
from pathlib import Path
from types import SimpleNamespace as Wildcards

import pytest
import yaml

from urbanmoe import workflow as wf
from urbanmoe.config import load_config
from urbanmoe.paper_items import ITEMS

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture()
def tiny() -> dict:
    return load_config(ROOT / ".test/config/config.yaml")


def test_table2_runs_cover_datasets_splits_models_and_seeds(tiny: dict) -> None:
    runs = wf.table2_runs(tiny)
    w = tiny["workflow"]
    assert len(runs) == len(set(runs)) == (len(tiny["data"]["datasets"]) * len(w["splits"])
                                           * len(w["table2_models"]) * len(tiny["train"]["seeds"]))
    assert "results/runs/DC/spatial_block/ridge/seed1" in runs


def test_each_paper_experiment_mirrors_its_items_runs(tiny: dict) -> None:
    assert wf.paper_experiments() == ["table2", "table3", "table4", "figure3", "figures4_5"]
    ablations = set(wf.ablation_runs(tiny))
    for experiment in ("table3", "table4", "figure3"):
        runs = wf.experiment_runs(tiny, experiment)
        assert runs and set(runs) <= ablations
    # Table 3's allocation of model.* is the full model's run, shared with Table 4's UrbanMoE row
    full = "results/ablations/DC/random/urbanmoe/seed0"
    assert full in wf.experiment_runs(tiny, "table4")
    assert (full in wf.experiment_runs(tiny, "table3")) == (
        (tiny["model"]["n_specific"], tiny["model"]["n_shared"], tiny["model"]["n_dual"])
        == (8, 4, 2))
    assert wf.experiment_runs(tiny, "figures4_5") == [wf.figure_run(tiny)]
    with pytest.raises(KeyError, match="nothing"):
        wf.experiment_runs(tiny, "nothing")


def test_table4_reads_table2_runs_only_when_table2_makes_them(tiny: dict) -> None:
    assert wf.table2_sourced_runs(tiny) == []  # the tiny Table 2 has no RemoteCLIP/UrbanCLIP
    tiny["workflow"]["table2_models"] = ["remoteclip_st", "ridge"]
    assert wf.table2_sourced_runs(tiny) == [
        f"results/runs/DC/random/remoteclip_st/seed{s}" for s in tiny["train"]["seeds"]]


def test_artifacts_come_from_the_items(tiny: dict) -> None:
    every = wf.all_artifacts()
    assert len(every) == len(set(every))
    for item in ITEMS.values():  # the paper target's; a public-data table has its own
        files = {f"paper_figures/{f}" for f in item.outputs}
        assert files <= set(every) if item.target == "paper" else not files & set(every)
    assert "paper_figures/ablations_summary.csv" in wf.artifacts("ablations.ipynb")
    assert set(wf.artifacts("dataset.ipynb")) == {
        f"paper_figures/{f}" for f in (*ITEMS["table1"].outputs, *ITEMS["figure6"].outputs)}


def test_transfer_pairs_and_notes(tiny: dict) -> None:
    assert wf.transfer_inputs(tiny, "DC.west_to_DC.east") == {
        "source": "data/synthetic/DC", "target": "data/synthetic/DC"}
    assert wf.transfer_parts(tiny, "DC.west_to_DC") == [
        "--source-part", "west", "--target-part", "all"]
    assert wf.data_note(tiny) == ("the embedded synthetic benchmark (DC), not the data of the "
                                  "paper")
    assert wf.ablation_grids(tiny) == "{d_r_values: [2, 6], eps_values: [0.0, 0.01]}"
    assert wf.yaml_list(["my city's", 3]) == '["my city\'s", 3]'
    assert "baselines" in wf.training_settings(tiny, "ridge")
    assert "baselines" not in wf.training_settings(tiny, "urbanmoe@model.d_r=4")


def test_report_captions_are_the_paper_items() -> None:
    """workflow/report/<item>.rst is caption_rst(item) for every paper item, and nothing else
    (regenerate: python -c "from urbanmoe.workflow import write_captions; write_captions()")."""
    folder = ROOT / wf.CAPTIONS
    found = {p.stem: p.read_text() for p in folder.glob("*.rst") if p.stem != "workflow"}
    assert found == {name: wf.caption_rst(name) for name in ITEMS}
    shown = wf.reported_artifacts("ablations.ipynb")
    assert ("paper_figures/figure3.png", "figure3", "Appendix C") in shown
    assert all(path.endswith(wf.REPORTED) for path, _, _ in shown)


def test_report_entries_caption_what_the_report_shows() -> None:
    """Every file of the notebook, in order; the shown ones with their item's caption (a path
    from workflow/rules, where common.smk calls report()) and section, the others bare."""
    entries = wf.report_entries("ablations.ipynb")
    assert [path for path, _, _ in entries] == wf.artifacts("ablations.ipynb")
    by_path = {path: (caption, category) for path, caption, category in entries}
    assert by_path["paper_figures/figure3.png"] == ("../report/figure3.rst", "Appendix C")
    assert by_path["paper_figures/figure3.pdf"] == (None, None)
    assert by_path["paper_figures/ablations_summary.csv"] == (None, None)  # no item's file
    shown = [(path, c) for path, c, _ in entries if c is not None]
    assert {path for path, _ in shown} == {p for p, _, _ in wf.reported_artifacts(
        "ablations.ipynb")}
    for path, caption in shown:
        assert path.endswith(wf.REPORTED) and by_path[path][1] is not None
        assert (ROOT / "workflow/rules" / caption).resolve().is_file(), caption


def test_spatial_artifacts_hold_transfer_tables_only_with_pairs(tiny: dict) -> None:
    files = wf.spatial_artifacts(tiny)
    assert len(files) == len(set(files)) == 8
    assert "paper_figures/spatial/spatial_context_tasks.png" in files
    assert "paper_figures/spatial/transfer.tex" in files
    tiny["workflow"]["transfer_pairs"] = []
    assert wf.spatial_artifacts(tiny) == [f for f in files if "/transfer." not in f]
    assert wf.spatial_experiments(tiny) == ["spatial_context"]


def test_urbanclip_names_match_the_cities_whole(tiny: dict) -> None:
    assert not re.fullmatch(wf.urbanclip_names(tiny), "")  # no city: matches nothing
    tiny["data"]["urbanclip"] = {"Xi'an new": "raw/xian", "a.b": "raw/ab"}
    names = wf.urbanclip_names(tiny)
    assert re.fullmatch(names, "Xi'an new") and re.fullmatch(names, "a.b")
    assert not re.fullmatch(names, "axb") and not re.fullmatch(names, "DC")


def test_train_resources_ask_a_gpu_only_when_configured(tiny: dict) -> None:
    assert wf.train_resources(tiny) == {"mem_mb": 1500, "runtime": 30 * 2}
    tiny["workflow"]["gpus"] = 1
    assert wf.train_resources(tiny)["gpu"] == 1


def test_plan_input_functions_read_the_wildcards(tiny: dict) -> None:
    tiny["data"]["urbanclip"] = {"Xi'an new": "raw/xi an's"}
    plan = wf.Plan(tiny, repo="/repo")
    assert plan.dataset_dir(Wildcards(dataset="Xi'an new")) == "data/real/Xi'an new"
    assert plan.dataset_dir(Wildcards(dataset="DC")) == "data/synthetic/DC"
    assert plan.urbanclip_source(Wildcards(city="Xi'an new")) == "raw/xi an's"
    assert plan.default_model_runs(Wildcards(dataset="DC", split="random")) == [
        "results/runs/DC/random/urbanmoe/seed0", "results/runs/DC/random/urbanmoe/seed1"]
    assert plan.experiment_runs(Wildcards(experiment="transfer")) == plan.transfer_runs
    assert plan.transfer_inputs(Wildcards(pair="DC.west_to_DC")) == {
        "source": "data/synthetic/DC", "target": "data/synthetic/DC"}
    assert plan.transfer_parts(Wildcards(pair="DC_to_DC.east"))[1::2] == ["all", "east"]
    assert "baselines" in plan.training_settings(Wildcards(variant="knn"))
    assert plan.notebook("table2.ipynb") == "/repo/notebooks/table2.ipynb"
    assert plan.published("published_table1.csv") == "/repo/paper/published_table1.csv"


def test_plan_lists_are_the_module_functions(tiny: dict) -> None:
    plan = wf.Plan(tiny)
    assert plan.table2_runs == wf.table2_runs(tiny)
    assert plan.ablation_runs == wf.ablation_runs(tiny) and plan.table4_baseline_runs == []
    assert plan.spatial_artifacts == wf.spatial_artifacts(tiny)
    assert plan.paper_artifacts == wf.all_artifacts()
    assert plan.synth_dirs == ["data/synthetic/DC"] and plan.real_dir == "data/real/{city}"
    assert plan.seed_args == "0 1"
    assert yaml.safe_load(plan.datasets_yaml) == {"datasets": ["DC"]}
    assert yaml.safe_load(plan.dataset_dirs_yaml) == {"dataset_dirs": ["data/synthetic/DC"]}
    assert plan.figure_run == "results/ablations/DC/random/urbanmoe/seed0"


def test_plan_seed_pattern_names_every_seed_folder(tiny: dict) -> None:
    """--out's pattern, filled with each seed, gives back the job's output folders."""
    plan = wf.Plan(tiny)
    w = Wildcards(collection="spatial", dataset="my city's", split="random",
                  variant="ridge@features.cache_dir=a b", pair="DC.west_to_DC")
    for prefix, pattern in (("results/{collection}/{dataset}/{split}/{variant}",
                             plan.seed_pattern(w)),
                            ("results/transfer/{pair}/{variant}", plan.transfer_pattern(w))):
        folders = [f.format(**vars(w)) for f in plan.seed_folders(prefix)]
        assert [pattern.replace("{seed}", str(s)) for s in plan.seeds] == folders
    assert plan.seed_pattern(w) == (
        "results/spatial/my city's/random/ridge@features.cache_dir=a b/seed{seed}")
    # Snakemake records only params that read neither input nor output: one that read the
    # output would drop out of the record and rerun every finished training job.
    for pattern_of in (plan.seed_pattern, plan.transfer_pattern, plan.training_settings):
        assert list(inspect.signature(pattern_of).parameters) == ["wildcards"]


def test_plan_params_functions_read_the_job(tiny: dict) -> None:
    plan = wf.Plan(tiny)
    job = Wildcards(features="data/features/my city's", artifacts=["a b.csv", "c.md"],
                    published=["/repo/paper/published_table3.csv"])
    setting = plan.features_override(None, input=job)
    key, _, value = setting.partition("=")
    assert key == "features.cache_dir" and yaml.safe_load(value) == "data/features/my city's"
    assert plan.artifact_flags(None, input=job) == ["--artifact", "a b.csv", "--artifact", "c.md"]
    assert plan.published_folder(None, input=job) == "/repo/paper"


def test_urbanclip_mt_waits_for_the_representation_urbanclip_st_learns() -> None:
    cfg = load_config(ROOT / "config/config.yaml")
    assert cfg["workflow"]["table2_models"].index("urbanclip_st") < \
        cfg["workflow"]["table2_models"].index("urbanclip_mt")
    assert wf.shared_representation_runs(cfg, "runs", "SH", "random", "urbanclip_mt") == [
        f"results/runs/SH/random/urbanclip_st/seed{s}" for s in cfg["train"]["seeds"]]
    for variant in ("urbanclip_st", "tile2vec", "urbanmoe", "ridge"):
        assert wf.shared_representation_runs(cfg, "runs", "SH", "random", variant) == []
    cfg["baselines"]["cache_dir"] = None  # nothing to share without the cache
    assert wf.shared_representation_runs(cfg, "runs", "SH", "random", "urbanclip_mt") == []


def test_the_longest_training_jobs_start_first_and_the_cache_folder_reruns_nothing(
        tiny: dict) -> None:
    p = {v: wf.train_priority(tiny, "runs", v) for v in ("resnet18", "urbanmoe", "ridge")}
    assert p["resnet18"] > p["urbanmoe"] > p["ridge"]
    assert wf.train_priority(tiny, "ablations", "urbanmoe") > p["urbanmoe"]  # Figure 4's run
    assert wf.train_priority(tiny, "ablations", "urbanmoe@model.d_r=2") == p["urbanmoe"]
    moved = {**tiny, "baselines": {**tiny["baselines"], "cache_dir": "/elsewhere"}}
    assert wf.training_settings(moved, "tile2vec") == wf.training_settings(tiny, "tile2vec")
    resized = {**tiny, "baselines": {**tiny["baselines"], "repr_dim": 3}}
    assert wf.training_settings(resized, "tile2vec") != wf.training_settings(tiny, "tile2vec")
