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

from urbanmoe.data.geo import km_points
from urbanmoe.data.splits import Split, block_ids, make_split
from urbanmoe.data.table import RegionDataset
from urbanmoe.errors import DataError
from urbanmoe.features.base import LOCATION, encoder_settings, modality_features, poi_vector
from urbanmoe.features.plan import InputPlan, plan_inputs
from urbanmoe.features.spatial_lag import lag_features
from urbanmoe.training.loop import TrainData
from urbanmoe.training.targets import Standardizer, forward_transform

log = logging.getLogger(__name__)

FEATURE_CLIP = 10.0
PARTS = ("train", "val", "test")
MIN_PART_REGIONS = 5  # labelled regions each part of a split needs
MIN_PART_LABELS = 2  # labels each task needs in each part: R² is undefined on fewer


@dataclass
class Prepared:
    """A dataset made ready for one seed's run."""

    ds: RegionDataset
    split: Split
    data: TrainData
    branch_dims: dict[str, int]
    n_poi: int  # width of what joins z: p and the context feature groups
    y_log: np.ndarray  # (N, T) targets on the transformed (log1p) scale, NaN where missing
    target_scaler: Standardizer
    n_lag: int = 0  # width of the spatial-lag input appended to z (spatial.lag: context)

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


def group_out_blocks(ds: RegionDataset, split_cfg: dict[str, Any]) -> np.ndarray | None:
    """Block id of every region under a spatial-block split (``split.block_km``), the groups
    a training region leaves out of its own spatial context; None under a random split."""
    if split_cfg["kind"] != "spatial_block" or ds.coords is None:
        return None
    return block_ids(ds.coords, split_cfg["block_km"])


def spatial_lag_input(ds: RegionDataset, cfg: dict[str, Any], split: Split,
                      y_log: np.ndarray) -> np.ndarray:
    """The spatial-lag features (``features/spatial_lag.py``) standardised, with clipping, on
    the training rows; group-out by ``split.block_km`` blocks under a spatial-block split."""
    if ds.coords is None:
        raise DataError(f"{ds.root}: spatial.lag needs lat/lon columns in the region table")
    s = cfg["spatial"]
    lag = lag_features(km_points(ds.coords), y_log, split.train, s["lag_k"],
                       group_out_blocks(ds, cfg["split"]), s["lag_min_km"])
    return _standardise(lag, split.train)


def labelled_split(ds: RegionDataset, sp: dict[str, Any], seed: int, fold: int = 0) -> Split:
    """``split.*`` over the labelled regions (at least one target observed); under ``kfold``,
    fold ``fold``. An unlabelled region is in no part: never trained on or scored, predicted
    by ``urbanmoe predict``."""
    y = ds.targets()
    rows = np.flatnonzero(np.isfinite(y).any(axis=1))
    if len(rows) < 3 * MIN_PART_REGIONS:
        raise DataError(f"{ds.table_path}: {len(rows)} labelled region(s); a split needs at "
                        f"least {3 * MIN_PART_REGIONS} ({MIN_PART_REGIONS} per part)")
    coords = None if ds.coords is None else ds.coords[rows]
    part = make_split(len(rows), coords, sp["kind"], tuple(sp["fractions"]), seed,
                      sp["block_km"], sp["folds"], fold)
    split = Split(rows[part.train], rows[part.val], rows[part.test])
    sizes = [len(split.part(name)) for name in PARTS]
    if min(sizes) < MIN_PART_REGIONS:
        raise DataError(f"{ds.table_path}: {len(rows)} labelled regions split "
                        f"{'/'.join(map(str, sizes))} into train/val/test under split.kind "
                        f"{sp['kind']}; each part needs at least {MIN_PART_REGIONS} (more "
                        "regions, or other split.fractions or split.folds)")
    check_labels(ds, y, split, f"split.kind {sp['kind']}" + (
        f" fold {fold} of {sp['folds']}" if sp["kind"] == "kfold" else ""))
    return split


def check_labels(ds: RegionDataset, y: np.ndarray, split: Split, what: str) -> None:
    """Refuse, in one line naming the column, a task with fewer than ``MIN_PART_LABELS``
    labelled regions in any part: a model cannot learn it, or its R² is undefined.

    The user decides what to do (add labels, drop the target from ``dataset.yaml``, or change
    the split); no task is silently left out of the averages. ``y`` is ``ds.targets()``.
    """
    for j, task in enumerate(ds.tasks):
        counts = [int(np.isfinite(y[split.part(name), j]).sum()) for name in PARTS]
        if min(counts) < MIN_PART_LABELS:
            shown = "/".join(map(str, counts))
            raise DataError(
                f"{ds.table_path}: column {task!r}: {shown} labelled regions in train/val/test "
                f"under {what}; each part needs at least {MIN_PART_LABELS} (add labels, remove "
                f"the target from dataset.yaml, or change split.*)")


