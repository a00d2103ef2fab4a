"""HAFusion's table from the workflow (``snakemake hafusion``): its runs as variants, the
published-vs-reproduced cells computed from run folders, and the target end to end on a small
HAFusion-shaped city (few epochs, two seeds)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from test_hafusion import fake_city
from test_workflow import ROOT, _snakemake

from urbanmoe.config import load_config
from urbanmoe.evaluation import hafusion_runs
from urbanmoe.paper_items import ITEMS
from urbanmoe.report import hafusion
from urbanmoe.workflow import all_artifacts


def test_every_method_runs_three_ways_and_every_model_two() -> None:
    cfg = load_config(ROOT / "config/config.yaml")
    cfg["hafusion"]["methods"] = {"HAFusion": "hafusion"}
    cfg["hafusion"]["models"] = ["ridge"]
    assert hafusion_runs.variants(cfg) == [
        "hafusion@protocol.name=hafusion@protocol.hafusion.select_epoch=test_folds",
        "hafusion@protocol.name=hafusion", "hafusion@split.kind=kfold@split.folds=10",
        "ridge@protocol.name=hafusion", "ridge@split.kind=kfold@split.folds=10"]
    # the paper target does not need HAFusion's data; its own target does
    assert not [f for f in all_artifacts() if "hafusion" in f]
    assert all(f.startswith("hafusion/") for f in ITEMS["hafusion"].outputs)


def _metrics(model: str, seed: int, r2: float, protocol: str, test_folds: bool = False,
             folds: list[float] | None = None) -> dict:
    def scores(value: float) -> dict:
        return {t: {"r2": value, "mae": 10 * value, "rmse": 20 * value}
                for t in ("check_in", "crime", "service_call")}
    m = {"dataset": "NY", "model": model, "variant": model, "seed": seed,
         "tasks": ["check_in", "crime", "service_call"], "protocol": {"name": protocol},
         "split": {"kind": "kfold"}, "original_scale": scores(r2), "log_scale": scores(r2),
         "efficiency": {"params": 1, "peak_memory_mb": 1.0, "train_seconds": 1.0}}
    if test_folds:
        m["chosen_on_test"] = {"crime": 30}
    if folds is not None:
        m["folds"] = [{"fold": k, "n_test": 18, "log_scale": scores(v),
                       "original_scale": scores(v)} for k, v in enumerate(folds)]
    return m


def _write(root: Path, name: str, m: dict) -> None:
    (root / name).mkdir(parents=True)
    (root / name / "metrics.json").write_text(json.dumps(m))


def test_a_cell_holds_published_ours_difference_and_within(tmp_path: Path) -> None:
    """Ours as published is the mean over seeds of the pooled metric, its std over seeds; the
    project protocol's is over folds x seeds; "within" allows 2 x (our std + published std)."""
    for seed, r2 in ((0, 0.70), (1, 0.74)):
        _write(tmp_path, f"a{seed}", _metrics("hafusion", seed, r2, "hafusion", True))
        _write(tmp_path, f"f{seed}", _metrics("hafusion", seed, r2 - 0.1, "hafusion"))
        _write(tmp_path, f"p{seed}", _metrics("hafusion", seed, 0, "project", folds=[0.5, 0.6]))
        _write(tmp_path, f"r{seed}", _metrics("ridge", seed, 0.80, "hafusion"))
    summary = hafusion.summarise(hafusion.collect(tmp_path))
    published = pd.read_csv(ROOT / "paper/published_hafusion_icde24.csv")
    pvr = hafusion.published_vs_reproduced(summary, published, {"HAFusion": "hafusion"},
                                           {"MVURE": "not here"})
    crime = pvr[(pvr.task == "crime") & (pvr.city == "NYC") & (pvr.method == "HAFusion")].iloc[0]
    assert crime.published == 0.734 and crime.ours == pytest.approx(0.72)
    assert crime.ours_std == pytest.approx(0.02) and crime.n_seeds == 2
    assert crime.difference == pytest.approx(0.72 - 0.734)
    assert crime.judgement == "within"  # |0.014| <= 2 x (0.02 + 0.015)
    assert crime.ours_fixed_epoch == pytest.approx(0.62)
    assert crime.ours_project == pytest.approx(0.55) and crime.ours_project_std == pytest.approx(
        0.05)
    assert "test folds" in crime.note
    check_in = pvr[(pvr.task == "check_in") & (pvr.city == "NYC")
                   & (pvr.method == "HAFusion")].iloc[0]
    assert check_in.judgement == "below"  # 0.844 - 0.72 > 2 x (0.02 + 0.012)
    mvure = pvr[(pvr.method == "MVURE") & (pvr.city == "NYC")].iloc[0]
    assert mvure.note == "not here" and np.isnan(mvure.get("ours", np.nan))
    mine = hafusion.our_models(summary, published, ["ridge"])
    row = mine[(mine.task == "crime") & (mine.model == "ridge")].iloc[0]
    assert row.their_protocol == pytest.approx(0.80) and row.beats_published


def test_the_target_writes_the_tables_from_a_clean_folder(tmp_path: Path) -> None:
    shutil.copytree(ROOT / ".test/config", tmp_path / "config")
    fake_city(tmp_path / "raw" / "data_NY", 40)
    cfg = yaml.safe_load((tmp_path / "config/config.yaml").read_text())
    cfg["hafusion"] = {"source": str(tmp_path / "raw"), "cities": ["NY"], "seeds": [0, 1],
                       "methods": {}, "models": ["ridge", "mean"], "folds": 3}
    (tmp_path / "config/config.yaml").write_text(yaml.safe_dump(cfg))
    _snakemake(tmp_path, "--cores", "2", "hafusion")
    out = tmp_path / "paper_figures/hafusion"
    for f in ITEMS["hafusion"].outputs:
        assert (tmp_path / "paper_figures" / f).is_file(), f
    pvr = pd.read_csv(out / "published_vs_reproduced_r2.csv")
    assert len(pvr) == 45 and set(pvr.method) >= {"HAFusion", "RegionDCL"}
    mine = pd.read_csv(out / "our_models_r2.csv")
    assert set(mine.model) == {"ridge", "mean"} and set(mine.city) == {"NYC"}
    assert mine.their_protocol.notna().all() and mine.project_protocol.notna().all()
    prov = json.loads((out / "provenance.json").read_text())
    assert len(prov["runs"]) == 2 * 2 * 2 and all(r["mlflow_run_id"] for r in prov["runs"])
    assert "Nothing to be done" in _snakemake(tmp_path, "--cores", "2", "-n", "hafusion")
