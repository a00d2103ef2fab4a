"""``model.name: auto`` (training/auto.py): candidates fitted, one chosen per task on validation
alone (scrambling the test labels changes nothing), recorded with the reasons, and applied by
``urbanmoe predict``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import tabular_city

from urbanmoe.config import load_config
from urbanmoe.evaluation.run import train_run
from urbanmoe.report.maps import write_predictions
from urbanmoe.training.auto import choose, cross_fitted_r2

FAST = ["model.name=auto", "train.max_epochs=15", "train.patience=4", "model.expert_hidden=16",
        "model.expert_out=8", "model.head_hidden=8", "baselines.lightgbm.n_estimators=60"]
TASKS = ["carbon", "population", "light"]


def test_validation_picks_the_better_candidate_and_pairs_that_help() -> None:
    rng = np.random.default_rng(0)
    y = rng.normal(size=(400, 2))
    noise_a, noise_b = rng.normal(size=(400, 2)), rng.normal(size=(400, 2))
    a0 = y[:, :1] + 0.3 * noise_a[:, :1]
    # task 0: b is a, overdispersed: worse, and nothing to gain from mixing them
    preds = {"a": np.hstack([a0, y[:, 1:]]), "b": np.hstack([2 * a0, y[:, 1:]])}
    preds["a"][:, 1] = y[:, 1] + 0.6 * noise_a[:, 1]
    preds["b"][:, 1] = y[:, 1] + 0.6 * noise_b[:, 1]  # equal, independent errors: average
    weights, scores = choose(preds, y, np.ones_like(y, dtype=bool), ["t0", "t1"], seed=0)
    assert weights[0] == {"a": 1.0}
    assert set(weights[1]) == {"a", "b"} and 0.3 <= weights[1]["a"] <= 0.7
    assert scores["t1"]["a+b"] > max(scores["t1"]["a"], scores["t1"]["b"])
    # cross-fitting cannot flatter: a pair of one predictor with itself gains nothing
    half = np.arange(400) % 2 == 0
    same = cross_fitted_r2(preds["a"][:, 0], preds["a"][:, 0], y[:, 0], half)
    assert same == pytest.approx(scores["t0"]["a"], abs=1e-4)  # scores are rounded


@pytest.fixture(scope="module")
def city(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tabular_city(tmp_path_factory.mktemp("auto") / "CITY", n=200, coords=True)


def test_auto_records_its_choice_and_every_candidate(city: Path, tmp_path: Path) -> None:
    cfg = load_config(None, [*FAST, f"features.cache_dir={tmp_path / 'c'}"])
    m = train_run(city, 0, tmp_path / "run", cfg, progress=False)
    assert set(m["candidates_test"]) == {"knn_tuned", "lightgbm", "urbanmoe", "urbanmoe_lag",
                                         "urbanmoe_location"}
    chosen = m["chosen_on_validation"]
    assert set(chosen["validation_r2"]) == set(TASKS)
    for task in TASKS:  # the best validation score names what was chosen
        scores = chosen["validation_r2"][task]
        best = max(scores, key=scores.get)
        assert sorted(best.split("+")) == sorted(p.split()[-1] for p in chosen[task].split(" + "))
    assert m["notes"][0].startswith("best on validation per task: carbon ")
    # `predict` rebuilds the same choice from the checkpoint and refits
    summary = write_predictions([tmp_path / "run"], None, tmp_path / "pred")
    assert summary["model"] == "auto"
    table = pd.read_csv(tmp_path / "pred" / "predictions.csv")
    assert np.isfinite(table["carbon_pred"]).all()


def test_auto_never_reads_test_labels(city: Path, tmp_path: Path) -> None:
    cfg = load_config(None, [*FAST, f"features.cache_dir={tmp_path / 'c'}"])
    first = train_run(city, 1, tmp_path / "a", cfg, progress=False)
    test_ids = pd.read_parquet(tmp_path / "a" / "predictions.parquet")["region_id"]
    scrambled = tmp_path / "SCRAMBLED"
    shutil.copytree(city, scrambled)
    table = pd.read_csv(scrambled / "regions.csv", dtype={"region_id": str})
    rows = table.index[table["region_id"].isin(set(test_ids))]
    rng = np.random.default_rng(5)
    for task in TASKS:  # shuffled among the test regions, and scaled: far from the truth
        table.loc[rows, task] = rng.permutation(table.loc[rows, task].to_numpy()) * 7.0
    table.to_csv(scrambled / "regions.csv", index=False)
    second = train_run(scrambled, 1, tmp_path / "b", cfg, progress=False)
    assert second["chosen_on_validation"] == first["chosen_on_validation"]
    a = pd.read_parquet(tmp_path / "a" / "predictions.parquet")
    b = pd.read_parquet(tmp_path / "b" / "predictions.parquet")
    for task in TASKS:
        np.testing.assert_allclose(a[f"{task}_pred_log"], b[f"{task}_pred_log"], atol=1e-5)
    assert second["log_scale"]["avg"]["r2"] < first["log_scale"]["avg"]["r2"] - 0.2


def test_auto_without_coordinates_and_with_spatial_settings(tmp_path: Path) -> None:
    city = tabular_city(tmp_path / "TAB", n=150)
    cfg = load_config(None, [*FAST, f"features.cache_dir={tmp_path / 'c'}"])
    m = train_run(city, 0, tmp_path / "run", cfg, progress=False)
    assert set(m["candidates_test"]) == {"lightgbm", "urbanmoe"}
    bad = load_config(None, [*FAST, "spatial.lag=context"])
    with pytest.raises(ValueError, match="model.name auto: it chooses its own spatial context"):
        train_run(tabular_city(tmp_path / "XY", n=60, coords=True), 0, tmp_path / "bad", bad,
                  progress=False)
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["model"] == "auto"
