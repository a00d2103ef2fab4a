"""Raw POI categories -> the paper's 15 major categories (Section 3.1, Section 2.3.2).

A mapping is a YAML file ``{categories: {<major>: {exact: [...], prefix: [...]}}}`` whose majors
are names of :data:`urbanmoe.data.poi.POI_CATEGORIES`. A raw category (stripped, lower-cased)
maps by exact name first, then by the longest matching prefix; anything else is unmapped.
The packaged default (``resources/poi_mapping.yaml``) covers AMap/Gaode top-level classes and
common OpenStreetMap ``key=value`` tags; see docs/build.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from urbanmoe.data.poi import POI_CATEGORIES
from urbanmoe.data.table import DataError
from urbanmoe.readers import read_yaml


@dataclass(frozen=True)
class PoiMapping:
    """Exact names and prefixes of raw categories, each mapped to a major-category index."""

    exact: dict[str, int]
    prefixes: tuple[tuple[str, int], ...]  # longest prefix first
    source: str

    def lookup(self, raw: str) -> int:
        """Index into :data:`POI_CATEGORIES` of one raw category, or -1 when unmapped."""
        key = str(raw).strip().lower()
        if key in self.exact:
            return self.exact[key]
        for prefix, idx in self.prefixes:
            if key.startswith(prefix):
                return idx
        return -1

    def assign(self, raw: pd.Series) -> np.ndarray:
        """Vectorised :meth:`lookup` over a column (each distinct value looked up once)."""
        codes, uniques = pd.factorize(raw.astype(str), sort=False)
        table = np.array([self.lookup(u) for u in uniques] + [-1], dtype=np.int64)
        return table[codes]  # code -1 (missing) picks the trailing -1


def default_mapping_path() -> Path:
    """Path of the packaged default mapping (``urbanmoe/resources/poi_mapping.yaml``)."""
    return Path(str(resources.files("urbanmoe").joinpath("resources/poi_mapping.yaml")))


def load_mapping(path: Path | None = None) -> PoiMapping:
    """Load and check a category mapping (the packaged default when ``path`` is None)."""
    path = Path(path) if path is not None else default_mapping_path()
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    doc = read_yaml(path, error=DataError, expect=None) or {}
    cats = doc.get("categories") if isinstance(doc, dict) else None
    if not isinstance(cats, dict):
        raise DataError(f"{path}: key 'categories': missing or not a mapping")
    exact: dict[str, int] = {}
    prefixes: dict[str, int] = {}
    for major, rules in cats.items():
        if major not in POI_CATEGORIES:
            raise DataError(f"{path}: categories: unknown major category {major!r}")
        rules = rules or {}
        bad = sorted(set(rules) - {"exact", "prefix"})
        if bad:
            raise DataError(f"{path}: categories.{major}: unknown key {bad[0]!r}")
        idx = POI_CATEGORIES.index(major)
        for kind, target in (("exact", exact), ("prefix", prefixes)):
            for name in rules.get(kind) or []:
                key = str(name).strip().lower()
                if key in target and target[key] != idx:
                    raise DataError(f"{path}: categories.{major}.{kind}: {name!r} is already "
                                    f"mapped to {POI_CATEGORIES[target[key]]!r}")
                target[key] = idx
    ordered = tuple(sorted(prefixes.items(), key=lambda kv: (-len(kv[0]), kv[0])))
    return PoiMapping(exact=exact, prefixes=ordered, source=path.name)
