"""HAFusion's fitting (``model.name: hafusion``; the model is ``models/baselines/hafusion.py``).

As upstream's ``HAFusion_train.py``: Adam (L2 weight decay, not AdamW), one full-batch step per
epoch over every region (HAFusion is transductive: its width is the region count; it never sees
a label), the loss of ``hafusion_loss``. Upstream keeps ``model.out_feature()``, the embedding
of each epoch's *training* forward pass (dropout on), computed before that epoch's step; so do
we: the snapshot of epoch ``e`` (0-based) is the embedding after ``e`` updates, taken every
``snapshot_every`` epochs (upstream evaluates at ``epoch % 30 == 0``) and at the last epoch,
whose embedding is ``features``. With upstream's 31 epochs: snapshots 0 and 30.

Inputs from the dataset (``baselines.hafusion``, config.schema.yaml):

* ``views`` -- ``auto``: every feature group (raw values, as upstream's counts), then the
  mobility input relation (rows as they are); or a list of feature-group and relation names;
* ``mobility`` -- the relation the mobility loss reconstructs (divided by its mean, as upstream's
  ``utils.load_data``); ``auto``: the one named ``mobility``, else the dataset's only relation;
* ``mobility_input`` -- the relation whose rows form the mobility view (upstream:
  ``mob_dist.npy``, a second sample of the trips); null: ``mobility`` itself;
* ``similarity`` -- view -> relation used as that view's reconstruction target (upstream:
  ``poi_simi.npy``, ``landUse_simi.npy``); other views: the cosine similarity of their raw rows.
  The mobility input view is not reconstructed (the mobility loss covers it).

Seeded: the weights and the dropout masks come from ``torch.manual_seed(seed)`` inside a forked
RNG state, so the same seed on the CPU gives the same numbers and the caller's RNG is untouched.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from urbanmoe.data.relations import mobility_relation as pick_mobility
from urbanmoe.data.table import RegionDataset
from urbanmoe.errors import ConfigError, DataError
from urbanmoe.models.baselines.hafusion import (
    HAFusion,
    HAFusionSizes,
    attention_heads,
    cosine_matrix,
    hafusion_loss,
)
from urbanmoe.training.optim import adam
from urbanmoe.training.prepare import Prepared
from urbanmoe.training.registry import Representation

KEY = "baselines.hafusion"


def mobility_relation(ds: RegionDataset, wanted: str) -> str:
    """The relation the mobility loss reconstructs (``mobility``: ``auto`` or a name)."""
    return pick_mobility(ds, wanted, f"{KEY}.mobility")


def resolve_views(ds: RegionDataset, s: dict[str, Any]) -> tuple[list[str], str, str]:
    """(views in order, mobility relation, mobility input relation) of ``baselines.hafusion``."""
    mobility = mobility_relation(ds, s["mobility"])
    mob_input = s["mobility_input"] or mobility
    if mob_input not in ds.relations:
        raise ConfigError(f"{KEY}.mobility_input: {ds.name} has no relation {mob_input!r} (it "
                          f"has {sorted(ds.relations)})")
    views = [*ds.feature_groups, mob_input] if s["views"] == "auto" else list(s["views"])
    for v in views:
        if v not in ds.feature_groups and v not in ds.relations:
            raise ConfigError(f"{KEY}.views: {v!r} is neither a feature group "
                              f"{sorted(ds.feature_groups)} nor a relation "
                              f"{sorted(ds.relations)} of {ds.name}")
    if len(views) < 1:
        raise ConfigError(f"{KEY}.views: no view")
    for v, r in (s["similarity"] or {}).items():
        if v not in views or v == mob_input:
            raise ConfigError(f"{KEY}.similarity: {v!r} is not a reconstructed view (views "
                              f"{views}; the mobility input {mob_input!r} is not one)")
        if r not in ds.relations:
            raise ConfigError(f"{KEY}.similarity.{v}: {ds.name} has no relation {r!r}")
    return views, mobility, mob_input


def sizes(s: dict[str, Any]) -> HAFusionSizes:
    """The architecture sizes of ``baselines.hafusion`` (``blocks``: one int or three)."""
    blocks = s["blocks"]
    blocks = (blocks,) * 3 if isinstance(blocks, int) else tuple(blocks)
    return HAFusionSizes(dim=int(s["dim"]), blocks=blocks, heads=int(s["heads"]),
                         d_prime=int(s["d_prime"]), d_m=int(s["d_m"]), c=int(s["c"]),
                         dropout=float(s["dropout"]), feedforward=int(s["feedforward"]))


def inputs(ds: RegionDataset, views: list[str], mobility: str, mob_input: str,
           similarity: dict[str, str]) -> tuple[list[np.ndarray], list[np.ndarray | None],
                                                np.ndarray]:
    """Raw view rows, reconstruction targets (None: not reconstructed) and the mobility target
    divided by its mean, all float64 in table order."""
    xs, sims = [], []
    for v in views:
        if v in ds.feature_groups:
            x = ds.table[list(ds.feature_groups[v].columns)].to_numpy(dtype=np.float64)
        else:
            x = ds.relation(v)
        xs.append(x)
        if v == mob_input:
            sims.append(None)
        elif v in similarity:
            sims.append(ds.relation(similarity[v]))
        else:
            sims.append(cosine_matrix(torch.tensor(x)).numpy())
    trips = ds.relation(mobility)
    mean = float(trips.mean())
    if not mean > 0:
        raise DataError(f"{ds.relations[mobility].path}: relation {mobility!r} is all zeros; "
                        "HAFusion's mobility loss divides it by its mean")
    return xs, sims, trips / mean


def learn(prep: Prepared, b: dict[str, Any], seed: int, device: str | torch.device,
          progress: bool = True) -> Representation:
    """Fit HAFusion on every region's views; its embeddings at the snapshot epochs."""
    ds, s = prep.ds, b["hafusion"]
    dev = torch.device(device)
    views, mobility, mob_input = resolve_views(ds, s)
    xs, sims, trips = inputs(ds, views, mobility, mob_input, dict(s["similarity"] or {}))
    n, size = len(ds), sizes(s)
    heads = attention_heads(n, size.heads)

    def tensor(a: np.ndarray) -> torch.Tensor:
        return torch.tensor(a, dtype=torch.float32, device=dev)  # a copy: read-only inputs

    x_t = [tensor(x) for x in xs]
    sim_t = [None if m is None else tensor(m) for m in sims]
    trips_t = tensor(trips)
    epochs, every = int(s["epochs"]), int(s["snapshot_every"])
    history: list[float] = []
    snapshots: dict[int, np.ndarray] = {}
    forked = [dev.index or 0] if dev.type == "cuda" else []
    with torch.random.fork_rng(devices=forked):
        torch.manual_seed(seed)
        model = HAFusion(n, [x.shape[1] if v in ds.feature_groups else None
                             for v, x in zip(views, xs, strict=True)],
                         [m is not None for m in sims], size, heads=heads).to(dev)
        opt = adam(model.parameters(), lr=float(s["lr"]), weight_decay=float(s["weight_decay"]),
                   decoupled=False)
        model.train()
        bar = tqdm(range(epochs), desc=f"{ds.name} hafusion seed {seed}", unit="epoch",
                   disable=not progress, leave=False)
        for epoch in bar:
            out = model(x_t)
            loss = hafusion_loss(out, trips_t, sim_t)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            history.append(float(loss.detach()))
            if epoch % every == 0 or epoch == epochs - 1:
                snapshots[epoch] = out["embedding"].detach().float().cpu().numpy()
            bar.set_postfix(loss=f"{history[-1]:.4g}")
        bar.close()
    n_params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    note = f"HAFusion reimplemented; views {', '.join(views)}; mobility loss on {mobility}"
    if heads != size.heads:
        note += (f"; {heads} attention head{'s' if heads > 1 else ''} ({size.heads} do not "
                 f"divide {n} regions)")
    return Representation(features=snapshots[epochs - 1], n_params=n_params,
                          loss_history=history, note=note, snapshots=snapshots)
