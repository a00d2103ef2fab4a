"""The values behind a verdict, read from the drawn tables alone (no run folder).

``Evidence`` holds one table of per-run values (``table2_seeds.csv``: one row per dataset,
model, split, seed and fold; ``ablations_seeds.csv``: per study, setting and seed) and,
where it was drawn, its spatial block bootstrap replicates (``*_bootstrap.csv``,
``evaluation/bootstrap.py``). A ``Side`` is one row's (or the mean of several rows') values per
(seed, fold); ``compare`` applies the rule of ``evaluation/uncertainty.py`` to two sides and
returns the verdict with both intervals: over seeds (the rule) and over test regions (beside).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from urbanmoe.errors import DataError
from urbanmoe.evaluation.uncertainty import (
    HELD,
    NOT_HELD,
    Interval,
    judge,
    paired,
    percentile,
)
from urbanmoe.readers import read_csv

PAIR = ["seed", "fold"]


@dataclass(frozen=True)
class Side:
    """Values of one side of a comparison: per (seed, fold), and bootstrap replicates."""

    values: pd.Series
    replicates: np.ndarray | None = None
    seeds: str | None = None  # the seeds the replicates average over
    blocks: str = ""


@dataclass(frozen=True)
class Part:
    """One comparison judged: its verdict (by the seeds' interval) and both intervals."""

    verdict: str
    seeds: Interval
    regions: Interval | None
    reason: str = ""

    def text(self) -> str:
        return self.seeds.text() + (f"; {self.reason}" if self.reason else "")

    def regions_text(self) -> str:
        return "" if self.regions is None else self.regions.text()


@functools.cache
def _configured(key: str) -> Any:
    from urbanmoe.config import validate

    return validate({}, "(defaults)")["verdicts"][key]


@dataclass(frozen=True)
class Rule:
    """The rule's settings (``verdicts`` in config.yaml; the schema's defaults when not
    given)."""

    confidence: float = field(default_factory=lambda: float(_configured("confidence")))
    min_pairs: int = field(default_factory=lambda: int(_configured("min_pairs")))


#: columns that hold numbers wherever they appear in the tables the claims read
NUMERIC = re.compile(r"(_r2|_rmse|_mae|_mean|_std)$|^(seed|fold|replicate|n_seeds|params_m|"
                     r"value|n_specific|n_shared|n_dual|mean_weight|share_active|n_eligible|"
                     r"mean_active)$")


def read_optional(path: Path, required: Sequence[str] = ()) -> pd.DataFrame | None:
    """A drawn table (None when absent). A file that is not a CSV table, lacks a ``required``
    column or holds a non-number in a numeric column is one line naming the file, the column
    and the value (``DataError``)."""
    path = Path(path)
    if not path.is_file():
        return None
    df = read_csv(path, error=DataError)
    for col in required:
        if col not in df.columns:
            raise DataError(f"{path}: column {col!r}: missing (columns: "
                            f"{[str(c) for c in df.columns][:12]})")
    for col in (c for c in df.columns if NUMERIC.search(str(c))):
        values = pd.to_numeric(df[col], errors="coerce")
        bad = values.isna() & df[col].notna()
        if bad.any():
            i = int(bad.to_numpy().nonzero()[0][0])
            raise DataError(f"{path}: column {col!r}, row {i + 2}: {str(df[col].iloc[i])[:40]!r} "
                            "is not a number")
        df[col] = values
    return df


class Evidence:
    """Per-run values of a table, keyed by ``keys`` (``("dataset", "model", "split")`` ...)."""

    def __init__(self, seeds: pd.DataFrame | None, keys: Sequence[str],
                 replicates: pd.DataFrame | None = None, rule: Rule | None = None) -> None:
        self.keys, self.rule = list(keys), rule or Rule()
        df = pd.DataFrame(columns=[*self.keys, *PAIR]) if seeds is None else seeds.copy()
        if "fold" not in df:
            df["fold"] = 0
        self.seeds = df
        self.replicates = replicates

    def _rows(self, frame: pd.DataFrame, key: Sequence) -> pd.DataFrame:
        mask = np.ones(len(frame), dtype=bool)
        for col, value in zip(self.keys, key, strict=True):
            mask &= (frame[col].astype(str) == str(value)).to_numpy()
        return frame[mask]

    def side(self, key: Sequence, col: str) -> Side:
        """One row's values of ``col`` per (seed, fold), with its replicates if any."""
        rows = self._rows(self.seeds, key)
        values = (rows.groupby(PAIR)[col].mean() if len(rows) and col in rows
                  else pd.Series(dtype=float))
        reps, seeds, blocks = None, None, ""
        if self.replicates is not None and col in self.replicates:
            hit = self._rows(self.replicates, key).sort_values("replicate")
            if len(hit):
                reps = hit[col].to_numpy(dtype=np.float64)
                seeds, blocks = str(hit["seeds"].iloc[0]), str(hit["blocks"].iloc[0])
        return Side(values, reps, seeds, blocks)

    def mean_side(self, keys: Sequence[Sequence], col: str) -> Side:
        """The mean of several rows' values, over the (seed, fold) pairs all of them have."""
        sides = [self.side(k, col) for k in keys]
        if not sides:
            return Side(pd.Series(dtype=float))
        values = pd.concat([s.values for s in sides], axis=1, join="inner").mean(axis=1)
        reps = None
        if all(s.replicates is not None for s in sides) and len({s.seeds for s in sides}) == 1 \
                and len({len(s.replicates) for s in sides}) == 1:
            reps = np.mean([s.replicates for s in sides], axis=0)
        return Side(values, reps, sides[0].seeds if reps is not None else None, sides[0].blocks)

    def compare(self, a: Side, b: Side, margin: float = 0.0, below: bool = False) -> Part:
        """The claim "a - b > margin" (``below``: "< margin"), judged by the rule."""
        iv = paired(a.values, b.values, self.rule.confidence)
        verdict, reason = judge(iv, margin, below=below, min_pairs=self.rule.min_pairs)
        regions = None
        if a.replicates is not None and b.replicates is not None:
            if a.seeds == b.seeds and len(a.replicates) == len(b.replicates):
                regions = percentile(a.replicates - b.replicates, self.rule.confidence,
                                     f"block bootstrap, {a.blocks}")
            else:
                regions = Interval(float("nan"), float("nan"), float("nan"), 0,
                                   "block bootstrap", "the two rows have different seeds")
        return Part(verdict, iv, regions, reason)


def exact(value: bool) -> Part:
    """A claim about a quantity with no sampling noise (a count, a size): held or not."""
    iv = Interval(float("nan"), float("nan"), float("nan"), 0, "exact",
                  "an exact quantity of the runs, not an estimate")
    return Part(HELD if value else NOT_HELD, iv, None)
