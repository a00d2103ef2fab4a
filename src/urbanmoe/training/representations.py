"""The representations of Table 2's ``representation`` baselines, learned once and cached.

A representation (UrbanCLIP's contrastive embedding, Tile2Vec's, a ResNet-18 trained from
scratch, ...) depends on the dataset, the split, the seed, its own settings and the device it
was learned on, and not on the regression head that is trained on it afterwards. It is keyed by
exactly those and cached as one ``.npz`` under ``baselines.cache_dir``, so

* UrbanCLIP (ST) and UrbanCLIP (MT), which learn the same representation, learn it once;
* a rerun that changes only the head (``baselines.head_hidden``, ``train.*``) reads it.

Reading it back gives the same float32 features, so the runs' numbers do not change.
Tiles are identified by their paths in the region table (as the feature cache does): a tile
replaced in place under the same name is not noticed; clear the cache folder then.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from urbanmoe.binaries import read_cached, read_npz
from urbanmoe.config import config_hash
from urbanmoe.io import atomic_path, sha256_file
from urbanmoe.training.prepare import Prepared
from urbanmoe.training.registry import ModelSpec, Representation

log = logging.getLogger(__name__)

#: ``baselines.*`` keys that shape no representation (the head, the cache itself)
NOT_REPRESENTATION = ("head_hidden", "cache_dir")


def _digest(*arrays: np.ndarray) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:16]


def representation_key(spec: ModelSpec, prep: Prepared, b: dict[str, Any], seed: int,
                       device: torch.device) -> str:
    """What the representation depends on: the learner, the dataset (folder, table, labels as
    transformed, its relations' files), the split, the seed, its settings and the device type;
    a ``split_free`` learner's (HAFusion's) not on the labels or the split, so K folds learn it
    once."""
    ds, s = prep.ds, prep.split
    seen = {} if spec.split_free else {"labels": _digest(prep.y_log),
                                       "split": _digest(s.train, s.val, s.test)}
    if ds.relations:  # read by the graph learners; a file replaced in place is a new key
        seen["relations"] = {n: sha256_file(r.path) for n, r in ds.relations.items()}
    return config_hash({
        "learn": spec.target, "root": str(Path(ds.root).resolve()), "meta": ds.meta,
        "table": sha256_file(ds.table_path), **seen, "seed": seed, "device": device.type,
        "settings": {k: v for k, v in b.items() if k not in NOT_REPRESENTATION},
        "torch": torch.__version__})


def cache_path(spec: ModelSpec, prep: Prepared, b: dict[str, Any], seed: int,
               device: torch.device) -> Path | None:
    """Where the representation is cached (None: ``baselines.cache_dir`` is off)."""
    folder = b.get("cache_dir")
    if not folder:
        return None
    learner = spec.target.split(":")[0].rsplit(".", 1)[-1]  # e.g. "urbanclip", "tile2vec"
    key = representation_key(spec, prep, b, seed, device)
    return Path(folder) / f"{learner}-seed{seed}-{key}.npz"


def learned(spec: ModelSpec, prep: Prepared, b: dict[str, Any], seed: int,
            device: torch.device, progress: bool = True) -> Representation:
    """``spec``'s representation of every region: from the cache when there, else learned
    (and cached)."""
    path = cache_path(spec, prep, b, seed, device)
    keys = ("features", "n_params", "loss_history", "note")
    z = None if path is None else read_cached(
        path, lambda p: read_npz(p, "a cached representation", keys))
    if z is not None:
        log.info("%s: representation from cache %s", spec.name, path)
        snaps = read_npz(path, "a cached representation")  # older entries hold none
        epochs = snaps.get("snapshot_epochs", np.zeros(0, dtype=np.int64)).tolist()
        return Representation(features=z["features"], n_params=int(z["n_params"]),
                              loss_history=z["loss_history"].tolist(), note=str(z["note"]),
                              snapshots={int(e): snaps["snapshots"][k]
                                         for k, e in enumerate(epochs)})
    rep: Representation = spec.function()(prep, b, seed, device, progress)
    if path is not None:
        with atomic_path(path, "cache") as tmp, open(tmp, "wb") as f:
            np.savez(f, features=rep.features, n_params=rep.n_params,
                     loss_history=np.asarray(rep.loss_history, dtype=np.float64),
                     note=np.asarray(rep.note),
                     snapshot_epochs=np.asarray(sorted(rep.snapshots), dtype=np.int64),
                     snapshots=np.stack([rep.snapshots[e] for e in sorted(rep.snapshots)])
                     if rep.snapshots else np.zeros((0, *rep.features.shape), np.float32))
    return rep
