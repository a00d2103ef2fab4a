"""Figure 5's data (Appendix D.2: sparse router weights) and measured sparsity (Section 2.6,
Eq. 5); both are drawn by ``urbanmoe.report.expert_figures``.

:func:`router_weights` averages the router weights G̃_τ,m of one run folder over the test
regions (one bar per expert in pool order in Figure 5; experts a task may not use are
hatched "n/a", experts the Eq. 5 threshold zeroes in every region are marked with an "x").

Section 2.6 states that on BJ at ε = 0.01 the carbon task activates 6 + 2 + 2 + 3 = 13 of its
16 eligible experts.  :func:`sparsity_table` measures, per task and branch of one run folder,
how many eligible experts have G̃_τ,m > 0 per test region (after the threshold at the run's
``model.eps``), and the cost of the expert layer per region:

    FLOPs per expert = 2·d_in·h + 2·h·o    (one multiply-add = 2 FLOPs; biases, activation,
                                            output norm and the router are not counted)

with d_in the branch input width (read from ``model.pt``: the router's weight is (ΣM_τ, d_in)),
h the branch's expert hidden width (read from its W1: ``model.expert_hidden``, the location
branch's ``model.location_hidden``) and o = ``model.expert_out``.  "Dense" counts every expert a
task may use (the per-task rows) or the whole pool (the "all tasks" row: an expert is needed when
any task keeps it); "active" counts only the experts kept in the region, averaged.

The wall-time saving of THIS implementation is zero: ``StackedExperts`` evaluates every expert
for every region with two batched matrix products and the zero gates are applied afterwards
(``sme.py``).  A real saving needs the active experts gathered per region (token dispatch as in
sparse MoE layers, or a grouped GEMM over per-expert region lists), or at least skipping the
experts that no task keeps for any region of the batch.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from urbanmoe.binaries import read_checkpoint
from urbanmoe.errors import RunError
from urbanmoe.evaluation.experts import Routing, short_labels
from urbanmoe.models.factory import configured_hidden

__all__ = ["ALL_TASKS", "branch_widths", "expert_flops", "router_weights", "sparsity_table"]

ALL_TASKS = "all tasks (union)"
WALL_TIME_NOTE = "0 (dense experts, masked after)"


def expert_flops(d_in: int, hidden: int, out: int) -> int:
    """FLOPs of one expert MLP (Eq. 2) for one region: 2·d_in·h + 2·h·o."""
    return 2 * d_in * hidden + 2 * hidden * out


def branch_widths(r: Routing) -> dict[str, tuple[int, int]]:
    """(d_in, hidden width) of every branch's experts, from the weights in the run's
    ``model.pt``: d_in from the router, the hidden width from the stacked W1 (E, d_in, h), or
    the configured one where the pool is stored otherwise. Branches may differ in both (the
    location branch's is ``model.location_hidden``)."""
    state = read_checkpoint(r.run_dir / "model.pt", "the run's checkpoint", error=RunError)
    widths = {}
    for b in r.branches:
        name = f"{r.key}.branches.{b}.router.gate.weight"
        if name not in state:
            raise KeyError(f"{r.run_dir / 'model.pt'} lacks {name}")
        w1 = state.get(f"{r.key}.branches.{b}.experts.w1")
        hidden = int(w1.shape[-1]) if w1 is not None else configured_hidden(r.config["model"], b)
        widths[b] = (int(state[name].shape[1]), hidden)
    return widths


def _group_counts(r: Routing, t: int, active: np.ndarray) -> str:
    """'S:carbon 6.0 + D:carbon-pop 2.0 + ... + H 3.0': mean active per expert group."""
    base = [s.rsplit(" ", 1)[0] for s in short_labels(r.labels, r.tasks)]
    means: dict[str, float] = {}
    for m in np.flatnonzero(r.eligible[t]):
        means[base[m]] = means.get(base[m], 0.0) + float(active[:, m].mean())
    return " + ".join(f"{k} {v:.1f}" for k, v in means.items())


def sparsity_table(r: Routing, widths: dict[str, tuple[int, int]] | None = None
                   ) -> pd.DataFrame:
    """Per branch and task (plus the union over tasks): active experts and expert-layer FLOPs.

    ``widths`` (branch -> (input width, hidden width)) defaults to :func:`branch_widths`.
    """
    shapes = widths if widths is not None else branch_widths(r)
    out = int(r.config["model"]["expert_out"])
    outs = {b: r.experts[b].shape[-1] for b in r.branches}
    if any(w != out for w in outs.values()):
        raise ValueError(f"expert output widths {outs} differ from model.expert_out = {out}")
    eligible, kinds = r.eligible, np.array(r.kinds)
    rows = []
    for b in r.branches:
        d_in, hidden = shapes[b]
        f = expert_flops(d_in, hidden, out)
        kept = r.gates[b] > 0  # (n, T, E)
        for t, task in enumerate([*r.tasks, ALL_TASKS]):
            if task == ALL_TASKS:
                active, ok = kept.any(axis=1), np.ones(len(r.labels), dtype=bool)
            else:
                active, ok = kept[:, t, :] & eligible[t], eligible[t]
            count = active.sum(axis=1)  # (n,)
            row = {"branch": b, "task": task, "n_pool": len(r.labels), "n_eligible": int(ok.sum()),
                   "mean_active": float(count.mean()), "min_active": int(count.min()),
                   "max_active": int(count.max()),
                   "share_active": float(count.mean() / ok.sum()), "eps": r.eps}
            for k in ("specific", "dual", "shared"):
                row[f"active_{k}"] = float(active[:, kinds == k].sum(axis=1).mean())
            row.update({"d_in": d_in, "expert_hidden": hidden, "expert_out": out,
                        "flops_per_expert": f, "flops_dense": f * int(ok.sum()),
                        "flops_active": f * float(count.mean()),
                        "measured_time_saving": 0.0})
            row["flops_saving"] = 1.0 - row["flops_active"] / row["flops_dense"]
            row["By group (mean active)"] = (_group_counts(r, t, active) if task != ALL_TASKS
                                             else "—")
            rows.append(row)
    df = pd.DataFrame(rows)
    df["Branch"], df["Task"] = df["branch"], df["task"]
    df["Eligible"] = df["n_eligible"].astype(str)
    df["Active / region"] = [f"{a:.2f} [{lo}–{hi}]" for a, lo, hi in
                             zip(df["mean_active"], df["min_active"], df["max_active"],
                                 strict=True)]
    df["Share active"] = df["share_active"].map("{:.3f}".format)
    df["By group (mean active)"] = df.pop("By group (mean active)")
    df["Expert FLOPs dense (M)"] = (df["flops_dense"] / 1e6).map("{:.4g}".format)
    df["Expert FLOPs active (M)"] = (df["flops_active"] / 1e6).map("{:.4g}".format)
    df["FLOP saving"] = df["flops_saving"].map("{:.1%}".format)
    df["Wall-time saving (this code)"] = WALL_TIME_NOTE
    return df


def router_weights(r: Routing) -> pd.DataFrame:
    """Figure 5's data: one row per (task, branch, expert) in pool order.

    ``mean_weight`` is G̃_τ,m averaged over the test regions (zeros included), ``share_active``
    the share of test regions with G̃_τ,m > 0 (kept by the Eq. 5 threshold).
    """
    eligible, short = r.eligible, short_labels(r.labels, r.tasks)
    rows = []
    for t, task in enumerate(r.tasks):
        for b in r.branches:
            g = r.gates[b][:, t, :]  # (n, E)
            mean, active = g.mean(axis=0), (g > 0).mean(axis=0)
            rows += [{"task": task, "branch": b, "expert": m, "label": short[m],
                      "kind": r.kinds[m], "eligible": bool(eligible[t, m]),
                      "mean_weight": float(mean[m]), "share_active": float(active[m]),
                      "pool_label": r.labels[m]} for m in range(len(r.labels))]
    return pd.DataFrame(rows)
