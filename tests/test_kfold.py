"""``split.kind: kfold`` for small cities: each labelled region tested once per seed, metrics per
fold and pooled, tables that say how many regions and runs each number rests on, and
``urbanmoe predict`` on a K-fold run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import tabular_city

from urbanmoe.config import load_config
from urbanmoe.data.splits import kfold_split
from urbanmoe.evaluation.aggregate import collect, summarize
from urbanmoe.evaluation.run import train_run
from urbanmoe.report.maps import write_predictions
from urbanmoe.report.tables import table2

FAST = ["train.max_epochs=15", "train.patience=4", "model.expert_hidden=16",
        "model.expert_out=8", "model.head_hidden=8"]


def test_each_row_is_tested_exactly_once_over_the_folds() -> None:
    n, folds = 103, 5
    splits = [kfold_split(n, folds, k, (0.6, 0.2, 0.2), seed=3) for k in range(folds)]
    tested = np.concatenate([s.test for s in splits])
    assert sorted(tested) == list(range(n))
    for s in splits:
        assert not set(s.train) & set(s.val) and not set(s.test) & (set(s.train) | set(s.val))
        assert len(s.train) + len(s.val) + len(s.test) == n
        assert len(s.val) == round((n - len(s.test)) * 0.25)
    other = kfold_split(n, folds, 0, (0.6, 0.2, 0.2), seed=4)
    assert not np.array_equal(other.test, splits[0].test)
    with pytest.raises(ValueError, match="fold 5"):
        kfold_split(n, folds, 5, (0.6, 0.2, 0.2), seed=3)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two seeds of UrbanMoE under 3 folds on a 120-region city with 10 unlabelled regions."""
    root = tmp_path_factory.mktemp("kfold")
    city = tabular_city(root / "SMALL", n=120, coords=True)
    table = pd.read_csv(city / "regions.csv", dtype={"region_id": str})
    table.loc[table.index[:10], ["carbon", "population", "light"]] = np.nan
    table.to_csv(city / "regions.csv", index=False)
    cfg = load_config(None, ["split.kind=kfold", "split.folds=3", *FAST,
                             f"features.cache_dir={root / 'cache'}"])
    for seed in (0, 1):
        train_run(city, seed, root / "runs" / "urbanmoe" / f"seed{seed}", cfg, progress=False)
    return city, root / "runs"


def test_a_kfold_run_tests_every_labelled_region_once(runs: tuple[Path, Path]) -> None:
    city, root = runs
    metrics = json.loads((root / "urbanmoe/seed0/metrics.json").read_text())
    assert metrics["split"]["kind"] == "kfold" and metrics["split"]["folds"] == 3
    assert metrics["split"]["n_test"] == 110
    assert [f["n_test"] for f in metrics["folds"]] == [37, 37, 36]
    pred = pd.read_parquet(root / "urbanmoe/seed0/predictions.parquet")
    assert len(pred) == 110 and pred["region_id"].is_unique
    assert sorted(pred["fold"].unique()) == [0, 1, 2]
    assert set(metrics["chosen_on_validation"]) == {"fold0", "fold1", "fold2"}
    # every fold has its own model, and its own score
    assert len({f["log_scale"]["avg"]["r2"] for f in metrics["folds"]}) == 3


def test_tables_average_over_folds_and_seeds_and_count_regions(runs: tuple[Path, Path]) -> None:
    _, root = runs
    rows = collect([root])
    assert len(rows) == 6 and set(rows["fold"]) == {0, 1, 2}
    summary = summarize(rows).iloc[0]
    assert summary["n_seeds"] == 2 and summary["n_folds"] == 3
    assert summary["avg_r2_mean"] == pytest.approx(rows["avg_r2"].mean())
    assert summary["avg_r2_std"] == pytest.approx(rows["avg_r2"].std(ddof=0))
    assert summary["n_test_mean"] == pytest.approx(110 / 3)
    table = table2(rows).iloc[0]
    assert table["Seeds"] == "2 × 3 folds" and table["Test regions"] == "37"


def test_predict_uses_the_fold_that_tested_each_region(runs: tuple[Path, Path],
                                                       tmp_path: Path) -> None:
    city, root = runs
    write_predictions([root / "urbanmoe" / "seed0"], None, tmp_path / "out")
    table = pd.read_csv(tmp_path / "out" / "predictions.csv", dtype={"region_id": str})
    assert len(table) == 120 and (~table["labelled"]).sum() == 10
    oof = pd.read_parquet(root / "urbanmoe/seed0/predictions.parquet").set_index("region_id")
    mine = table.set_index("region_id").loc[oof.index]
    np.testing.assert_allclose(mine["carbon_pred_log"], oof["carbon_pred_log"], atol=1e-3)
    assert (mine["n_test_runs"] == 1).all()
    assert np.isfinite(table.loc[~table["labelled"], "carbon_pred"]).all()
