"""Region x region relations (docs/data.md, "Relations"): mobility flows, similarity graphs,
adjacency, declared under ``relations:`` in ``dataset.yaml``.

A relation is one non-negative weight per ordered pair of regions, given either as

* an ``.npy`` matrix of shape (N, N), rows and columns in the region table's order, or
* a table (CSV or Parquet) of ``source``, ``target`` and ``weight`` columns keyed by
  ``region_id`` (other column names are set with ``source:``, ``target:``, ``weight:``; without
  a weight column every listed pair weighs 1; a pair not listed weighs 0).

Every relation is read and checked when the dataset is loaded, before anything else runs: the
shape or ids, finite numbers, no negative weight, no pair listed twice; each break is one line
naming the file and the value. What models do with a relation: the graph learners
(``hafusion``, ``mvure``) take it as a graph; every other model takes each relation's row
profile as a feature group of its own (``features/relations.py``), unless the entry says
``profile: false``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse

from urbanmoe.binaries import read_npy
from urbanmoe.data.table import FLOAT32_MAX, DataError, RegionDataset, inside, read_table
from urbanmoe.errors import ConfigError

ENTRY_KEYS = {"path", "profile", "source", "target", "weight"}
SIMILARITY = "_similarity"  # relations named like this are similarity graphs, not flows
TABLE_SUFFIXES = (".csv", ".parquet")


@dataclass(frozen=True)
class Relation:
    """One declared relation: where it lives and whether models take its row profile."""

    name: str
    path: Path
    profile: bool = True
    source: str = "source"
    target: str = "target"
    weight: str = "weight"

    def csr(self, ids: np.ndarray) -> sparse.csr_matrix:
        """The (N, N) weights as a sparse matrix in the order of ``ids`` (the table's), checked."""
        if self.path.suffix.lower() == ".npy":
            return sparse.csr_matrix(self._npy(len(ids)))
        return self._edges(ids)

    def dense(self, ids: np.ndarray) -> np.ndarray:
        """The (N, N) weights as a float64 array in the order of ``ids``, checked."""
        if self.path.suffix.lower() == ".npy":
            return self._npy(len(ids))
        return self._edges(ids).toarray()

    def _npy(self, n: int) -> np.ndarray:
        a = read_npy(self.path, f"relation {self.name!r} (an N x N matrix)", error=DataError)
        if a.dtype.kind not in "biuf":
            raise DataError(f"{self.path}: relation {self.name!r}: {a.dtype} values, expected "
                            "numbers")
        if a.shape != (n, n):
            raise DataError(f"{self.path}: relation {self.name!r}: shape {a.shape}, expected "
                            f"{(n, n)} (rows and columns in the region table's order)")
        a = a.astype(np.float64)
        bad = ~np.isfinite(a) | (a < 0) | (np.abs(np.nan_to_num(a)) > FLOAT32_MAX)
        if bad.any():
            i, j = (int(k) for k in np.argwhere(bad)[0])
            raise DataError(f"{self.path}: relation {self.name!r}: value {a[i, j]!r} at row "
                            f"{i}, column {j}; weights are finite numbers >= 0")
        return a

    def _edges(self, ids: np.ndarray) -> sparse.csr_matrix:
        df = read_table(self.path)
        where = f"{self.path}: relation {self.name!r}"
        for col in (self.source, self.target):
            if col not in df.columns:
                raise DataError(f"{where}: column {col!r}: missing (a table of source, target "
                                "and weight columns)")
        index = {str(r): k for k, r in enumerate(ids)}
        rows = [_positions(df[c], index, f"{where}: column {c!r}") for c in (self.source,
                                                                             self.target)]
        if self.weight in df.columns:
            w = pd.to_numeric(df[self.weight], errors="coerce").to_numpy(dtype=np.float64)
            bad = ~np.isfinite(w) | (w < 0) | (np.abs(np.nan_to_num(w)) > FLOAT32_MAX)
            if bad.any():
                k = int(np.argmax(bad))
                raise DataError(f"{where}: column {self.weight!r}: {df[self.weight].iloc[k]!r} "
                                f"at row {k}; weights are finite numbers >= 0")
        else:
            w = np.ones(len(df))
        pairs = rows[0].astype(np.int64) * len(ids) + rows[1]
        _, first, counts = np.unique(pairs, return_index=True, return_counts=True)
        if (counts > 1).any():
            k = int(first[np.argmax(counts > 1)])
            raise DataError(f"{where}: the pair {df[self.source].iloc[k]!r} -> "
                            f"{df[self.target].iloc[k]!r} is listed more than once")
        n = len(ids)
        return sparse.csr_matrix((w, (rows[0], rows[1])), shape=(n, n))


def _positions(column: pd.Series, index: dict[str, int], where: str) -> np.ndarray:
    values = column.astype(str).to_numpy()
    pos = np.array([index.get(v, -1) for v in values], dtype=np.int64)
    if (pos < 0).any():
        k = int(np.argmax(pos < 0))
        raise DataError(f"{where}: region {values[k]!r} at row {k} is not in the region table")
    return pos


def parse_relations(spec: Any, root: Path, path: Path, taken: set[str]) -> dict[str, Relation]:
    """The relations of ``dataset.yaml: relations`` (``path`` names the file in errors);
    ``taken`` holds the names already meaning a modality (feature groups, embeddings,
    reserved inputs), which a relation may not reuse."""
    if not spec:
        return {}
    if not isinstance(spec, dict):
        raise DataError(f"{path}: key 'relations': a mapping of relation names to files, got "
                        f"{spec!r}"[:300])
    out: dict[str, Relation] = {}
    for name, entry in spec.items():
        where = f"{path}: relations.{name}"
        if not isinstance(name, str) or not name.isidentifier() or name in taken:
            raise DataError(f"{where}: the name must be an identifier other than the feature "
                            f"groups, embeddings and inputs {sorted(taken)}")
        entry = {"path": entry} if isinstance(entry, str) else dict(entry or {})
        unknown = sorted(set(entry) - ENTRY_KEYS)
        if unknown:
            raise DataError(f"{where}: unknown key {unknown[0]!r} (known: {sorted(ENTRY_KEYS)})")
        rel = entry.get("path")
        if not isinstance(rel, str):
            raise DataError(f"{where}.path: missing (an .npy matrix or a table of source, "
                            "target, weight)")
        if (why := inside(rel)) is not None:
            raise DataError(f"{where}.path: {rel!r} {why}")
        if Path(rel).suffix.lower() not in (".npy", *TABLE_SUFFIXES):
            raise DataError(f"{where}.path: {rel!r}: use an .npy matrix or a .csv/.parquet "
                            "table of source, target, weight")
        if not isinstance(entry.get("profile", True), bool):
            raise DataError(f"{where}.profile: {entry['profile']!r} is not true or false")
        columns = {k: str(entry[k]) for k in ("source", "target", "weight") if k in entry}
        out[name] = Relation(name, root / rel, bool(entry.get("profile", True)), **columns)
    return out


def check_relations(relations: dict[str, Relation], ids: np.ndarray) -> None:
    """Read every relation once now, so that a bad file stops the run before any work."""
    for relation in relations.values():
        relation.csr(ids)


def mobility_relation(ds: RegionDataset, choice: str, key: str) -> str:
    """The relation a graph learner reads as mobility (``key``, e.g. ``baselines.mvure.mobility``,
    names the setting in errors): ``choice`` itself, or under ``auto`` the relation named
    ``mobility``, else the only one not named ``*_similarity``, else the only one."""
    names = list(ds.relations)
    if not names:
        raise DataError(f"{ds.name}: {key} needs a mobility relation (dataset.yaml "
                        "relations:); it has none")
    if choice != "auto":
        if choice not in ds.relations:
            raise ConfigError(f"{key}: {choice!r} is not a relation of {ds.name} (it has "
                              f"{names})")
        return choice
    if "mobility" in ds.relations:
        return "mobility"
    flows = [r for r in names if not r.endswith(SIMILARITY)]
    if len(flows) == 1:
        return flows[0]
    if len(names) == 1:
        return names[0]
    raise ConfigError(f"{key}: auto cannot choose among {ds.name}'s relations {names} (none "
                      "is named 'mobility'); name one")
