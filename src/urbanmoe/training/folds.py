"""Fitting the splits of one run: its only split, or each fold under ``split.kind: kfold``.

What ``urbanmoe train`` (``evaluation/run.py``) scores and writes into a run folder, and what
``urbanmoe predict`` (``training/predict.py``) applies with a run's trained weights.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from urbanmoe.data.splits import Split
from urbanmoe.data.table import RegionDataset
from urbanmoe.runtime.efficiency import Meter, measure
from urbanmoe.runtime.seeding import seed_everything
from urbanmoe.training import registry
from urbanmoe.training.fitting import Fitted, fit_model, sub_state
from urbanmoe.training.prepare import Prepared, fold_splits, prepare


def _routing(prep: Prepared, fitted: Fitted) -> dict[str, np.ndarray]:
    """Router weights, expert and fused outputs on the test split (models with routers)."""
    routing: dict[str, np.ndarray] = {}
    if fitted.data is None:
        return routing
    test = prep.index("test").to(fitted.data.y.device)
    with torch.no_grad():
        for key, model in fitted.models.items():
            model.eval()
            out = model(fitted.data.batch(test))
            if not hasattr(out, "gates"):
                continue
            for branch in out.gates:
                routing[f"{key}/{branch}/gates"] = out.gates[branch].cpu().numpy()
                routing[f"{key}/{branch}/experts"] = out.expert_outputs[branch].cpu().numpy()
                routing[f"{key}/{branch}/fused"] = out.fused[branch].cpu().numpy()
            routing[f"{key}/expert_labels"] = np.array(
                model.layout.expert_labels(model.task_names))
    return routing


@dataclass
class FoldRun:
    """One fitted split of a run (the run's only one, or one fold under ``split.kind: kfold``)."""

    prep: Prepared
    fitted: Fitted
    routing: dict[str, np.ndarray]
    meter: Meter

    @property
    def pred_log(self) -> np.ndarray:
        return self.prep.to_log_scale(self.fitted.pred_std)


def fit_folds(ds: RegionDataset, spec: registry.ModelSpec, cfg: dict[str, Any], seed: int,
              device: torch.device, cache: Path | None, progress: bool,
              split: Split | list[Split] | None, state: dict[str, torch.Tensor] | None = None
              ) -> list[FoldRun]:
    """Prepare and fit every split of the run (``split`` if given: one, or the folds of an
    evaluation protocol); the RNGs are seeded afresh before each fold, so that a fold's result
    does not depend on those before it.

    Given a run's ``state`` (``urbanmoe predict``), the torch modules take its weights instead
    of training, and every region is predicted, not the test part alone (no routing)."""
    splits = (fold_splits(ds, cfg["split"], seed) if split is None
              else list(split) if isinstance(split, list) else [split])
    out = []
    for k, fold_split in enumerate(splits):
        if k:
            seed_everything(seed, cfg["train"]["threads"])
        prep = prepare(ds, cfg, seed, cache, progress, fold_split)
        fit_on = prep
        if state is not None:
            fit_on = replace(prep, split=Split(fold_split.train, fold_split.val,
                                               np.arange(len(ds))))
        with measure(device) as meter:
            fitted = fit_model(spec, fit_on, cfg, seed, device, progress,
                               state=state if len(splits) == 1 else sub_state(state, f"fold{k}"))
        out.append(FoldRun(prep, fitted, {} if state is not None else _routing(prep, fitted),
                           meter))
    return out
