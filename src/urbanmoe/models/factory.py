"""Models built by name from ``model.*`` settings (after open_clip's factory of named configs).

``urbanmoe`` is the multi-task model of Section 2; ``urbanmoe_st`` is UrbanMoE (ST) of Section
3.3: one model per task with ``st_experts`` experts and its own head, trained separately.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch

from urbanmoe.features.base import LOCATION
from urbanmoe.models.experts import ExpertShape
from urbanmoe.models.layout import ExpertLayout
from urbanmoe.models.region import build_region_embedding
from urbanmoe.models.urbanmoe import UrbanMoE, build_single_task

log = logging.getLogger(__name__)


def region_module(m: dict[str, Any], n_regions: int, coords: np.ndarray | None,
                  seed: int) -> torch.nn.Module | None:
    """The region embedding r of Eq. 1 as configured (None when ``use_region`` is off)."""
    if not m["use_region"]:
        return None
    kind = m["region_embedding"]
    if coords is None and kind != "lookup":
        log.warning("model.region_embedding %s needs lat/lon; using the per-region lookup", kind)
        kind = "lookup"
    opts: dict[str, Any] = {}
    if kind in ("grid", "smooth_grid"):
        opts["cell_km"] = m["region_cell_km"]
    if kind == "fourier":
        opts["seed"] = seed
    return build_region_embedding(kind, m["d_r"], n_regions, coords, **opts)


def expert_shape(m: dict[str, Any]) -> ExpertShape:
    """One expert of Eq. 2 as configured: ``expert_hidden``, ``expert_out``, φ and σ."""
    return ExpertShape(m["expert_hidden"], m["expert_out"], m["activation"], m["output_norm"])


def branch_shapes(m: dict[str, Any]) -> dict[str, ExpertShape]:
    """The branches whose experts differ from ``expert_shape``: the location branch's have
    ``location_hidden`` hidden units (its input is a smooth code of two numbers, not an
    embedding; narrower experts keep its cost a fraction of an image branch's)."""
    shape = expert_shape(m)
    return {LOCATION: ExpertShape(m["location_hidden"], shape.d_out, shape.activation,
                                  shape.output_norm)}


def configured_hidden(m: dict[str, Any], branch: str) -> int:
    """The hidden width of ``branch``'s experts under ``model.*`` settings ``m``."""
    return branch_shapes(m).get(branch, expert_shape(m)).d_hidden


def _common(m: dict[str, Any], n_poi: int, n_regions: int, coords: np.ndarray | None,
            seed: int, n_lag: int = 0) -> dict[str, Any]:
    return dict(n_lag=n_lag, d_r=m["d_r"], region=region_module(m, n_regions, coords, seed),
                use_region=m["use_region"], use_poi=m["use_poi"] and n_poi > 0,
                expert_shape=expert_shape(m), branch_shapes=branch_shapes(m),
                head_hidden=m["head_hidden"], eps=m["eps"])


def build_urbanmoe(m: dict[str, Any], branch_dims: dict[str, int], n_poi: int, tasks: list[str],
                   n_regions: int, coords: np.ndarray | None, seed: int,
                   n_lag: int = 0) -> UrbanMoE:
    """UrbanMoE (Eq. 1-7) with N_sp, N_dt, N_sh and sizes from ``model.*``."""
    layout = ExpertLayout(len(tasks), m["n_specific"], m["n_dual"], m["n_shared"])
    return UrbanMoE(branch_dims, n_poi, tasks, layout,
                    **_common(m, n_poi, n_regions, coords, seed, n_lag))


def build_urbanmoe_st(m: dict[str, Any], branch_dims: dict[str, int], n_poi: int, task: str,
                      n_regions: int, coords: np.ndarray | None, seed: int,
                      n_lag: int = 0) -> UrbanMoE:
    """One UrbanMoE (ST) model: a single task with ``st_experts`` experts and its own head."""
    return build_single_task(branch_dims, n_poi, task, n_experts=m["st_experts"],
                             **_common(m, n_poi, n_regions, coords, seed, n_lag))


def build_model(m: dict[str, Any], b: dict[str, Any], prep: Any, tasks: list[str],
                seed: int) -> UrbanMoE:
    """The registry's builder of ``urbanmoe``, ``urbanmoe_st`` (one task) and ``urbanmoe_dense``
    (eps = 0: every eligible expert stays active, the dense ablation of Eq. 5)."""
    common = (prep.branch_dims, prep.n_poi)
    place = (len(prep.ds), prep.ds.coords, seed, prep.n_lag)
    if m["name"] == "urbanmoe_st":
        (task,) = tasks
        return build_urbanmoe_st(m, *common, task, *place)
    if m["name"] == "urbanmoe_dense":
        m = {**m, "eps": 0.0}
    return build_urbanmoe(m, *common, tasks, *place)
