"""``model.name: auto``: per task, what validation prefers among a documented set of candidates.

Not in the paper. Which model wins depends on the city and the split (``docs/spatial.md``), so
``auto`` fits every candidate the dataset can serve (``CANDIDATES``):

* ``knn_tuned``: kNN on coordinates, k and weighting tuned on validation (needs lat/lon);
* ``lightgbm``: gradient boosting on every modality (and lat/lon where there are some);
* ``urbanmoe``: the paper's model on every modality;
* ``urbanmoe_lag``: UrbanMoE with the spatial lag of the training labels appended to z
  (``spatial.lag: context``; needs lat/lon);
* ``urbanmoe_location``: UrbanMoE with the location encoding as a branch of its own
  (``features/location.py``; needs lat/lon or a geometry file);

and, per task, the average of the candidate best on validation with one other,
``w * a + (1 - w) * b`` with ``w`` on ``ensemble.WEIGHT_GRID``, the partner being the one whose
average scores best: not always the second best, which may be the best's near twin (UrbanMoE
and UrbanMoE + location) where a model of other inputs averages better. A candidate is scored
by its R² on the task's observed validation rows; an average, whose weight is itself fitted on
validation, by two-fold cross-fitting within them (the weight fitted on one half and scored on
the other, so that fitting it does not flatter it). The best score wins, ties going to the
earlier candidate; the chosen average's weight is then refitted on every validation row. Test
labels are never read.

``model.location`` decides which candidates carry the location branch: ``auto`` (the default)
only ``urbanmoe_location``, so that a model of place (the kNN, UrbanMoE + location) can be
averaged with models of the modalities; ``true`` all of them (``urbanmoe_location`` would then
be ``urbanmoe`` again, and is left out); ``false`` none (the paper's configuration; it is left
out too).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import torch

from urbanmoe.data.splits import Split
from urbanmoe.errors import ConfigError, DataError
from urbanmoe.features.spatial_lag import TRANSDUCTIVE_NOTE
from urbanmoe.training import ensemble, registry
from urbanmoe.training.fitting import Fitted, fit_model, sub_state
from urbanmoe.training.prepare import Prepared, spatial_lag_input, with_input, with_location
from urbanmoe.training.scores import regression_metrics

# (id, model.name, spatial.* it sets)
CANDIDATES: tuple[tuple[str, str, dict[str, str]], ...] = (
    ("knn_tuned", "knn_tuned", {}),
    ("lightgbm", "lightgbm", {}),
    ("urbanmoe", "urbanmoe", {}),
    ("urbanmoe_lag", "urbanmoe", {"lag": "context"}),
    ("urbanmoe_location", "urbanmoe_location", {}),
)
LOCATION_CANDIDATE = "urbanmoe_location"  # the candidate that is the location branch


def candidate_config(cfg: dict[str, Any], model: str, spatial: dict[str, str]) -> dict[str, Any]:
    """The configuration a candidate runs under: the location branch only with
    ``model.location: true`` (``urbanmoe_location`` turns it on itself), and the ``model.*``
    settings its model implies (``registry.configured``)."""
    return registry.configured(registry.get(model), {
        **cfg, "model": {**cfg["model"], "name": model,
                         "location": cfg["model"]["location"] is True},
        "spatial": {**cfg["spatial"], "lag": "none", "ensemble": "none", **spatial}})


def candidates(cfg: dict[str, Any]) -> list[tuple[str, str, dict[str, str]]]:
    """``CANDIDATES`` under ``model.location`` (see the module docstring)."""
    if cfg["model"]["location"] == "auto":
        return list(CANDIDATES)
    return [c for c in CANDIDATES if c[0] != LOCATION_CANDIDATE]


def _with_lag(prep: Prepared, cfg: dict[str, Any]) -> Prepared:
    """``prep`` with the spatial-lag input appended to z (``spatial.lag: context``)."""
    lag = spatial_lag_input(prep.ds, cfg, prep.split, prep.y_log)
    return with_input(prep, "lag", lag, branch=False)


def _r2(y: np.ndarray, pred: np.ndarray) -> float:
    r2 = regression_metrics(y, pred)["r2"]
    return float("-inf") if np.isnan(r2) else r2


def _weight(a: np.ndarray, b: np.ndarray, y: np.ndarray) -> float:
    """The weight of ``a`` in ``w * a + (1 - w) * b`` minimising the MSE on these rows."""
    coef = ensemble.choose_combination("average", a[:, None], b[:, None], y[:, None],
                                       np.ones((len(y), 1), dtype=bool))
    return coef[0]["model"]


def cross_fitted_r2(a: np.ndarray, b: np.ndarray, y: np.ndarray, half: np.ndarray) -> float:
    """R² of the weighted average with the weight fitted on one half of the rows and applied
    to the other (both ways round)."""
    pred = np.empty_like(y)
    for h in (False, True):
        fit, use = half == h, half != h
        w = _weight(a[fit], b[fit], y[fit]) if fit.any() else 1.0
        pred[use] = w * a[use] + (1 - w) * b[use]
    return _r2(y, pred)


def choose(val_preds: dict[str, np.ndarray], y: np.ndarray, observed: np.ndarray,
           tasks: list[str], seed: int) -> tuple[list[dict[str, float]], dict[str, Any]]:
    """Per task, the candidates' weights (one candidate, or the pair's average) and the
    validation scores behind the choice. ``val_preds[c]``, ``y``, ``observed``: (n_val, T)."""
    half = np.random.default_rng(seed).permutation(len(y)) % 2 == 0
    weights, scores = [], {}
    for j, task in enumerate(tasks):
        o = observed[:, j]
        score = {c: _r2(y[o, j], p[o, j]) for c, p in val_preds.items()}
        ranked = sorted(score, key=lambda c: -score[c])  # stable: ties keep candidate order
        a = ranked[0]
        pick = {a: 1.0}
        if len(ranked) > 1 and o.sum() >= 4:
            partner = {}
            for b in ranked[1:]:  # the best candidate averaged with each other one
                partner[b] = cross_fitted_r2(val_preds[a][o, j], val_preds[b][o, j], y[o, j],
                                             half[o])
                score[f"{a}+{b}"] = partner[b]
            b = max(partner, key=lambda c: partner[c])  # ties: the better-ranked partner
            if partner[b] > score[a]:
                w = _weight(val_preds[a][o, j], val_preds[b][o, j], y[o, j])
                pick = {a: w, b: round(1.0 - w, 2)}
        weights.append(pick)
        scores[task] = {c: round(s, 4) for c, s in score.items()}
    return weights, scores


def _blend(weights: list[dict[str, float]], preds: dict[str, np.ndarray]) -> np.ndarray:
    return np.stack([sum(w * preds[c][:, j] for c, w in pick.items())
                     for j, pick in enumerate(weights)], axis=1)


def _describe(pick: dict[str, float]) -> str:
    return " + ".join(f"{w:g} {c}" for c, w in pick.items()) if len(pick) > 1 else next(iter(pick))


def fit_auto(prep: Prepared, cfg: dict[str, Any], seed: int, device: torch.device,
             progress: bool, state: dict[str, torch.Tensor] | None = None) -> Fitted:
    """Fit every candidate the dataset can serve, choose per task on validation (see the
    module docstring) and predict the test split. ``state`` (a run's ``model.pt``) holds the
    torch candidates' weights under ``<candidate>.`` prefixes."""
    s = cfg["spatial"]
    if s["lag"] != "none" or s["ensemble"] != "none":
        raise ConfigError("model.name auto: it chooses its own spatial context; leave "
                         "spatial.lag and spatial.ensemble at none")
    va, te = prep.split.val, prep.split.test
    both = replace(prep, split=Split(prep.split.train, va, np.concatenate([va, te])))
    val_preds, test_preds, fitted = {}, {}, {}
    for cid, model, spatial in candidates(cfg):
        ccfg = candidate_config(cfg, model, spatial)
        spec = registry.get(model)
        if registry.skip_reason(spec, prep.ds, ccfg["model"]) is not None or (
                spatial.get("lag") and prep.ds.coords is None):
            continue
        cprep = _with_lag(both, ccfg) if spatial.get("lag") else both
        if ccfg["model"]["location"] is True:
            cprep = with_location(cprep, ccfg)
        out = fit_model(spec, cprep, ccfg, seed, device, progress,
                        state=sub_state(state, cid))
        val_preds[cid], test_preds[cid] = out.pred_std[:len(va)], out.pred_std[len(va):]
        fitted[cid] = out
    if not fitted:
        raise DataError(f"model.name auto: {prep.ds.name} serves none of the candidates "
                         f"{[c for c, _, _ in CANDIDATES]}")
    y, observed = prep.data.y.numpy()[va], prep.data.observed.numpy()[va]
    weights, scores = choose(val_preds, y, observed, prep.tasks, seed)
    used = {c for pick in weights for c in pick}
    chosen = {t: _describe(pick) for t, pick in zip(prep.tasks, weights, strict=True)}
    out = Fitted(_blend(weights, test_preds), sum(fitted[c].n_params for c in used),
                 models={f"{c}/{k}": m for c, f in fitted.items() for k, m in f.models.items()},
                 fits={f"{c}/{k}": r for c, f in fitted.items() for k, r in f.fits.items()},
                 chosen={**chosen, "validation_r2": scores,
                         **{f"{c}_chosen": fitted[c].chosen for c in sorted(used)}},
                 notes=["best on validation per task: "
                        + "; ".join(f"{t} {d}" for t, d in chosen.items())],
                 val_pred_std=_blend(weights, val_preds))
    if "urbanmoe_lag" in used:
        out.notes.append(TRANSDUCTIVE_NOTE)
    out.candidates = test_preds
    return out
