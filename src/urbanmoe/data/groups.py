"""Tabular feature groups (docs/data.md, "Feature groups"): named sets of numeric columns of the
region table (POI counts, land-use shares, mobility flows, building footprints...) that become
modalities beside ``image`` and ``text``.

A group is declared in ``dataset.yaml`` under ``feature_groups`` by a column prefix or a column
list, with the transform that suits it; the ``poi_`` columns form the group ``pois`` unless the
file declares a group of that name. A model takes a group as a branch by naming it in
``model.branches`` (UrbanMoE gives it its own Sparse Multi-Expert module, Section 2.4); the
matrix is standardised on the training rows at training time (``training/prepare.py``), like
every other modality.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from urbanmoe.data.table import FLOAT32_MAX, ID, POI_PREFIX, DataError

GROUP_KEYS = {"prefix", "columns", "transform"}
GROUP_TRANSFORMS = ("log1p", "share", "none")
# names that already mean something as a model input (training/prepare.py; "poi" is the POI
# vector p that joins z)
RESERVED = ("image", "text", "poi", "lag", "coords", "region_index", "location")
POI_GROUP = "pois"


@dataclass(frozen=True)
class FeatureGroup:
    """One group: its columns, in table order, and its transform."""

    name: str
    columns: tuple[str, ...]
    transform: str = "log1p"

    def matrix(self, table: pd.DataFrame) -> np.ndarray:
        """(N, d) features of the group, transformed.

        ``log1p``: log(1 + x), for counts; ``share``: each row divided by its sum (a region
        whose columns sum to 0 gets zeros), for compositions such as land-use areas; ``none``:
        the values as they are.
        """
        x = table[list(self.columns)].to_numpy(dtype=np.float64)
        if self.transform == "log1p":
            x = np.log1p(x)
        elif self.transform == "share":
            total = x.sum(axis=1, keepdims=True)
            x = np.divide(x, total, out=np.zeros_like(x), where=total > 0)
        return x.astype(np.float32)


def parse_groups(spec: Any, table: pd.DataFrame, path: Path) -> dict[str, FeatureGroup]:
    """The groups of ``dataset.yaml: feature_groups`` (``path`` names the file in errors),
    checked against the table, plus the implicit ``pois`` group of the ``poi_`` columns."""
    spec = spec or {}
    if not isinstance(spec, dict):
        raise DataError(f"{path}: key 'feature_groups': a mapping of group names, got {spec!r}")
    groups: dict[str, FeatureGroup] = {}
    for name, entry in spec.items():
        where = f"{path}: feature_groups.{name}"
        if not isinstance(name, str) or not name.isidentifier() or name in RESERVED:
            raise DataError(f"{where}: the name must be an identifier other than "
                            f"{list(RESERVED)}")
        entry = dict(entry or {})
        unknown = sorted(set(entry) - GROUP_KEYS)
        if unknown:
            raise DataError(f"{where}: unknown key {unknown[0]!r}")
        if ("prefix" in entry) == ("columns" in entry):
            raise DataError(f"{where}: give exactly one of 'prefix' and 'columns'")
        transform = entry.get("transform", "log1p")
        if transform not in GROUP_TRANSFORMS:
            raise DataError(f"{where}.transform: {transform!r} is not one of "
                            f"{list(GROUP_TRANSFORMS)}")
        if "prefix" in entry:
            columns = [c for c in table.columns if c.startswith(str(entry["prefix"]))]
            if not columns:
                raise DataError(f"{where}.prefix: no column of the table starts with "
                                f"{entry['prefix']!r}")
        else:
            columns = list(entry["columns"] or [])
            missing = [c for c in columns if c not in table.columns]
            if not columns or missing:
                raise DataError(f"{where}.columns: {missing[0] if missing else columns!r} "
                                "is not a column of the table")
        groups[name] = FeatureGroup(name, tuple(columns), transform)
    pois = tuple(c for c in table.columns if c.startswith(POI_PREFIX))
    if pois and POI_GROUP not in groups:
        groups[POI_GROUP] = FeatureGroup(POI_GROUP, pois, "log1p")
    return groups


def check_group_values(table: pd.DataFrame, groups: dict[str, FeatureGroup],
                       path: Path) -> None:
    """Every value of a group is a finite number, and >= 0 under ``log1p`` and ``share``."""
    for group in groups.values():
        for col in group.columns:
            values = pd.to_numeric(table[col], errors="coerce").to_numpy(dtype=np.float64)
            bad = ~np.isfinite(values) | (np.abs(np.nan_to_num(values)) > FLOAT32_MAX)
            if group.transform != "none":
                bad |= values < 0
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                value = table[col].iloc[i]
                value = value.item() if hasattr(value, "item") else value  # numpy -> Python
                need = "a number" if group.transform == "none" else "a number >= 0"
                need += f" within float32's range (|x| <= {FLOAT32_MAX:.4g})"
                raise DataError(f"{path}: column {col!r} (feature group {group.name!r}): "
                                f"{value!r} at region {table[ID].iloc[i]!r} is not {need}")
