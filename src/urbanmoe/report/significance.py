"""Table 2's significance marks: which differences of average R² are more than noise.

Beside each model's average R², ``*`` where its paired difference from UrbanMoE (over the seeds
and folds both have) has a t interval wholly above or below 0, and ``†`` where that holds
against the best baseline of its dataset and split (the non-UrbanMoE row with the best mean);
no mark: tied at that confidence (``verdicts.confidence``) or too few pairs. The rule is
``evaluation/uncertainty.py``'s, as in claims.md.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from urbanmoe.evaluation.uncertainty import INCONCLUSIVE, judge, paired
from urbanmoe.report.evidence import Rule
from urbanmoe.training.registry import URBANMOE_FAMILY

LABEL = "Average R²"  # Table 2's display column of the average R² (tables.metric_label)


#: Table 2's marks beside the average R²
MARK_UMOE, MARK_BEST = "*", "†"
NOT_BASELINES = ("mean",)  # a floor, not a competitor


def significance_marks(out: pd.DataFrame, runs: pd.DataFrame, rule: Rule) -> pd.DataFrame:
    """Mark each row's average R² where its paired difference (same seeds and folds) from
    UrbanMoE (``*``) or from the best baseline of its dataset and split (``†``, the
    non-UrbanMoE row with the best mean) has an interval wholly on one side of 0; without a
    mark the two are tied at that confidence. Numeric columns ``avg_r2_vs_urbanmoe_{lo,hi}``,
    ``avg_r2_vs_best_{lo,hi}`` and ``best_baseline`` keep the intervals."""
    if "avg_r2" not in runs.columns or out.empty:
        return out
    values = {k: g.set_index(["seed", "fold"])["avg_r2"]
              for k, g in runs.groupby(["dataset", "model", "split"], sort=False)}
    label = LABEL
    cols = {c: np.full(len(out), np.nan) for c in ("avg_r2_vs_urbanmoe_lo", "avg_r2_vs_urbanmoe_hi",
                                                   "avg_r2_vs_best_lo", "avg_r2_vs_best_hi")}
    best_of, marks = [""] * len(out), [""] * len(out)
    for (ds, sp), grp in out.groupby(["dataset", "split"], sort=False):
        pool = grp[~grp["model"].isin([*URBANMOE_FAMILY, *NOT_BASELINES])]
        best = str(pool.loc[pool["avg_r2_mean"].idxmax(), "model"]) if len(pool) else None
        for i in grp.index:
            pos = out.index.get_loc(i)
            best_of[pos] = best or ""
            mine = values.get((ds, out.at[i, "model"], sp))
            for ref, tag, mark in (("urbanmoe", "urbanmoe", MARK_UMOE), (best, "best", MARK_BEST)):
                other = values.get((ds, ref, sp)) if ref else None
                if mine is None or other is None or ref == out.at[i, "model"]:
                    continue
                iv = paired(mine, other, rule.confidence)
                cols[f"avg_r2_vs_{tag}_lo"][pos], cols[f"avg_r2_vs_{tag}_hi"][pos] = iv.lo, iv.hi
                if judge(iv, min_pairs=rule.min_pairs)[0] != INCONCLUSIVE:
                    marks[pos] += mark
    out = out.copy()
    for c, v in cols.items():
        out[c] = v
    out["best_baseline"] = best_of
    out[label] = [f"{cell} {m}" if m else cell for cell, m in zip(out[label], marks, strict=True)]
    out.attrs["marks"] = (f"{MARK_UMOE}: the paired difference from UrbanMoE over the seeds "
                          f"(and folds) has a {rule.confidence:.0%} t interval wholly above or "
                          f"below 0; {MARK_BEST}: likewise from the best baseline of the dataset "
                          "(its row names it in best_baseline); no mark: tied at that "
                          f"confidence, or fewer than {rule.min_pairs} paired runs.")
    return out
