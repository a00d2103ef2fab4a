"""From a dataset and a seed to model-ready tensors: split, features, POI vector, targets.

Every statistic (feature and target means and scales) comes from the training rows only.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from urbanmoe.data.splits import Split, make_split
from urbanmoe.data.table import RegionDataset
from urbanmoe.features.base import encoder_settings, modality_features, poi_vector
from urbanmoe.training.loop import TrainData
from urbanmoe.training.targets import Standardizer, forward_transform

log = logging.getLogger(__name__)

FEATURE_CLIP = 10.0


@dataclass
class Prepared:
    """A dataset made ready for one seed's run."""

    ds: RegionDataset
    split: Split
    data: TrainData
    branch_dims: dict[str, int]
    n_poi: int
    y_log: np.ndarray  # (N, T) targets on the transformed (log1p) scale, NaN where missing
    target_scaler: Standardizer

    @property
    def tasks(self) -> list[str]:
        return self.ds.tasks

    def index(self, part: str) -> torch.Tensor:
        return torch.as_tensor(self.split.part(part), dtype=torch.long)

    def to_log_scale(self, pred_std: np.ndarray, columns: list[int] | None = None) -> np.ndarray:
        """Standardised predictions back to the log1p scale (optionally for some task columns)."""
        cols = list(range(len(self.tasks))) if columns is None else columns
        return pred_std * self.target_scaler.scale[cols] + self.target_scaler.mean[cols]


def _standardise(x: np.ndarray, train: np.ndarray) -> np.ndarray:
    return Standardizer.fit(x[train], clip=FEATURE_CLIP).transform(x).astype(np.float32)


def prepare(
    ds: RegionDataset,
    cfg: dict[str, Any],
    seed: int,
    cache_dir: Path | None,
    progress: bool = True,
) -> Prepared:
    """Split (``split.*``), features of the configured branches, POI vector and targets."""
    sp = cfg["split"]
    split = make_split(len(ds), ds.coords, sp["kind"], tuple(sp["fractions"]), seed,
                       sp["block_km"])
    inputs: dict[str, torch.Tensor] = {}
    branch_dims: dict[str, int] = {}
    for branch in cfg["model"]["branches"]:
        settings = encoder_settings(cfg["features"], branch)
        feats = modality_features(ds, branch, settings, cache_dir, progress)
        if feats is None:
            log.warning("%s: no %s modality; the %s branch is left out", ds.name, branch, branch)
            continue
        inputs[branch] = torch.from_numpy(_standardise(feats, split.train))
        branch_dims[branch] = feats.shape[1]
    if not branch_dims:
        raise ValueError(f"{ds.root}: none of the configured branches "
                         f"{cfg['model']['branches']} has data "
                         "(needs image_path, text or embeddings)")
    poi = poi_vector(ds) if cfg["model"]["use_poi"] else None
    if poi is not None:
        inputs["poi"] = torch.from_numpy(_standardise(poi, split.train))
    inputs["region_index"] = torch.arange(len(ds), dtype=torch.long)
    if ds.coords is not None:
        inputs["coords"] = torch.from_numpy(ds.coords.astype(np.float32))
    y_log = forward_transform(ds.targets(), [ds.transforms[t] for t in ds.tasks])
    scaler = Standardizer.fit(y_log[split.train])
    y_std = scaler.transform(y_log)
    observed = np.isfinite(y_std)
    data = TrainData(inputs, torch.from_numpy(np.where(observed, y_std, 0.0).astype(np.float32)),
                     torch.from_numpy(observed))
    return Prepared(ds, split, data, branch_dims, 0 if poi is None else poi.shape[1], y_log, scaler)
