"""Evaluation protocols as data (``protocol.name``, docs/protocols.md).

A published number means little without the protocol that made it: the folds, their shuffling,
the scale, the probe on a representation, which epoch. Each run names its protocol, and the run
folder, the table rows and the MLflow run record it with its settings.

* ``project`` (the default): ``split.*`` (under ``kfold``, K folds shuffled per seed), every
  choice (the epoch, alpha, k, the ``auto`` candidate) made on validation rows carved from the
  training part; the tables give mean and std over folds x seeds.
* ``hafusion``: HAFusion's (ICDE 2024, ``MiRuacle24/HAFusion`` ``tasks_*/*.py``) as its code
  runs it. ``KFold(folds, shuffle, random_state)`` over the regions in table order; raw counts;
  predictions below 0 set to 0; MAE, RMSE and R² once over the out-of-fold predictions of all
  folds pooled; the std is over repeated seeds. A representation model is scored by
  ``Ridge(alpha)`` on its embedding, unscaled (per task over that task's labelled regions, so
  the folds are exactly theirs); an end-to-end model by its own predictions, trained on the
  training folds with early stopping on validation rows carved from them (seeded). ``drop_zero``
  targets leave their zero-labelled regions out. ``select_epoch: test_folds`` keeps, per task,
  the checkpoint whose pooled R² on the test folds is best, as their training script does: a
  selection on test data, which every table names.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from urbanmoe.data.splits import Split
from urbanmoe.data.table import RegionDataset
from urbanmoe.errors import ConfigError, DataError
from urbanmoe.evaluation.metrics import multitask_metrics
from urbanmoe.training.prepare import labelled_split
from urbanmoe.training.registry import Representation
from urbanmoe.training.targets import forward_transform

PROTOCOLS = ("project", "hafusion")
TEST_SELECTION_NOTE = ("epoch picked per task on the test folds, as HAFusion's script does "
                       "(a selection on test data)")


def settings(cfg: dict[str, Any], ds: RegionDataset) -> dict[str, Any]:
    """What the run's protocol is, as recorded: its name and, for ``hafusion``, its settings
    (``protocol.hafusion``, overridden by the dataset's stated published protocol)."""
    name = cfg["protocol"]["name"]
    if name == "project":
        sp = cfg["split"]
        return {"name": name, "split": sp["kind"],
                **({"folds": sp["folds"]} if sp["kind"] == "kfold" else {}),
                "choices": "on validation rows of the training part"}
    stated = ((ds.meta.get("source") or {}).get("protocols") or {}).get(name) or {}
    defaults = cfg["protocol"][name]
    where = f"{ds.root / 'dataset.yaml'}: source.protocols.{name}"
    if not isinstance(stated, dict):
        raise DataError(f"{where}: a mapping of protocol settings, got {stated!r}"[:300])
    for key, value in stated.items():
        if key not in defaults:
            raise DataError(f"{where}: unknown key {key!r} (known: {sorted(defaults)})")
        kind = type(defaults[key])
        fits = (isinstance(value, (int, float)) and not isinstance(value, bool)
                if kind is float else isinstance(value, kind)
                and (kind is bool or not isinstance(value, bool)))
        if not fits:
            raise DataError(f"{where}.{key}: {value!r} is not a {kind.__name__} "
                            f"(like {defaults[key]!r})"[:300])
    out = {"name": name, **defaults, **stated}
    unknown = sorted(set(out["drop_zero"]) - set(ds.tasks))
    if unknown:
        raise ConfigError(f"protocol.hafusion.drop_zero: {unknown[0]!r} is not a target of "
                          f"{ds.name} ({ds.tasks})")
    out["stated_by_dataset"] = sorted(stated)
    return out


def kfold_parts(n: int, p: dict[str, Any]) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train, test) positions of scikit-learn's ``KFold`` over ``n`` rows, exactly as theirs."""
    from sklearn.model_selection import KFold

    if n < p["folds"]:
        raise ConfigError(f"protocol.hafusion.folds {p['folds']}: only {n} labelled regions")
    kf = KFold(n_splits=p["folds"], shuffle=p["shuffle"],
               random_state=p["random_state"] if p["shuffle"] else None)
    return list(kf.split(np.zeros((n, 1))))