def fold_splits(ds: RegionDataset, sp: dict[str, Any], seed: int) -> list[Split]:
    """The splits one run trains on: ``split.folds`` of them under ``kfold`` (each labelled
    region tested once), else the one."""
    folds = sp["folds"] if sp["kind"] == "kfold" else 1
    return [labelled_split(ds, sp, seed, k) for k in range(folds)]


def context_vector(ds: RegionDataset, plan: InputPlan, branch_dims: dict[str, int],
                   use_poi: bool) -> np.ndarray | None:
    """What joins every branch's z (Section 2.3.2; ``model.use_poi`` switches it off): the POI
    vector p, unless the POI counts are (part of) a branch or a context group so that they are
    not given twice, then the context feature groups (``features/plan.py``); None when empty."""
    if not use_poi:
        return None
    groups = ds.feature_groups
    taken = {c for g in [*branch_dims, *plan.context] if g in groups for c in groups[g].columns}
    parts = []
    p = None if taken.intersection(ds.poi_columns) else poi_vector(ds)
    if p is not None:
        parts.append(p)
    parts += [groups[g].matrix(ds.table).astype(np.float32) for g in plan.context]
    return np.concatenate(parts, axis=1) if parts else None


def with_input(prep: Prepared, name: str, values: np.ndarray, *, branch: bool) -> Prepared:
    """``prep`` with one more (already standardised) input ``name``: a branch of its own
    (``branch``), else appended to every branch's z like the spatial lag (``n_lag``)."""
    from dataclasses import replace

    inputs = {**prep.data.inputs, name: torch.from_numpy(values)}
    data = TrainData(inputs, prep.data.y, prep.data.observed)
    if branch:
        return replace(prep, data=data, branch_dims={**prep.branch_dims,
                                                     name: values.shape[1]})
    return replace(prep, data=data, n_lag=values.shape[1])


def with_location(prep: Prepared, cfg: dict[str, Any]) -> Prepared:
    """``prep`` with the location branch (``features/location.py``) added, standardised on its
    training rows; ``prep`` itself when it has the branch or the city has no coordinates."""
    if LOCATION in prep.branch_dims or prep.ds.coords is None:
        return prep
    feats = modality_features(prep.ds, LOCATION, encoder_settings(cfg["features"], LOCATION),
                              None)
    return with_input(prep, LOCATION, _standardise(feats, prep.split.train), branch=True)


def prepare(
    ds: RegionDataset,
    cfg: dict[str, Any],
    seed: int,
    cache_dir: Path | None,
    progress: bool = True,
    split: Split | None = None,
) -> Prepared:
    """Split (``split.*``, unless ``split`` is given), features of the branches and the context
    vector (``features/plan.py``), targets and, with ``spatial.lag`` on, the spatial-lag input."""
    if split is None:
        split = labelled_split(ds, cfg["split"], seed)
    plan = plan_inputs(ds, cfg["model"])
    inputs: dict[str, torch.Tensor] = {}
    branch_dims: dict[str, int] = {}
    for branch in plan.branches:
        settings = encoder_settings(cfg["features"], branch)
        feats = modality_features(ds, branch, settings, cache_dir, progress)
        if feats is None:
            log.warning("%s: no %s modality; the %s branch is left out", ds.name, branch, branch)
            continue
        inputs[branch] = torch.from_numpy(_standardise(feats, split.train))
        branch_dims[branch] = feats.shape[1]
    # no branch at all serves the models that need none (the mean); the others are skipped
    # with the reason (training/registry.py: skip_reason)
    context = context_vector(ds, plan, branch_dims, cfg["model"]["use_poi"])
    if context is not None:
        inputs["poi"] = torch.from_numpy(_standardise(context, split.train))
    inputs["region_index"] = torch.arange(len(ds), dtype=torch.long)
    if ds.coords is not None:
        inputs["coords"] = torch.from_numpy(ds.coords.astype(np.float32))
    y_log = forward_transform(ds.targets(), [ds.transforms[t] for t in ds.tasks])
    n_lag, lag_mode = 0, cfg["spatial"]["lag"]
    if lag_mode != "none":
        lag = spatial_lag_input(ds, cfg, split, y_log)
        inputs["lag"] = torch.from_numpy(lag)
        if lag_mode == "branch":  # its own Sparse Multi-Expert module
            branch_dims["lag"] = lag.shape[1]
        else:  # "context": appended to every branch's z, like p
            n_lag = lag.shape[1]
    scaler = Standardizer.fit(y_log[split.train])
    y_std = scaler.transform(y_log)
    observed = np.isfinite(y_std)
    data = TrainData(inputs, torch.from_numpy(np.where(observed, y_std, 0.0).astype(np.float32)),
                     torch.from_numpy(observed))
    return Prepared(ds, split, data, branch_dims, 0 if context is None else context.shape[1],
                    y_log, scaler, n_lag)
