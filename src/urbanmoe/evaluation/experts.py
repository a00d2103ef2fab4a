"""The routing loader and Figure 4's data (Appendix D.1: t-SNE of expert outputs).

Figure 4 and Figure 5 (``sparsity.py``) read ONE UrbanMoE run folder (``routing.npz``,
``metrics.json``, ``config.yaml``; written by ``urbanmoe.training.folds``).  For a model
key (``"all"`` for the multi-task model) and branch b, ``routing.npz`` holds on the test split
(n regions, T tasks, E pool experts, o the expert output width):

* ``{key}/{b}/gates``    (n, T, E) router weights G̃ after the Eq. 5 threshold (no
  renormalisation: a row sums to <= 1, ineligible experts are exactly 0);
* ``{key}/{b}/experts``  (n, E, o) expert outputs E_m(z) (Eq. 2);
* ``{key}/{b}/fused``    (n, T, o) fused outputs ũ_τ = Σ_m G̃_τ,m E_m(z) (Eq. 6);
* ``{key}/expert_labels`` (E,) "specific:carbon", "dual:carbon-population", "shared".

Figure 4 embeds, per task and branch, the outputs of the experts the task may use and its
fused output (both o-dimensional, so they share one t-SNE) for a reproducible subsample of
test regions, coloured by expert category.  The figures are drawn by
``urbanmoe.report.expert_figures``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from urbanmoe.binaries import read_npz
from urbanmoe.errors import RunError
from urbanmoe.readers import read_metrics, read_yaml

__all__ = ["CATEGORIES", "CATEGORY_NAMES", "Routing", "eligibility", "expert_tsne", "load_routing",
           "short_labels", "subsample", "tsne_embed"]

#: Categories in drawing / legend order; "fused" is the weighted output ũ_τ of Eq. 6.
CATEGORIES = ("specific", "dual", "shared", "fused")
CATEGORY_NAMES = {"specific": "task-specific", "dual": "dual-task", "shared": "shared",
                  "fused": "fused output ũ_τ"}
ABBREV = {"specific": "S", "dual": "D", "shared": "H"}


@dataclass(frozen=True)
class Routing:
    """The routing arrays of one model key of a run folder, with what the figures need."""

    run_dir: Path
    key: str
    tasks: list[str]
    branches: list[str]
    labels: list[str]  # (E,) pool order
    gates: dict[str, np.ndarray]  # branch -> (n, T, E)
    experts: dict[str, np.ndarray]  # branch -> (n, E, o)
    fused: dict[str, np.ndarray]  # branch -> (n, T, o)
    eps: float
    config: dict
    metrics: dict

    @property
    def kinds(self) -> list[str]:
        """'specific' / 'dual' / 'shared' per expert, pool order."""
        return [label.split(":", 1)[0] for label in self.labels]

    @property
    def eligible(self) -> np.ndarray:
        """(T, E) bool: task τ may route to expert m."""
        return eligibility(self.labels, self.tasks)

    @property
    def n_test(self) -> int:
        return next(iter(self.gates.values())).shape[0]

    def describe(self) -> str:
        """'SH, urbanmoe, seed 0, random split' for titles."""
        m = self.metrics
        label = m.get("variant") or m.get("model", "?")
        split = (m.get("split") or {}).get("kind", "?")
        return f"{m.get('dataset', '?')}, {label}, seed {m.get('seed', '?')}, {split} split"


def eligibility(labels: list[str], tasks: list[str]) -> np.ndarray:
    """(T, E) bool mask from expert labels: own specific, dual of pairs with τ, all shared."""
    mask = np.zeros((len(tasks), len(labels)), dtype=bool)
    for t, task in enumerate(tasks):
        pairs = {f"{a}-{b}" for i, a in enumerate(tasks) for b in tasks[i + 1:] if task in (a, b)}
        for m, label in enumerate(labels):
            kind, _, rest = label.partition(":")
            if kind not in ABBREV:
                raise ValueError(f"unknown expert label {label!r}")
            mask[t, m] = (kind == "shared" or (kind == "specific" and rest == task)
                          or (kind == "dual" and rest in pairs))
    return mask


def short_labels(labels: list[str], tasks: list[str]) -> list[str]:
    """Tick labels "S:carbon 1", "D:carbon-pop 2", "H 3" (tasks over 6 letters cut to 3)."""
    short = {t: (t if len(t) <= 6 else t[:3]) for t in tasks}
    if len(set(short.values())) < len(tasks):
        short = {t: t for t in tasks}
    out, seen = [], {}
    for label in labels:
        kind, _, rest = label.partition(":")
        names = "-".join(short.get(p, p) for p in rest.split("-")) if rest else ""
        base = ABBREV[kind] + (f":{names}" if names else "")
        seen[base] = seen.get(base, 0) + 1
        out.append(f"{base} {seen[base]}")
    return out


def load_routing(run_dir: Path | str, key: str = "all") -> Routing:
    """Read ``routing.npz``, ``config.yaml`` and ``metrics.json`` of one UrbanMoE run folder."""
    run_dir = Path(run_dir)
    path = run_dir / "routing.npz"
    if not path.is_file():
        raise RunError(f"{path} not found: is {run_dir} an UrbanMoE run folder?")
    z = read_npz(path, "a run's routing", error=RunError)
    branches = [n.split("/")[1] for n in z if n.startswith(f"{key}/") and n.endswith("/gates")]
    if not branches:
        keys = sorted({n.split("/")[0] for n in z if "/" in n})
        raise KeyError(f"{path} holds no routing of model key {key!r} (keys: {keys})")
    wanted = [f"{key}/expert_labels", "tasks",
              *(f"{key}/{b}/{part}" for b in branches for part in ("gates", "experts", "fused"))]
    if (missing := next((k for k in wanted if k not in z), None)) is not None:
        raise RunError(f"{path}: a run's routing lacks {missing!r}")
    labels = [str(s) for s in z[f"{key}/expert_labels"]]
    all_tasks = [str(s) for s in z["tasks"]]
    arrays = {part: {b: z[f"{key}/{b}/{part}"] for b in branches}
              for part in ("gates", "experts", "fused")}
    cfg = read_yaml(run_dir / "config.yaml", error=RunError)
    metrics = read_metrics(run_dir / "metrics.json")
    tasks = all_tasks if key == "all" else [key]
    for b in branches:
        n, t, e = arrays["gates"][b].shape
        if (t, e) != (len(tasks), len(labels)) or arrays["experts"][b].shape[:2] != (n, e):
            raise RunError(f"{path}: inconsistent shapes for branch {b!r}")
    return Routing(run_dir, key, tasks, branches, labels, arrays["gates"], arrays["experts"],
                   arrays["fused"], float(cfg["model"]["eps"]), cfg, metrics)


# ---------------------------------------------------------------------------- Figure 4
def subsample(n: int, n_points: int, seed: int) -> np.ndarray:
    """Sorted indices of ``min(n_points, n)`` regions drawn without replacement (seeded)."""
    k = min(int(n_points), n)
    return np.sort(np.random.default_rng(seed).choice(n, size=k, replace=False))


def tsne_embed(x: np.ndarray, seed: int, perplexity: float | None = None,
               threads: int | None = 1, max_iter: int = 1000) -> np.ndarray:
    """2-D t-SNE of ``x`` (N, d); perplexity min(30, (N - 1) / 3) unless given.

    ``max_iter`` (>= 250, scikit-learn's default 1000) counts the 250 early-exaggeration steps.

    ``threads`` caps the OpenMP/BLAS threads (None: the library default).  One thread is the
    default: on a busy machine the Barnes-Hut gradient's threads oversubscribe the cores and
    run several times slower than one.
    """
    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_limits

    p = perplexity if perplexity is not None else min(30.0, max(1.0, (len(x) - 1) / 3))
    tsne = TSNE(n_components=2, perplexity=p, random_state=seed, init="pca",
                learning_rate="auto", max_iter=max_iter)
    with threadpool_limits(threads):
        return tsne.fit_transform(np.asarray(x, dtype=np.float64))


def expert_tsne(r: Routing, n_points: int = 150, seed: int = 0,
                threads: int | None = 1, max_iter: int = 1000, jobs: int = 1) -> pd.DataFrame:
    """Figure 4's data: t-SNE coordinates per (task, branch) panel.

    A panel embeds, for the same ``n_points`` test regions (``subsample(n, n_points, seed)``),
    the outputs E_m(z) of every expert task τ may use and its fused output ũ_τ, all
    o-dimensional, embedded raw (one t-SNE per panel, ``random_state=seed``, ``threads`` and
    ``max_iter`` as in :func:`tsne_embed`; ``jobs`` panels at a time, in worker processes: the
    panels are independent, so the coordinates do not depend on ``jobs``).  Expert outputs are
    layer-normed (Eq. 2, default ``output_norm``); ũ_τ is their G̃-weighted sum with Σ G̃ <= 1,
    so fused points sit inside the experts' spread.  Columns: task, branch, category, expert
    (pool index, -1 for fused), region (test-split row), x, y.
    """
    from joblib import Parallel, delayed

    idx = subsample(r.n_test, n_points, seed)
    panels, inputs = [], []
    for t, task in enumerate(r.tasks):
        experts = np.flatnonzero(r.eligible[t])
        for b in r.branches:
            out, fused = r.experts[b][idx], r.fused[b][idx, t, :]  # (k, E, o), (k, o)
            if fused.shape[-1] != out.shape[-1]:
                raise ValueError(f"fused width {fused.shape[-1]} != expert width {out.shape[-1]}")
            panels.append((task, b, experts))
            inputs.append(np.concatenate([out[:, experts, :].transpose(1, 0, 2)
                                          .reshape(-1, out.shape[-1]), fused]))  # (M·k + k, o)
    coords = Parallel(n_jobs=min(jobs, len(inputs)) or 1)(
        delayed(tsne_embed)(x, seed, threads=threads, max_iter=max_iter) for x in inputs)
    frames = [pd.DataFrame({
        "task": task, "branch": b,
        "category": [r.kinds[m] for m in experts for _ in idx] + ["fused"] * len(idx),
        "expert": np.concatenate([np.repeat(experts, len(idx)), np.full(len(idx), -1)]),
        "region": np.tile(idx, len(experts) + 1), "x": xy[:, 0], "y": xy[:, 1]})
        for (task, b, experts), xy in zip(panels, coords, strict=True)]
    return pd.concat(frames, ignore_index=True)
