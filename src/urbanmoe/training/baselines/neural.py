"""Builders of the neural baselines of Table 2 on exactly UrbanMoE's inputs (Appendix A, plus
reviewer baselines): the registry's ``build(m, b, prep, tasks, seed)`` of each.

Every model here except the frozen-feature head sees what UrbanMoE sees (Eq. 1) through
``models/baselines/neural.InputBaseline``, with the same ``models/factory.region_module`` as
UrbanMoE.

* ``build_mlp_st`` -- "MLP (ST)": trunk Linear(d, h) -> GELU -> Linear(h, h) -> GELU with
  h = ``baselines.mlp_hidden`` and one tower (UrbanMoE's task MLP, width ``baselines.head_hidden``);
  one model per task. It is the shared-bottom network with a single task, so ST and MT differ
  only in what is shared.
* ``build_shared_bottom`` -- "Shared-bottom MLP (MT)": the same trunk shared by all tasks, one
  tower per task.
* ``build_mmoe`` / ``build_ple`` -- MMoE and PLE/CGC (``models/baselines/mmoe.py``); with
  ``baselines.match_params`` their experts' hidden width is solved so the parameter count
  matches UrbanMoE's under the same ``model.*`` (otherwise it is ``model.expert_hidden``).
* ``build_frozen_head`` -- "RemoteCLIP (ST/MT)": the frozen branch features (whatever
  ``features.*`` encoder produced them; RemoteCLIP's towers in the paper's setting) with the
  shared MLP head (``models/baselines/heads.FeatureHead``), no region embedding and no POI vector.

Every builder seeds torch's RNG from ``seed`` (inside ``torch.random.fork_rng``, so the caller's
RNG state is left as it was): the same seed gives the same initial weights.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from urbanmoe.models.baselines.heads import FeatureHead
from urbanmoe.models.baselines.mmoe import (
    GatedExperts,
    matched_width,
    mmoe_gates,
    ple_gates,
    ple_split,
)
from urbanmoe.models.baselines.neural import InputBaseline, SharedBottom
from urbanmoe.models.factory import build_urbanmoe, expert_shape, region_module
from urbanmoe.runtime.efficiency import count_parameters
from urbanmoe.training.prepare import Prepared

log = logging.getLogger(__name__)

Config = dict[str, Any]


def _seeded(seed: int, make: Callable[[], nn.Module]) -> nn.Module:
    """``make()`` with torch's RNG seeded from ``seed``; the caller's RNG state is restored."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return make()


def _with_inputs(m: Config, prep: Prepared, seed: int,
                 make_body: Callable[[int], nn.Module]) -> InputBaseline:
    """UrbanMoE's inputs (branches, r, p) in front of ``make_body(d_in)``; RNG not seeded here."""
    keys = [*prep.branch_dims, *(["lag"] if prep.n_lag else [])]  # spatial lag: context
    use_poi = bool(m["use_poi"]) and prep.n_poi > 0 and "poi" in prep.data.inputs
    region = region_module(m, len(prep.ds), prep.ds.coords, seed)
    d_r = 0 if region is None else int(region.d_r)
    d_in = sum(prep.branch_dims.values()) + prep.n_lag + d_r + (prep.n_poi if use_poi else 0)
    return InputBaseline(keys, use_poi, region, make_body(d_in))


def build_mlp_st(m: Config, b: Config, prep: Prepared, tasks: list[str],
                 seed: int) -> nn.Module:
    """MLP (ST): the shared-bottom network for one task (the run builds one per task)."""
    return build_shared_bottom(m, b, prep, tasks, seed)


def build_shared_bottom(m: Config, b: Config, prep: Prepared, tasks: list[str],
                        seed: int) -> nn.Module:
    """Shared-bottom MLP (MT): shared trunk (``mlp_hidden``), one tower per task."""
    return _seeded(seed, lambda: _with_inputs(
        m, prep, seed, lambda d: SharedBottom(d, b["mlp_hidden"], len(tasks), b["head_hidden"])))


def _gated(m: Config, b: Config, prep: Prepared, tasks: list[str], seed: int,
           pool: tuple[int, dict[str, list[int]]], name: str) -> nn.Module:
    n_experts, gates = pool

    def make(width: int) -> InputBaseline:
        shape = dataclasses.replace(expert_shape(m), d_hidden=width)
        return _with_inputs(m, prep, seed, lambda d: GatedExperts(
            d, n_experts, gates, expert_shape=shape, tower_hidden=b["head_hidden"]))

    width, target = m["expert_hidden"], 0
    if b["match_params"]:
        target = urbanmoe_parameters(m, prep, tasks, seed)
        with torch.random.fork_rng(devices=[]):  # the probes leave the caller's RNG alone
            width = matched_width(make, target)
        log.info("%s: expert hidden width %d matches UrbanMoE's %d parameters", name, width,
                 target)
    model = _seeded(seed, lambda: make(width))
    if b["match_params"] and abs(count_parameters(model) - target) > 0.1 * target:
        log.warning("%s has %d parameters, UrbanMoE %d: no expert width matches within 10%%",
                    name, count_parameters(model), target)
    return model


def urbanmoe_parameters(m: Config, prep: Prepared, tasks: list[str], seed: int) -> int:
    """Parameters of UrbanMoE (multi-task) under the same ``model.*`` and tasks."""
    with torch.random.fork_rng(devices=[]):
        model = build_urbanmoe(m, prep.branch_dims, prep.n_poi, tasks, len(prep.ds),
                               prep.ds.coords, seed, prep.n_lag)
    return count_parameters(model)


def build_mmoe(m: Config, b: Config, prep: Prepared, tasks: list[str], seed: int) -> nn.Module:
    """MMoE: ``moe_experts`` shared experts, a dense softmax gate per task over all of them."""
    pool = (b["moe_experts"], mmoe_gates(tasks, b["moe_experts"]))
    return _gated(m, b, prep, tasks, seed, pool, "MMoE")


def build_ple(m: Config, b: Config, prep: Prepared, tasks: list[str], seed: int) -> nn.Module:
    """PLE/CGC (one extraction layer): ``moe_experts`` split by ``mmoe.ple_split``."""
    pool = ple_gates(tasks, *ple_split(b["moe_experts"], len(tasks)))
    return _gated(m, b, prep, tasks, seed, pool, "PLE/CGC")


def build_frozen_head(m: Config, b: Config, prep: Prepared, tasks: list[str],
                      seed: int) -> nn.Module:
    """RemoteCLIP (ST/MT): the MLP head (``head_hidden``) on the frozen branch features only."""
    return _seeded(seed, lambda: FeatureHead(dict(prep.branch_dims), b["head_hidden"],
                                             len(tasks)))
