"""Spatial context (not in the paper): leakage-free spatial lag, tuned kNN, ensembles."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from urbanmoe.config import load_config
from urbanmoe.data.geo import km_points
from urbanmoe.data.splits import block_ids
from urbanmoe.data.table import load_dataset
from urbanmoe.features.spatial_lag import (
    TRANSDUCTIVE_NOTE,
    lag_columns,
    lag_features,
    neighbours,
)
from urbanmoe.report.spatial import best_knn, difference_figure, spatial_table
from urbanmoe.training import ensemble, registry
from urbanmoe.training.baselines.spatial import (
    fit_predict_knn,
    knn_choices,
    knn_everywhere,
    tuned_knn,
)
from urbanmoe.training.fitting import fit_model
from urbanmoe.training.prepare import Prepared, prepare

FAST = ["train.max_epochs=6", "train.patience=3", "model.n_specific=2", "model.n_dual=1",
        "model.n_shared=1", "model.expert_hidden=16", "model.expert_out=8"]


def _cfg(cache: Path, *overrides: str) -> dict:
    return load_config(None, [f"features.cache_dir={cache}", *FAST, *overrides])


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cache")


def _prep(synth_sh: Path, cache: Path, *overrides: str) -> Prepared:
    return prepare(load_dataset(synth_sh), _cfg(cache, *overrides), seed=0, cache_dir=cache,
                   progress=False)


def _scramble(y_log: np.ndarray, rows: np.ndarray, seed: int) -> np.ndarray:
    """A copy of ``y_log`` whose rows ``rows`` are shuffled among themselves, some made NaN."""
    out = y_log.copy()
    rng = np.random.default_rng(seed)
    out[rows] = out[rng.permutation(rows)] + rng.normal(0, 1, out[rows].shape)
    out[rows[::7]] = np.nan
    return out


@pytest.mark.parametrize("kind", ["random", "spatial_block"])
def test_lag_never_reads_validation_or_test_labels(synth_sh: Path, cache: Path,
                                                   kind: str) -> None:
    prep = _prep(synth_sh, cache, "spatial.lag=context", f"split.kind={kind}")
    xy = km_points(prep.ds.coords)
    groups = block_ids(prep.ds.coords, 2.0) if kind == "spatial_block" else None
    base = lag_features(xy, prep.y_log, prep.split.train, 10, groups)
    held_out = np.concatenate([prep.split.val, prep.split.test])
    again = lag_features(xy, _scramble(prep.y_log, held_out, 1), prep.split.train, 10, groups)
    np.testing.assert_array_equal(again, base)
    # the training labels do drive them, so the check above can fail
    moved = lag_features(xy, _scramble(prep.y_log, prep.split.train, 1), prep.split.train, 10,
                         groups)
    assert not np.allclose(moved, base)
    # and prepare puts them, standardised and clipped, into the model inputs
    lag = prep.data.inputs["lag"].numpy()
    assert prep.n_lag == lag.shape[1] == 3 * 21 and np.abs(lag).max() <= 10.0
    np.testing.assert_allclose(lag[prep.split.train].mean(axis=0), 0.0, atol=0.01)  # clipped


def test_lag_is_the_weighted_mean_of_the_other_training_labels() -> None:
    xy = np.array([[0.0, 0.0], [1.0, 0.0], [3.0, 0.0], [0.0, 0.5]])
    y = np.array([[1.0], [2.0], [4.0], [100.0]])  # row 3 is a test row: never read
    feats = lag_features(xy, y, np.array([0, 1, 2]), k=2, min_km=0.25)
    assert feats.shape == (4, len(lag_columns(["carbon"], 2))) == (4, 5)
    # row 0 leaves itself out: neighbours 1 (d = 1) and 2 (d = 3)
    np.testing.assert_allclose(feats[0, 0], (2.0 / 1 + 4.0 / 3) / (1 / 1 + 1 / 3), rtol=1e-6)
    np.testing.assert_allclose(feats[0, 1:], [2.0, 4.0, *np.log1p([1.0, 3.0])], rtol=1e-6)
    # the test row sees training rows 0 (d = 0.5) and 1 (d = 1.118)
    d = np.hypot(1.0, 0.5)
    np.testing.assert_allclose(feats[3, 0], (1.0 / 0.5 + 2.0 / d) / (1 / 0.5 + 1 / d), rtol=1e-6)


def test_group_out_excludes_the_own_block(synth_sh: Path, cache: Path) -> None:
    prep = _prep(synth_sh, cache, "split.kind=spatial_block", "split.block_km=8")
    groups = block_ids(prep.ds.coords, 8.0)  # blocks of about 9 regions
    xy = km_points(prep.ds.coords)
    train = prep.split.train
    rows, dist = neighbours(xy, train, groups, 10)
    assert rows.shape == (len(xy), 10) and (np.diff(dist, axis=1) >= 0).all()
    assert (groups[rows] != groups[:, None]).all()  # no region sees its own block
    assert np.isin(rows, train).all()
    # without group-out a training region's nearest training neighbour is often in its block
    plain, plain_dist = neighbours(xy, train, None, 10)
    assert (plain != np.arange(len(xy))[:, None]).all()
    assert (groups[plain[train, 0]] == groups[train]).mean() > 0.5
    # test regions lie in blocks without training regions: group-out changes nothing there
    # (up to the order of equidistant neighbours on this grid)
    test = prep.split.test
    np.testing.assert_allclose(dist[test], plain_dist[test])


def test_tuned_knn_chooses_on_validation(synth_sh: Path, cache: Path) -> None:
    prep = _prep(synth_sh, cache)
    b = prep_b = _cfg(cache)["baselines"]
    val_pred, test_pred, chosen, n_params = tuned_knn(prep, b)
    assert set(chosen) == set(prep.tasks) and n_params > 0
    y = prep.data.y.numpy()
    # its validation error is at most that of the fixed k = 5 (which is in its grid)
    knn5 = fit_predict_knn(replace(prep, split=replace(prep.split, test=prep.split.val)),
                           prep_b, 0)[0]
    va = prep.split.val
    assert ((val_pred - y[va]) ** 2).mean() <= ((knn5 - y[va]) ** 2).mean() + 1e-12
    # test labels do not move it
    y_noisy = prep.data.y.clone()
    y_noisy[prep.split.test] = torch.randn(len(prep.split.test), y.shape[1])
    other = replace(prep, data=replace(prep.data, y=y_noisy))
    again = tuned_knn(other, b)
    assert again[2] == chosen
    np.testing.assert_array_equal(again[1], test_pred)


def test_average_weights_follow_the_validation_set() -> None:
    rng = np.random.default_rng(0)
    y = rng.normal(size=(200, 2))
    model, knn = y + rng.normal(0, 0.1, y.shape), rng.normal(size=y.shape)
    obs = np.ones_like(y, dtype=bool)
    coefs = ensemble.choose_combination("average", model, knn, y, obs)
    assert [c["model"] for c in coefs] == [1.0, 1.0]
    coefs = ensemble.choose_combination("average", knn, model, y, obs)
    assert [c["model"] for c in coefs] == [0.0, 0.0]
    both = ensemble.choose_combination("average", y + rng.normal(0, 0.3, y.shape),
                                       y + rng.normal(0, 0.3, y.shape), y, obs)
    assert all(0.2 < c["model"] < 0.8 for c in both)
    stacked = ensemble.choose_combination("stack", model, knn, y, obs)
    assert all(c["model"] > 0.9 and abs(c["knn"]) < 0.1 for c in stacked)


def test_ensemble_weights_come_from_validation_only(synth_sh: Path, cache: Path) -> None:
    cfg = _cfg(cache, "model.name=mlp_mt", "spatial.ensemble=average")
    prep = prepare(load_dataset(synth_sh), cfg, seed=0, cache_dir=cache, progress=False)
    spec = registry.get("mlp_mt")
    out = fit_model(spec, prep, cfg, 0, torch.device("cpu"), progress=False)
    keys = [f"ensemble_{t}" for t in prep.tasks]
    assert set(keys) <= set(out.chosen) and TRANSDUCTIVE_NOTE in out.notes
    assert any(n.startswith("ensemble with tuned kNN") for n in out.notes)
    # scrambling the test labels changes nothing the ensemble chose
    y = prep.data.y.clone()
    y[prep.split.test] = torch.randn(len(prep.split.test), y.shape[1])
    other = replace(prep, data=replace(prep.data, y=y))
    again = fit_model(spec, other, cfg, 0, torch.device("cpu"), progress=False)
    assert [again.chosen[k] for k in keys] == [out.chosen[k] for k in keys]
    np.testing.assert_array_equal(again.pred_std, out.pred_std)


def test_ensemble_needs_validation_predictions(synth_sh: Path, cache: Path) -> None:
    cfg = _cfg(cache, "model.name=ridge", "spatial.ensemble=average")
    prep = prepare(load_dataset(synth_sh), cfg, seed=0, cache_dir=cache, progress=False)
    with pytest.raises(ValueError, match="spatial.ensemble average: model.name ridge"):
        fit_model(registry.get("ridge"), prep, cfg, 0, torch.device("cpu"), progress=False)


@pytest.mark.parametrize("mode", ["context", "branch"])
def test_urbanmoe_takes_the_lag_and_says_so(synth_sh: Path, cache: Path, mode: str) -> None:
    cfg = _cfg(cache, f"spatial.lag={mode}")
    prep = prepare(load_dataset(synth_sh), cfg, seed=0, cache_dir=cache, progress=False)
    out = fit_model(registry.get("urbanmoe"), prep, cfg, 0, torch.device("cpu"), progress=False)
    model = out.models["all"]
    if mode == "branch":
        assert "lag" in model.branches and model.n_lag == 0
    else:
        assert "lag" not in model.branches and model.n_lag == prep.n_lag == 63
    assert TRANSDUCTIVE_NOTE in out.notes and np.isfinite(out.pred_std).all()
    # without the lag there is no note and no lag input
    plain_cfg = _cfg(cache)
    plain = prepare(load_dataset(synth_sh), plain_cfg, seed=0, cache_dir=cache, progress=False)
    assert "lag" not in plain.data.inputs and plain.n_lag == 0


def test_lag_needs_coordinates(synth_sh: Path, cache: Path) -> None:
    ds = load_dataset(synth_sh)
    ds = replace(ds, table=ds.table.drop(columns=["lat", "lon"]))
    with pytest.raises(ValueError, match="spatial.lag needs lat/lon"):
        prepare(ds, _cfg(cache, "spatial.lag=context"), seed=0, cache_dir=cache, progress=False)


def _fake_runs() -> pd.DataFrame:
    rows = []
    for seed, (knn, tuned, lag) in enumerate([(0.80, 0.82, 0.85), (0.78, 0.81, 0.80),
                                              (0.79, 0.80, 0.84)]):
        for variant, r2 in (("knn", knn), ("knn_tuned", tuned),
                            ("urbanmoe@spatial.lag=context", lag)):
            note = TRANSDUCTIVE_NOTE if "lag" in variant else ""
            rows.append({"dataset": "BJ", "split": "random", "variant": variant, "seed": seed,
                         "avg_r2": r2, "carbon_r2": r2 + 0.05, "light_r2": r2 - 0.05,
                         "note": note})
    runs = pd.DataFrame(rows)
    runs.attrs["tasks"] = ["carbon", "light"]
    return runs


def test_paired_differences_to_the_best_knn(tmp_path: Path) -> None:
    runs = _fake_runs()
    assert best_knn(runs) == "knn_tuned"
    table, diffs = spatial_table(runs)
    row = table.set_index("variant").loc["urbanmoe@spatial.lag=context"]
    paired = np.array([0.85 - 0.82, 0.80 - 0.81, 0.84 - 0.80])
    assert row["diff_avg_r2_mean"] == pytest.approx(paired.mean())
    assert row["diff_avg_r2_std"] == pytest.approx(paired.std())
    assert row["wins"] == 2 and row["Wins"] == "2/3" and row["Note"] == TRANSDUCTIVE_NOTE
    assert row["Model"] == "UrbanMoE, lag in z"
    assert table.set_index("variant").loc["knn_tuned", "Δ vs best kNN (paired)"] == "reference"
    assert set(diffs["variant"]) == {"knn", "knn_tuned", "urbanmoe@spatial.lag=context"}
    paths = difference_figure(diffs, ["carbon", "light"], tmp_path / "fig")
    assert all(p.stat().st_size > 0 for p in paths)


def test_knn_base_of_the_residuals_is_out_of_fold(synth_sh: Path, cache: Path) -> None:
    prep = _prep(synth_sh, cache, "split.kind=spatial_block", "split.block_km=8")
    b = _cfg(cache)["baselines"]
    (k, weights), *_ = knn_choices(prep, b)
    groups = block_ids(prep.ds.coords, 8.0)
    base = knn_everywhere(prep, 0, k, weights, groups)
    # off the training rows it is the tuned kNN itself (up to which of several equidistant
    # neighbours on this grid fills the k-th place)
    val_pred, test_pred, _, _ = tuned_knn(prep, b)
    for part, pred in ((prep.split.test, test_pred), (prep.split.val, val_pred)):
        assert np.isclose(base[part], pred[:, 0], atol=1e-6).mean() > 0.8
    # a training row's own label (and its block's) never enters its own base
    row = prep.split.train[0]
    same_block = prep.split.train[groups[prep.split.train] == groups[row]]
    y = prep.data.y.clone()
    y[same_block, 0] += 5.0
    moved = knn_everywhere(replace(prep, data=replace(prep.data, y=y)), 0, k, weights, groups)
    assert moved[row] == pytest.approx(base[row])
    assert not np.allclose(moved, base)


def test_residual_ensemble_reads_no_test_label(synth_sh: Path, cache: Path) -> None:
    cfg = _cfg(cache, "model.name=ridge", "spatial.ensemble=residual")
    prep = prepare(load_dataset(synth_sh), cfg, seed=0, cache_dir=cache, progress=False)
    out = fit_model(registry.get("ridge"), prep, cfg, 0, torch.device("cpu"), progress=False)
    assert any(n.startswith("model of the residuals") for n in out.notes)
    y = prep.data.y.clone()
    y[prep.split.test] = torch.randn(len(prep.split.test), y.shape[1])
    other = replace(prep, data=replace(prep.data, y=y))
    again = fit_model(registry.get("ridge"), other, cfg, 0, torch.device("cpu"), progress=False)
    np.testing.assert_array_equal(again.pred_std, out.pred_std)
    # kNN plus a model of what it misses is at least as good as the kNN on this benchmark
    te = prep.split.test
    knn_mse = ((tuned_knn(prep, cfg["baselines"])[1] - prep.data.y.numpy()[te]) ** 2).mean()
    assert ((out.pred_std - prep.data.y.numpy()[te]) ** 2).mean() < knn_mse
