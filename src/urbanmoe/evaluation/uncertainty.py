"""How sure a comparison is: the one rule behind every verdict of the reports.

Every claim the reports check ("X beats Y", "X is best", "X is within 0.01 of the best") is a
statement about a difference between runs. The rule (docs/results.md, "Verdicts"):

1. Pair what the runs share: the same seed and, under K folds, the same fold. The difference
   of each pair is one value; ``paired`` gives their mean and a t confidence interval
   (``verdicts.confidence``, 95 % by default) with ``n - 1`` degrees of freedom. Rows that
   share nothing (different datasets) use ``unpaired``, Welch's t interval, and say so.
2. ``judge``: the claim is ``held`` when the interval lies wholly on its side of the margin,
   ``not held`` when wholly on the other, ``inconclusive`` otherwise; fewer than
   ``verdicts.min_pairs`` values (3) is ``inconclusive`` with that reason.
3. A claim over several comparisons ("on every task") is held when every part is held and not
   held when any part is not held (``all_of``); "on some task" the other way round (``any_of``).

Why a t interval and not a bootstrap over the seeds: with 3 to 5 seeds a bootstrap over the
differences has only a few distinct resamples (10 for 3 values), and its percentile interval is
too narrow; the t interval is exact for normal differences and widens as it should when there
are few of them.

The seeds' interval says how much another seed (its split and its initialisation) would move
the difference. It does not say how much the difference rests on which test regions were drawn:
neighbouring regions share their labels' surroundings, so 311 test regions are not 311
independent draws. ``block_weights`` and ``replicate_r2`` are the second interval's parts: a
spatial block bootstrap over the test regions (blocks of ``split.block_km``), the same blocks
drawn for every model of a seed, so that differences stay paired (``evaluation/bootstrap.py``
draws the replicates from run folders, ``percentile`` turns their differences into an interval).

``placement`` judges a published value against a reproduced one: ``within`` when it lies inside
the reproduced mean ± 2 x (reproduced std + published std), else ``above`` / ``below`` (the
reproduced value against the published one).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

HELD, NOT_HELD, INCONCLUSIVE, NOT_CHECKED = "held", "not held", "inconclusive", "not checked"
VERDICTS = (HELD, NOT_HELD, INCONCLUSIVE)


@dataclass(frozen=True)
class Interval:
    """A difference's mean and confidence interval, over ``n`` values, by ``method``."""

    mean: float
    lo: float
    hi: float
    n: int
    method: str
    reason: str = ""  # why no interval could be given (then lo and hi are NaN)

    def text(self, digits: int = 4) -> str:
        """``"+0.0031 [-0.0012, +0.0074] (paired t, n=3)"``, or the reason."""
        if not np.isfinite(self.lo) or not np.isfinite(self.hi):
            mean = "" if not np.isfinite(self.mean) else f"{self.mean:+.{digits}f} "
            return f"{mean}(no interval: {self.reason or 'no values'})"
        n = f"{self.n} replicates" if "bootstrap" in self.method else f"n={self.n}"
        return (f"{self.mean:+.{digits}f} [{self.lo:+.{digits}f}, {self.hi:+.{digits}f}] "
                f"({self.method}, {n})")


def _nan(n: int, method: str, reason: str, mean: float = float("nan")) -> Interval:
    return Interval(mean, float("nan"), float("nan"), n, method, reason)


def t_interval(values: Sequence[float] | np.ndarray, confidence: float,
               method: str = "paired t") -> Interval:
    """Mean of ``values`` (NaN dropped) with its two-sided t interval."""
    x = np.asarray(values, dtype=np.float64)
    x = x[np.isfinite(x)]
    n = len(x)
    if n == 0:
        return _nan(0, method, "no values")
    mean = float(x.mean())
    if n < 2:
        return _nan(n, method, "one value", mean)
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1) * x.std(ddof=1) / np.sqrt(n))
    return Interval(mean, mean - half, mean + half, n, method)


def paired(a: pd.Series, b: pd.Series, confidence: float) -> Interval:
    """``a - b`` over the index values both share (seed, or (seed, fold)), t interval."""
    both = pd.concat([a.rename("a"), b.rename("b")], axis=1, join="inner").dropna()
    return t_interval((both["a"] - both["b"]).to_numpy(), confidence)


