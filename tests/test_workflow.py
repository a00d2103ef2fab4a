"""The Snakemake workflow end to end on the tiny configuration (.test/), then nothing to redo."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pandas as pd
import yaml
from conftest import same_numbers, write_dataset

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _snakemake(work: Path, *args: str) -> str:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    cmd = [str(BIN / "snakemake"), "-s", str(ROOT / "Snakefile"), "-d", str(work), *args]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


def _mlflow_children_once(db: Path, expected: int) -> None:
    """Each run is mirrored once per experiment that uses it (a run may serve several)."""
    with sqlite3.connect(db) as con:
        keys = list(con.execute(
            "SELECT r.experiment_id, t.value FROM tags t JOIN runs r ON r.run_uuid = t.run_uuid "
            "WHERE t.key = 'urbanmoe.run_key' AND r.lifecycle_stage = 'active'"))
    assert len(keys) == expected and len(set(keys)) == expected, keys


def test_tiny_workflow_runs_and_second_call_has_nothing_to_do(tmp_path: Path) -> None:
    shutil.copytree(ROOT / ".test/config", tmp_path / "config")
    _snakemake(tmp_path, "--cores", "2")
    same_numbers(tmp_path)  # Table 2, Tables 3-4 and Figure 3 as recorded in .test/reference/
    summary = (tmp_path / "results/summary.csv").read_text()
    for model in ("urbanmoe_st", "urbanmoe", "ridge", "mean", "knn", "pca"):
        for split in ("random", "spatial_block"):
            assert f"DC,{model},{split}" in summary
    for seed, split in ((0, "random"), (1, "spatial_block")):
        assert (tmp_path / f"results/runs/DC/{split}/urbanmoe/seed{seed}/metrics.json").is_file()
    assert (tmp_path / "logs/train/runs/DC/random/urbanmoe.log").is_file()
    variant = "urbanmoe@model.use_poi=false"
    ablation = tmp_path / f"results/ablations/DC/random/{variant}/seed1/metrics.json"
    assert json.loads(ablation.read_text())["variant"] == variant
    for name in ("table1.md", "table3.md", "table4.md", "table5.md", "figure3.png",
                 "figure4.png", "figure5.pdf", "figure6.png", "sparsity.md", "claims.md"):
        assert (tmp_path / "paper_figures" / name).is_file(), name
    for name in ("table2.csv", "table2.md", "table2.tex", "published_vs_reproduced.md"):
        assert (tmp_path / "paper_figures" / name).is_file(), name
    table2 = (tmp_path / "paper_figures/table2.md").read_text()
    assert "UrbanMoE (ST)" in table2 and "PCA" in table2 and "kNN on coordinates" in table2
    assert (tmp_path / "results/data_report/DC.md").is_file()
    for split in ("random", "spatial_block"):  # every region predicted by the default model
        assert (tmp_path / f"paper_figures/maps/DC/{split}/DC-urbanmoe-predicted.png").is_file()
        assert (tmp_path / f"results/predictions/DC/{split}/regions.geojson").is_file()
    assert (tmp_path / "results/notebooks/table2.ipynb").is_file()  # the executed notebook
    prov = json.loads((tmp_path / "paper_figures/provenance.json").read_text())
    assert "paper_figures/table2.md" in prov["artifacts"] and prov["seeds"] == [0, 1]
    assert all(r["mlflow_run_id"] for r in prov["runs"]) and len(prov["runs"]) == 48
    assert set(prov["data_sha256"]) == {"DC"} and prov["git"]["commit"]
    _mlflow_children_once(tmp_path / "mlflow.db", 24 + 14 + 8 + 6 + 1)
    # a forced rerun of one experiment's mirror logs again without duplicating a run
    _snakemake(tmp_path, "--cores", "2", "--forcerun", "results/mlflow/table3.json")
    _mlflow_children_once(tmp_path / "mlflow.db", 24 + 14 + 8 + 6 + 1)
    assert "Nothing to be done" in _snakemake(tmp_path, "--cores", "2", "-n")
    # the reviewer's report: every paper table and figure with its paper item's caption
    _snakemake(tmp_path, "--report", "report.html")
    html = (tmp_path / "report.html").read_text()
    for title in ("Table 2: UrbanMoE against the baselines", "Table 3: expert types",
                  "Figure 3: hyper-parameter analysis", "The paper's claims checked"):
        assert title in html, title


def test_scientific_notation_in_the_config_file_plans(tmp_path: Path) -> None:
    """``lr: 1e-3`` in config/config.yaml is a number to the workflow as to the CLI (Snakemake's
    own reader, YAML 1.1, would leave it a string that the schema refuses)."""
    cfg = yaml.safe_load((ROOT / ".test/config/config.yaml").read_text())
    (tmp_path / "config").mkdir()
    text = yaml.safe_dump(cfg).replace("lr: 0.0003", "lr: 3e-4")
    assert "lr: 3e-4" in text
    (tmp_path / "config/config.yaml").write_text(text)
    assert "train" in _snakemake(tmp_path, "-n", "all")


def test_lint_is_clean() -> None:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run([str(BIN / "snakemake"), "--lint"], cwd=ROOT, env=env,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr



ODD = "my city's"  # a user dataset whose name holds a space and a quote
ODD_REAL = "Xi'an new"  # an imported real city named so
ODD_VARIANT = "ridge@features.cache_dir=feature cache's"  # a variant holding both too


def _odd_workflow(work: Path, table: pd.DataFrame) -> None:
    """The tiny configuration on datasets and variants whose names hold a space and a quote
    (the user dataset written in ``work``, the real city's toolkit folder an empty stand-in)."""
    cfg = yaml.safe_load((ROOT / ".test/config/config.yaml").read_text())
    cfg["data"]["datasets"] = [ODD, ODD_REAL]
    cfg["data"]["urbanclip"] = {ODD_REAL: "raw/xi an's"}
    cfg["experiments"]["dataset"] = ODD
    cfg["workflow"]["spatial_variants"] = ["knn_tuned", ODD_VARIANT]
    cfg["workflow"]["transfer_pairs"] = [f"{ODD}.west_to_{ODD}.east"]
    cfg["workflow"]["transfer_models"] = [ODD_VARIANT]
    (work / "config").mkdir()
    (work / "config/config.yaml").write_text(yaml.safe_dump(cfg))
    write_dataset(work / "data/synthetic" / ODD, table)
    (work / "raw/xi an's").mkdir(parents=True)


def _planned_commands(out: str) -> list[list[str]]:
    """The shell commands a dry run printed (-n -p), split into arguments as the shell would."""
    prefix = "Shell command: "
    return [shlex.split(line[len(prefix):]) for line in out.splitlines()
            if line.startswith(prefix) and line != prefix + "None"]


def _after(argv: list[str], flag: str) -> str:
    """The argument that follows ``flag`` (the one occurrence)."""
    assert argv.count(flag) == 1, (flag, argv)
    return argv[argv.index(flag) + 1]


def _after_all(argv: list[str], flag: str) -> list[str]:
    """The arguments from ``flag`` up to the next option or redirection."""
    rest = argv[argv.index(flag) + 1:]
    end = next((i for i, a in enumerate(rest) if a.startswith("-") or a == ">"), len(rest))
    return rest[:end]


def test_names_with_spaces_and_quotes_reach_the_commands_whole(
        tmp_path: Path, toy_table: pd.DataFrame) -> None:
    """Dataset names and variants holding a space and a quote reach every command as one
    argument each: the planned commands of every rule, and one rule run for real."""
    _odd_workflow(tmp_path, toy_table)
    commands = _planned_commands(_snakemake(tmp_path, "-n", "-p", "all", "spatial"))
    by_verb: dict[str, list[list[str]]] = {}
    for argv in commands:
        verb = argv[1] if argv[0] == "urbanmoe" else Path(argv[1]).stem
        by_verb.setdefault(verb, []).append(argv)
    data, features = f"data/synthetic/{ODD}", f"data/features/{ODD}"
    real = f"data/real/{ODD_REAL}"

    odd_train = [a for a in by_verb["train"] if _after(a, "--variant") == ODD_VARIANT]
    assert len(odd_train) == 2  # the spatial comparison's, on each dataset
    run = next(a for a in odd_train if _after(a, "--dataset") == data)
    folder = f"results/spatial/{ODD}/spatial_block/{ODD_VARIANT}"
    assert _after(run, "--out") == folder + "/seed{seed}"
    assert _after(run, ">") == f"logs/train/spatial/{ODD}/spatial_block/{ODD_VARIANT}.log"
    sets = [run[i + 1] for i, a in enumerate(run) if a == "--set"]
    cache = [s for s in sets if s.startswith("features.cache_dir=")]
    assert [yaml.safe_load(c.split("=", 1)[1]) for c in cache] == [features]
    assert _after_all(run, "--seed") == ["0", "1"]

    (transfer,) = by_verb["transfer"]
    assert (_after(transfer, "--source"), _after(transfer, "--target")) == (data, data)
    assert _after(transfer, "--variant") == ODD_VARIANT
    assert (_after(transfer, "--source-part"), _after(transfer, "--target-part")) == (
        "west", "east")

    (imported,) = by_verb["import-urbanclip"]
    assert _after(imported, "--city") == ODD_REAL and _after(imported, "--out") == real
    assert _after(imported, "--city-dir") == "raw/xi an's"
    assert {(_after(a, "--dataset"), _after(a, "--out")) for a in by_verb["features"]} == {
        (data, features), (real, f"data/features/{ODD_REAL}")}

    (table2,) = by_verb["table2"]
    assert yaml.safe_load(_after(table2, "-y")) == {"datasets": [ODD, ODD_REAL]}
    note = _after(table2, "data_note")
    assert f"({ODD_REAL})" in note and f"({ODD})" in note
    (dataset_stats,) = by_verb["dataset"]
    assert yaml.safe_load(_after(dataset_stats, "-y")) == {"dataset_dirs": [data, real]}
    assert _after(dataset_stats, "sample_dataset") == ODD
    (ablations,) = by_verb["ablations"]
    assert _after(ablations, "dataset") == ODD and _after(ablations, "data_note") == note
    (experts,) = by_verb["experts"]
    assert _after(experts, "run_dir") == f"results/ablations/{ODD}/random/urbanmoe/seed0"

    (aggregate,) = by_verb["aggregate"]
    runs = _after_all(aggregate, "aggregate")
    assert len(runs) == 2 * 2 * 6 * 2  # datasets x splits x models x seeds, one argument each
    assert all(r.startswith((f"results/runs/{ODD}/", f"results/runs/{ODD_REAL}/")) for r in runs)
    (provenance,) = by_verb["provenance"]
    assert set(runs) <= set(_after_all(provenance, "--runs"))
    for argv in by_verb["predict"]:
        assert len(_after_all(argv, "--runs")) == 2  # the default model's two seeds

    # and for real: one rule's quoted command through the shell
    _snakemake(tmp_path, "--cores", "1", f"results/data_report/{ODD}.md")
    assert (tmp_path / f"results/data_report/{ODD}.json").is_file()
    assert (tmp_path / f"logs/data_report/{ODD}.log").is_file()
