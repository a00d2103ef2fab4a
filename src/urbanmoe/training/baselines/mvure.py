"""MVURE's fitting (``models/baselines/mvure.py``): graphs from a dataset's relations and feature
groups, full-batch Adam, snapshots.

What comes from where (``baselines.mvure.*``, defaults = upstream ``mingyangzhang/mv-region-
embedding``):

* the **mobility** views read one relation (``mobility``; ``auto``: the relation named
  ``mobility``, else the only relation whose name does not end in ``_similarity``), divided by
  its mean for the loss, thresholded to its top ``mobility_k`` (20) per row and column for the
  attention mask;
* the **attribute** views (``graphs``; ``auto``: every relation named ``*_similarity``, else
  the cosine similarity of each feature group's raw rows) each read a similarity matrix: in
  full for the loss, thresholded to its top ``graph_k`` (15) for the mask. A name in ``graphs``
  is a relation or a feature group (its raw rows' cosine similarity). Upstream's second
  attribute view is check-in similarity; a label never becomes a graph here (on HAFusion's
  cities, ``landuse_similarity`` takes its place);
* node inputs: ``input_dim`` (250) uniform noise standardised per row, as upstream;
* Adam, ``lr`` 1e-3, ``weight_decay`` 0 (upstream's weight-decay term is commented out),
  ``epochs`` 5000 full-batch steps, attention dropout 0.2 while training.

The objective sees no label and every region (unsupervised, as upstream); the run's head is then
fitted on the features as for every representation baseline. A seed fixes the noise inputs, the
initial weights and the dropout masks, so on CPU the same seed gives the same features.
Snapshots: the embedding (evaluation mode, no dropout) every ``snapshot_every`` epochs and at
the end; ``features`` is the last.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from urbanmoe.data.relations import SIMILARITY
from urbanmoe.data.relations import mobility_relation as pick_mobility
from urbanmoe.data.table import RegionDataset
from urbanmoe.errors import ConfigError, DataError
from urbanmoe.models.baselines.mvure import (
    MVURE,
    attention_bias,
    objective,
    random_inputs,
    top_k_graph,
)
from urbanmoe.training.optim import adam
from urbanmoe.training.prepare import Prepared
from urbanmoe.training.registry import Representation


def mobility_relation(ds: RegionDataset, choice: str) -> str:
    """The relation the mobility views read (``baselines.mvure.mobility``)."""
    return pick_mobility(ds, choice, "baselines.mvure.mobility")


def graph_names(ds: RegionDataset, choice: str | list[str], mobility: str) -> list[str]:
    """The relations or feature groups of the attribute views (``baselines.mvure.graphs``)."""
    if choice != "auto":
        names = [choice] if isinstance(choice, str) else list(choice)
        for g in names:
            if g not in ds.relations and g not in ds.feature_groups:
                raise ConfigError(f"baselines.mvure.graphs: {g!r} is neither a relation nor a "
                                  f"feature group of {ds.name} (relations {list(ds.relations)}, "
                                  f"groups {list(ds.feature_groups)})")
        return names
    sims = [r for r in ds.relations if r.endswith(SIMILARITY) and r != mobility]
    return sims or list(ds.feature_groups)


def cosine_similarity(x: np.ndarray) -> np.ndarray:
    """(n, n) cosine similarity of the rows of ``x``; a row of zeros is similar to nothing."""
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    u = np.divide(x, norm, out=np.zeros_like(x), where=norm > 0)
    return u @ u.T


def similarity(ds: RegionDataset, name: str) -> np.ndarray:
    """An attribute view's (n, n) similarity: the relation ``name``, or the cosine similarity of
    feature group ``name``'s raw rows (as HAFusion's ``*_simi.npy`` are of their counts)."""
    if name in ds.relations:
        return ds.relation(name)
    cols = list(ds.feature_groups[name].columns)
    return cosine_similarity(np.nan_to_num(ds.table[cols].to_numpy(np.float64)))


def learn(prep: Prepared, b: dict[str, Any], seed: int, device: torch.device | str,
          progress: bool = True) -> Representation:
    """MVURE's embedding of every region (table order), from ``baselines.mvure``."""
    return fit(prep.ds, b["mvure"], seed, device, progress)


def fit(ds: RegionDataset, s: dict[str, Any], seed: int, device: torch.device | str = "cpu",
        progress: bool = False) -> Representation:
    """MVURE on ``ds`` with settings ``s`` (``baselines.mvure``): the features, snapshots and
    per-epoch objective."""
    dev = torch.device(device)
    mob = mobility_relation(ds, s["mobility"])
    flow = ds.relation(mob)
    if not flow.sum() > 0:
        raise DataError(f"{ds.name}: relation {mob!r} is all zeros; MVURE's mobility loss needs "
                        "trips")
    names = graph_names(ds, s["graphs"], mob)
    sims = [similarity(ds, g) for g in names]
    graphs = [top_k_graph(flow, s["mobility_k"])] * 2 + [top_k_graph(m, s["graph_k"])
                                                         for m in sims]
    n = len(ds)
    biases = torch.stack([attention_bias(g) for g in graphs]).to(dev)
    flow_t = torch.from_numpy((flow / flow.mean()).astype(np.float32)).to(dev)
    sims_t = torch.from_numpy(np.stack(sims).astype(np.float32) if sims
                              else np.zeros((0, n, n), np.float32)).to(dev)
    x = random_inputs(n, int(s["input_dim"]), seed).to(dev)
    every, epochs = int(s["snapshot_every"]), int(s["epochs"])
    history: list[float] = []
    snapshots: dict[int, np.ndarray] = {}
    with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
        torch.manual_seed(seed)
        model = MVURE(int(s["input_dim"]), len(graphs), heads=int(s["heads"]),
                      head_dim=int(s["head_dim"]), share_dim=int(s["share_dim"]),
                      share_heads=int(s["share_heads"]), share_over=s["share_over"],
                      alpha=float(s["alpha"]), beta=float(s["beta"]),
                      coef_dropout=float(s["coef_dropout"])).to(dev)
        opt = adam(model.parameters(), lr=float(s["lr"]), weight_decay=float(s["weight_decay"]),
                   decoupled=False)
        bar = tqdm(range(1, epochs + 1), desc="mvure", unit="epoch", disable=not progress,
                   leave=False)
        for epoch in bar:
            model.train()
            _, views = model(x, biases)
            loss = objective(views, flow_t, sims_t)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            history.append(float(loss.detach()))
            if epoch % every == 0 or epoch == epochs:
                snapshots[epoch] = _embed(model, x, biases)
                bar.set_postfix(loss=f"{history[-1]:.4g}")
        bar.close()
    n_params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    note = (f"MVURE, mobility {mob!r} (top {s['mobility_k']}) x2 + "
            f"{', '.join(repr(g) for g in names) or 'no attribute view'} (top {s['graph_k']}), "
            f"{epochs} epochs, noise inputs")
    return Representation(features=snapshots[epochs], n_params=n_params, loss_history=history,
                          note=note, snapshots=snapshots)


def _embed(model: MVURE, x: torch.Tensor, biases: torch.Tensor) -> np.ndarray:
    model.eval()
    with torch.no_grad():
        emb, _ = model(x, biases)
    return emb.float().cpu().numpy()