def unpaired(a: Sequence[float], b: Sequence[float], confidence: float) -> Interval:
    """Welch's t interval of ``mean(a) - mean(b)`` for values that share nothing."""
    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    x, y = x[np.isfinite(x)], y[np.isfinite(y)]
    n = min(len(x), len(y))
    method = "unpaired Welch t"
    if n == 0:
        return _nan(0, method, "no values")
    mean = float(x.mean() - y.mean())
    if n < 2:
        return _nan(n, method, "one value on a side", mean)
    vx, vy = x.var(ddof=1) / len(x), y.var(ddof=1) / len(y)
    se = float(np.sqrt(vx + vy))
    if se == 0:
        return Interval(mean, mean, mean, n, method)
    dof = (vx + vy) ** 2 / (vx**2 / (len(x) - 1) + vy**2 / (len(y) - 1))
    half = float(stats.t.ppf(0.5 + confidence / 2, dof) * se)
    return Interval(mean, mean - half, mean + half, n, method)


def percentile(replicates: np.ndarray, confidence: float, method: str) -> Interval:
    """The percentile interval of bootstrap replicates of a difference (NaN dropped)."""
    x = np.asarray(replicates, dtype=np.float64)
    x = x[np.isfinite(x)]
    if len(x) < 2:
        return _nan(len(x), method, "no replicates")
    lo, hi = np.quantile(x, [0.5 - confidence / 2, 0.5 + confidence / 2])
    return Interval(float(x.mean()), float(lo), float(hi), len(x), method)


def judge(iv: Interval, margin: float = 0.0, *, below: bool = False,
          min_pairs: int = 3) -> tuple[str, str]:
    """(verdict, reason) of the claim "difference > margin" (``below``: "< margin")."""
    if iv.n < min_pairs:
        return INCONCLUSIVE, f"fewer than {min_pairs} paired values (n={iv.n})"
    if not (np.isfinite(iv.lo) and np.isfinite(iv.hi)):
        return INCONCLUSIVE, iv.reason or "no interval"
    above, under = iv.lo > margin, iv.hi < margin
    if below:
        above, under = under, above
    return (HELD, "") if above else (NOT_HELD, "") if under else (INCONCLUSIVE, "")


def all_of(verdicts: Iterable[str]) -> str:
    """Every part held: held; any part not held: not held; else inconclusive."""
    vs = list(verdicts)
    if vs and all(v == HELD for v in vs):
        return HELD
    return NOT_HELD if NOT_HELD in vs else INCONCLUSIVE


def any_of(verdicts: Iterable[str]) -> str:
    """Some part held: held; every part not held: not held; else inconclusive."""
    vs = list(verdicts)
    if HELD in vs:
        return HELD
    return NOT_HELD if vs and all(v == NOT_HELD for v in vs) else INCONCLUSIVE


# ---------------------------------------------------------------- spatial block bootstrap
def block_weights(blocks: np.ndarray, replicates: int, rng: np.random.Generator) -> np.ndarray:
    """(replicates, n) weights: each replicate draws as many blocks as there are, with
    replacement; a region counts as often as its block was drawn."""
    _, idx = np.unique(np.asarray(blocks), return_inverse=True)
    n_blocks = int(idx.max()) + 1 if len(idx) else 0
    draws = rng.integers(0, n_blocks, size=(replicates, n_blocks))
    counts = np.zeros((replicates, n_blocks))
    np.add.at(counts, (np.arange(replicates)[:, None], draws), 1.0)
    return counts[:, idx.reshape(-1)]


def replicate_r2(y_true: np.ndarray, y_pred: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """R² of one task under each row of ``weights`` (rows without a label left out): the R²
    of the resampled test set, as ``training/scores.regression_metrics`` computes it."""
    keep = np.isfinite(y_true)
    t, p, w = y_true[keep], y_pred[keep], weights[:, keep]
    if len(t) == 0:
        return np.full(len(weights), np.nan)
    total = w.sum(axis=1)
    sse = w @ (t - p) ** 2
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = (w @ t) / total
        sst = w @ t**2 - total * mean**2
        r2 = 1.0 - sse / sst
    return np.where(sst > 1e-12 * np.maximum(1.0, w @ t**2), r2, np.nan)


# ---------------------------------------------------------------- published vs reproduced
WITHIN, ABOVE, BELOW = "within", "above", "below"
WITHIN_K = 2.0  # the spread of "within": this many times (reproduced std + published std)


def placement(published: float, mean: float, std: float = 0.0, published_std: float = 0.0,
              k: float = WITHIN_K) -> str:
    """``within`` when ``published`` lies inside ``mean ± k (std + published_std)`` (stds
    missing count as 0), else whether the reproduced mean is ``above`` or ``below`` it;
    ``""`` when either value is missing."""
    if not (np.isfinite(published) and np.isfinite(mean)):
        return ""
    spread = k * (np.nan_to_num(std) + np.nan_to_num(published_std))
    if abs(mean - published) <= spread:
        return WITHIN
    return ABOVE if mean > published else BELOW
