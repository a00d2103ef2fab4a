"""Apply trained runs to every region of a dataset (``urbanmoe predict``).

A run folder (``evaluation/run.py``) is rebuilt from its own ``config.yaml`` and seed: the same
split of the labelled regions, the same inputs standardised on the same training rows; its torch
modules get the trained weights of ``model.pt``, and what has no torch weights (the closed
forms, a representation baseline's encoder, the kNN of an ensemble) is fitted again,
deterministically from the seed. The run's own test predictions (``predictions.parquet``) are
recomputed as a check: a dataset or code that no longer gives them is refused.

Every region is predicted, the unlabelled ones too (regions whose targets are all empty are in
no part of the split: never trained on or scored). A ``kfold`` run holds one model per fold.
Several runs (the seeds of one model) give the mean and the spread over seeds, log1p scale.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from urbanmoe.binaries import read_checkpoint
from urbanmoe.config import validate
from urbanmoe.data.table import RegionDataset, read_table
from urbanmoe.errors import RunError
from urbanmoe.readers import read_metrics, read_yaml
from urbanmoe.runtime.seeding import resolve_device, seed_everything
from urbanmoe.training import registry
from urbanmoe.training.folds import fit_folds
from urbanmoe.training.targets import forward_transform, inverse_transform

CHECK_TOLERANCE = 1e-3  # log1p units: the recomputed test predictions against the run's


@dataclass
class RunPrediction:
    """One run's predictions of every region of a dataset, on the log1p scale."""

    run_dir: Path
    model: str
    seed: int
    pred_log: np.ndarray  # (N, T)
    test: np.ndarray  # row indices of the run's test part
    chosen: dict[str, Any]


def run_folders(paths: list[Path]) -> list[Path]:
    """Run folders: each path is one (holding ``metrics.json``) or holds them one level down
    (``seed0``, ``seed1``...: all seeds of a model)."""
    runs: list[Path] = []
    for path in map(Path, paths):
        if (path / "metrics.json").is_file():
            runs.append(path)
            continue
        inner = sorted(p.parent for p in path.glob("*/metrics.json")
                       if not p.parent.name.startswith("."))
        if not inner:
            raise RunError(f"{path}: not a run folder (no metrics.json here or one level down)")
        runs.extend(inner)
    return runs


def read_run(run_dir: Path) -> tuple[dict[str, Any], int, str]:
    """A run's configuration (validated), seed and dataset folder."""
    path = run_dir / "config.yaml"
    if not path.is_file():
        raise RunError(f"{path}: file not found (a run folder written by urbanmoe train)")
    saved = read_yaml(path, error=RunError)
    metrics = read_metrics(run_dir / "metrics.json")
    if metrics.get("skipped"):
        raise RunError(f"{run_dir}: the run was skipped ({metrics['skipped']}); "
                       "nothing to predict with")
    dataset, seed = saved.pop("dataset", None), saved.pop("seed", None)
    if dataset is None or seed is None:
        raise RunError(f"{path}: keys 'dataset' and 'seed' missing")
    return validate(saved, str(path)), int(seed), str(dataset)


def _check_test(run_dir: Path, ds: RegionDataset, test: np.ndarray,
                pred_log: np.ndarray) -> None:
    """The run's test regions and predictions come out again, or the run does not fit."""
    path = run_dir / "predictions.parquet"
    if not path.is_file():
        raise RunError(f"{path}: file not found")
    saved = read_table(path)
    if "region_id" not in saved.columns:
        raise RunError(f"{path}: column 'region_id' missing")
    if saved["region_id"].astype(str).tolist() != ds.ids[test].astype(str).tolist():
        raise RunError(f"{path}: the run's test regions are not those of {ds.table_path} under "
                       "its split (a run of another dataset)")
    cols = [f"{t}_pred_log" for t in ds.tasks]
    missing = [c for c in cols if c not in saved.columns]
    if missing:
        raise RunError(f"{path}: column {missing[0]!r} missing (a run of other targets)")
    gap = float(np.nanmax(np.abs(saved[cols].to_numpy() - pred_log[test]), initial=0.0))
    if not gap <= CHECK_TOLERANCE:
        raise RunError(f"{path}: recomputed test predictions differ from the run's by {gap:.3g} "
                       f"(log1p units; over {CHECK_TOLERANCE}): the dataset, its features or "
                       "the code changed since training")


