"""Closed-form baselines of Table 2 (mean, ridge, kNN on coordinates, LightGBM) on synthetic SH."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from urbanmoe.config import load_config
from urbanmoe.data.table import load_dataset
from urbanmoe.evaluation.metrics import multitask_metrics
from urbanmoe.training.baselines.boosting import fit_predict_lightgbm
from urbanmoe.training.baselines.linear import fit_predict_mean, fit_predict_ridge
from urbanmoe.training.baselines.spatial import fit_predict_knn
from urbanmoe.training.prepare import Prepared, prepare

FAST_GBM = ["baselines.lightgbm.n_estimators=80", "baselines.lightgbm.learning_rate=0.15",
            "baselines.lightgbm.num_leaves=15"]
FITS = {"ridge": fit_predict_ridge, "knn": fit_predict_knn, "lightgbm": fit_predict_lightgbm}
Result = tuple[np.ndarray, int, dict]


@pytest.fixture(scope="module")
def setup(synth_sh: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Prepared, dict]:
    cache = tmp_path_factory.mktemp("cache")
    cfg = load_config(None, [f"features.cache_dir={cache}", *FAST_GBM])
    return prepare(load_dataset(synth_sh), cfg, seed=0, cache_dir=cache, progress=False), cfg


@pytest.fixture(scope="module")
def fitted(setup: tuple[Prepared, dict]) -> dict[str, Result]:
    """Each baseline fitted once with seed 0 (shared by the tests below)."""
    prep, cfg = setup
    return {name: fit(prep, cfg["baselines"], 0) for name, fit in FITS.items()}


def _test_r2(prep: Prepared, pred: np.ndarray) -> dict[str, float]:
    y = np.where(prep.data.observed.numpy(), prep.data.y.numpy(), np.nan)[prep.split.test]
    metrics = multitask_metrics(y, pred, prep.tasks)
    return {task: metrics[task]["r2"] for task in prep.tasks}


def _with_targets(prep: Prepared, rows: np.ndarray, seed: int) -> Prepared:
    """A copy of ``prep`` whose standardised targets on ``rows`` are replaced by noise."""
    y = prep.data.y.clone()
    y[rows] = torch.from_numpy(
        np.random.default_rng(seed).normal(0, 3, (len(rows), y.shape[1])).astype(np.float32))
    return replace(prep, data=replace(prep.data, y=y))


@pytest.mark.parametrize("name", sorted(FITS))
def test_beats_the_mean_predictor(setup: tuple[Prepared, dict], fitted: dict[str, Result],
                                  name: str) -> None:
    prep, cfg = setup
    mean_pred, n_mean, _ = fit_predict_mean(prep, cfg["baselines"], 0)
    assert mean_pred.shape == (len(prep.split.test), len(prep.tasks)) and n_mean == len(prep.tasks)
    pred, n_params, _ = fitted[name]
    assert pred.shape == mean_pred.shape and np.isfinite(pred).all() and n_params > 0
    r2_mean, r2 = _test_r2(prep, mean_pred), _test_r2(prep, pred)
    for task in prep.tasks:
        assert abs(r2_mean[task]) < 0.05, r2_mean
        assert r2[task] > r2_mean[task] + 0.3, (name, r2, r2_mean)


def test_knn_uses_coordinates_only(setup: tuple[Prepared, dict],
                                   fitted: dict[str, Result]) -> None:
    prep, cfg = setup
    b = cfg["baselines"]
    order = np.random.default_rng(1).permutation(len(prep.ds))
    shuffled = {k: (v[order] if k in (*prep.branch_dims, "poi") else v)
                for k, v in prep.data.inputs.items()}
    other = replace(prep, data=replace(prep.data, inputs=shuffled))
    pred, n_params, chosen = fitted["knn"]
    assert chosen == {"k": b["knn_k"]}
    assert n_params == 3 * int(prep.data.observed[prep.split.train].sum())
    np.testing.assert_array_equal(fit_predict_knn(other, b, 0)[0], pred)
    # the shuffle does matter to a model that reads the features
    assert not np.allclose(fit_predict_ridge(other, b, 0)[0], fitted["ridge"][0])


def test_knn_without_coordinates_raises(setup: tuple[Prepared, dict]) -> None:
    prep, cfg = setup
    no_coords = replace(prep, ds=replace(prep.ds, table=prep.ds.table.drop(columns=["lat", "lon"])))
    with pytest.raises(ValueError, match="lat/lon"):
        fit_predict_knn(no_coords, cfg["baselines"], 0)


def test_lightgbm_never_reads_test_labels(setup: tuple[Prepared, dict],
                                          fitted: dict[str, Result]) -> None:
    prep, cfg = setup
    b = cfg["baselines"]
    pred, _, chosen = fitted["lightgbm"]
    assert set(chosen) == set(prep.tasks)
    assert all(1 <= it <= b["lightgbm"]["n_estimators"] for it in chosen.values())
    np.testing.assert_array_equal(
        fit_predict_lightgbm(_with_targets(prep, prep.split.test, 5), b, 0)[0], pred)
    # validation labels do steer it (early stopping), so the check above can fail
    noisy_val = fit_predict_lightgbm(_with_targets(prep, prep.split.val, 5), b, 0)
    assert noisy_val[2] != chosen or not np.array_equal(noisy_val[0], pred)


def test_same_seed_same_predictions(setup: tuple[Prepared, dict],
                                    fitted: dict[str, Result]) -> None:
    prep, cfg = setup
    for name, fit in FITS.items():
        again = fit(prep, cfg["baselines"], 0)
        np.testing.assert_array_equal(again[0], fitted[name][0])
        assert again[1:] == fitted[name][1:]


def test_lightgbm_counts_tree_nodes(setup: tuple[Prepared, dict]) -> None:
    prep, cfg = setup
    b = load_config(None, [*FAST_GBM, "baselines.lightgbm.num_leaves=2"])["baselines"]
    _, n_params, chosen = fit_predict_lightgbm(prep, b, 0)
    n_trees = sum(chosen.values())
    assert n_trees <= n_params <= 3 * n_trees  # stumps: one split and two leaves at most
    assert n_params > n_trees  # and trees that split at all