def without_zeros(ds: RegionDataset, p: dict[str, Any]) -> RegionDataset:
    """``ds`` with the zero labels of ``drop_zero`` targets missing (neither trained on nor
    scored); the dataset folder is not touched."""
    if not p["drop_zero"]:
        return ds
    table = ds.table.copy()
    for task in p["drop_zero"]:
        table.loc[table[task] == 0, task] = np.nan
    return replace(ds, table=table)


def splits(ds: RegionDataset, cfg: dict[str, Any], p: dict[str, Any], seed: int) -> list[Split]:
    """The folds an end-to-end model trains on: their KFold over the labelled regions in table
    order as the test parts, each fold's validation rows drawn (seeded) from its training folds
    in the proportion of ``split.fractions``."""
    first = labelled_split(ds, {**cfg["split"], "kind": "random"}, seed)  # checks the labels
    rows = np.sort(np.concatenate([first.train, first.val, first.test]))
    f = cfg["split"]["fractions"]
    out = []
    for k, (tr, te) in enumerate(kfold_parts(len(rows), p)):
        order = np.random.default_rng([seed, k]).permutation(tr)
        n_val = max(1, int(round(len(tr) * f[1] / (f[0] + f[1]))))
        out.append(Split(np.sort(rows[order[n_val:]]), np.sort(rows[order[:n_val]]),
                         rows[te]))
    return out


def ridge_probe(features: np.ndarray, y: np.ndarray, p: dict[str, Any]) -> np.ndarray:
    """Out-of-fold predictions of ``Ridge(alpha)`` on ``features`` for one raw target ``y``
    (N,), over its labelled regions in table order (NaN elsewhere), clipped at 0 if set."""
    from sklearn.linear_model import Ridge

    rows = np.flatnonzero(np.isfinite(y))
    x = features[rows].astype(np.float64)
    pred = np.full(len(y), np.nan)
    for tr, te in kfold_parts(len(rows), p):
        model = Ridge(alpha=p["ridge_alpha"]).fit(x[tr], y[rows[tr]])
        pred[rows[te]] = model.predict(x[te])
    if p["clip_at_zero"]:
        pred = np.where(np.isfinite(pred), np.maximum(pred, 0.0), np.nan)
    return pred


def probe_representation(rep: Representation, y_raw: np.ndarray, tasks: list[str],
                         p: dict[str, Any]) -> tuple[np.ndarray, dict[str, int | None], list[str]]:
    """The protocol's out-of-fold predictions (N, T) of a representation, the checkpoint used
    per task (None: the final features) and the notes the tables carry."""
    candidates: dict[int | None, np.ndarray] = {None: rep.features}
    if p["select_epoch"] == "test_folds":
        candidates.update(rep.snapshots)
    pred = np.full(y_raw.shape, np.nan)
    chosen: dict[str, int | None] = {}
    for j, task in enumerate(tasks):
        best = -np.inf
        for epoch, feats in candidates.items():
            guess = ridge_probe(feats, y_raw[:, j], p)
            r2 = multitask_metrics(y_raw[:, [j]], guess[:, None], [task])[task]["r2"]
            if epoch is None or r2 > best:  # the final features unless a checkpoint beats them
                best, chosen[task], pred[:, j] = r2, epoch, guess
    notes = [f"Ridge(alpha={p['ridge_alpha']:g}) on the embedding, raw counts, "
             f"{p['folds']} folds{' shuffled' if p['shuffle'] else ' in table order'}"]
    if p["select_epoch"] == "test_folds":
        notes.append(TEST_SELECTION_NOTE)
    return pred, chosen, notes


def pooled(y_raw: np.ndarray, pred_raw: np.ndarray, ds: RegionDataset) -> dict[str, Any]:
    """MAE, RMSE and R² once over the pooled out-of-fold predictions (raw scale) and, beside
    them, on each target's transformed scale (log1p: what the project's tables average)."""
    y = np.where(np.isfinite(pred_raw), y_raw, np.nan)
    transforms = [ds.transforms[t] for t in ds.tasks]
    log_pred = forward_transform(np.maximum(pred_raw, 0.0), transforms)
    return {"original_scale": multitask_metrics(y, pred_raw, ds.tasks),
            "log_scale": multitask_metrics(forward_transform(y, transforms), log_pred,
                                           ds.tasks)}