def predict_run(run_dir: Path, ds: RegionDataset, cache: Path | None,
                progress: bool = False) -> RunPrediction:
    """Every region's prediction by one run (see the module docstring). Under ``split.kind:
    kfold`` a labelled region gets the prediction of the fold that tested it, and an
    unlabelled one the mean over the folds' models."""
    run_dir = Path(run_dir)
    cfg, seed, _ = read_run(run_dir)
    weights = run_dir / "model.pt"
    state = read_checkpoint(weights, "the run's checkpoint", error=RunError)
    if not isinstance(state, dict):
        raise RunError(f"{weights}: the run's checkpoint holds a {type(state).__name__}, "
                       "not a state dict")
    spec = registry.get(cfg["model"]["name"])
    cfg = registry.configured(spec, cfg)
    reason = registry.skip_reason(spec, ds, cfg["model"])
    if reason is not None:
        raise RunError(f"{run_dir}: {reason}")
    seed_everything(seed, cfg["train"]["threads"])  # the order of evaluation/run.py
    device = resolve_device(cfg["train"]["device"])
    try:
        folds = fit_folds(ds, spec, cfg, seed, device, cache, progress, None, state)
    except ValueError as exc:
        if str(exc).startswith("model.pt:"):
            raise RunError(f"{weights}: {str(exc).removeprefix('model.pt: ')}") from exc
        raise
    preds = [f.pred_log for f in folds]  # (N, T) each: every region
    pred_log = np.mean(preds, axis=0)
    for f, pred in zip(folds, preds, strict=True):
        pred_log[f.prep.split.test] = pred[f.prep.split.test]
    test = np.concatenate([f.prep.split.test for f in folds])
    _check_test(run_dir, ds, test, pred_log)
    chosen = (folds[0].fitted.chosen if len(folds) == 1
              else {f"fold{k}": f.fitted.chosen for k, f in enumerate(folds)})
    return RunPrediction(run_dir, spec.name, seed, pred_log, test, chosen)


def prediction_table(ds: RegionDataset, runs: list[RunPrediction]) -> pd.DataFrame:
    """One row per region: the mean prediction over runs in the targets' units (the mean on the
    log1p scale, transformed back) and on the log1p scale, its spread over runs (standard
    deviation, log1p scale; 0 for one run), the label where there is one, and, for regions
    some run tested, the mean of those runs' predictions and the residual (label minus it, in
    units and on the log1p scale)."""
    tasks, transforms = ds.tasks, [ds.transforms[t] for t in ds.tasks]
    stack = np.stack([r.pred_log for r in runs])  # (R, N, T)
    mean_log = stack.mean(axis=0)
    tested = np.zeros((len(runs), len(ds)), dtype=bool)
    for i, r in enumerate(runs):
        tested[i, r.test] = True
    n_tested = tested.sum(axis=0)
    with np.errstate(invalid="ignore"):
        test_log = np.where(tested[..., None], stack, 0.0).sum(axis=0) / n_tested[:, None]
    y = ds.targets()
    y_log = forward_transform(y, transforms)
    cols: dict[str, Any] = {"region_id": ds.ids.astype(str)}
    if ds.coords is not None:
        cols["lat"], cols["lon"] = ds.coords[:, 0], ds.coords[:, 1]
    cols["labelled"] = np.isfinite(y).any(axis=1)
    cols["n_runs"] = len(runs)
    cols["n_test_runs"] = n_tested
    pred_units = inverse_transform(mean_log, transforms)
    test_units = inverse_transform(test_log, transforms)
    for j, task in enumerate(tasks):
        cols[f"{task}_pred"] = pred_units[:, j]
        cols[f"{task}_pred_log"] = mean_log[:, j]
        cols[f"{task}_pred_log_std"] = stack[:, :, j].std(axis=0)
        cols[f"{task}_true"] = y[:, j]
        cols[f"{task}_test_pred"] = np.where(n_tested > 0, test_units[:, j], np.nan)
        cols[f"{task}_residual"] = y[:, j] - cols[f"{task}_test_pred"]
        cols[f"{task}_residual_log"] = y_log[:, j] - np.where(n_tested > 0, test_log[:, j],
                                                               np.nan)
    return pd.DataFrame(cols)
