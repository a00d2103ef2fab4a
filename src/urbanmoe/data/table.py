"""The region-table contract (docs/data.md): loading and validation of one city's dataset.

Every check stops at the first problem with one line naming the file, the column and the value.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from pyarrow import ArrowException

from urbanmoe.errors import DataError
from urbanmoe.readers import check_schema, load_yaml, read_csv, read_yaml

if TYPE_CHECKING:
    from urbanmoe.data.groups import FeatureGroup
    from urbanmoe.data.relations import Relation

ID = "region_id"
POI_PREFIX = "poi_"
TRANSFORMS = ("log1p", "none")
_DATASET_KEYS = {"name", "city", "table", "targets", "embeddings", "feature_groups", "bbox",
                 "geometry", "noise_ceiling", "source", "relations"}
_TARGET_KEYS = {"transform", "unit"}
# every number a model takes is computed in float32: a value beyond its range would be infinite
FLOAT32_MAX = float(np.finfo(np.float32).max)
NAME_MAX = 100


@dataclass
class RegionDataset:
    """One city: its validated region table and what ``dataset.yaml`` says about it."""

    root: Path
    name: str
    table: pd.DataFrame
    tasks: list[str]
    transforms: dict[str, str]
    meta: dict[str, Any] = field(default_factory=dict)
    # tabular feature groups by name (data/groups.py); ``pois`` holds the poi_ columns
    feature_groups: dict[str, FeatureGroup] = field(default_factory=dict)
    # region x region relations by name (data/relations.py)
    relations: dict[str, Relation] = field(default_factory=dict)
    # the geometry's centroids, read on first use when the table has no lat/lon
    _centroids: np.ndarray | None = field(default=None, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.table)

    @property
    def ids(self) -> np.ndarray:
        return self.table[ID].to_numpy()

    @property
    def coords(self) -> np.ndarray | None:
        """(N, 2) lat/lon in degrees: the table's ``lat``/``lon``, else the centroids of the
        ``geometry`` file's shapes (``data/geometry.py``); None when the city has neither."""
        if {"lat", "lon"} <= set(self.table.columns):
            return self.table[["lat", "lon"]].to_numpy(dtype=np.float64)
        if self.meta.get("geometry"):
            if self._centroids is None:
                from urbanmoe.data.geometry import centroids  # (imports this module)

                self._centroids = centroids(self)
            return self._centroids
        return None

    @property
    def coords_source(self) -> str:
        """Where :attr:`coords` come from: ``lat/lon``, ``geometry centroids`` or ``none``."""
        if {"lat", "lon"} <= set(self.table.columns):
            return "lat/lon"
        return "geometry centroids" if self.meta.get("geometry") else "none"

    @property
    def poi_columns(self) -> list[str]:
        return [c for c in self.table.columns if c.startswith(POI_PREFIX)]

    @property
    def texts(self) -> list[str] | None:
        if "text" not in self.table.columns:
            return None
        return self.table["text"].fillna("").astype(str).tolist()

    @property
    def image_paths(self) -> list[Path] | None:
        if "image_path" not in self.table.columns:
            return None
        return [self.root / p for p in self.table["image_path"].astype(str)]

    def targets(self) -> np.ndarray:
        """(N, T) raw targets in task order; NaN where missing."""
        return self.table[self.tasks].to_numpy(dtype=np.float64)

    def embedding(self, modality: str) -> np.ndarray | None:
        """Precomputed (N, d) embeddings of a modality aligned to the table, or None."""
        rel = (self.meta.get("embeddings") or {}).get(modality)
        if rel is None:
            return None
        return read_embeddings(self.root / rel, self.ids)

    def relation(self, name: str) -> np.ndarray:
        """Relation ``name`` as an (N, N) float64 matrix in table order (data/relations.py)."""
        return self.relations[name].dense(self.ids)

    @property
    def table_path(self) -> Path:
        return self.root / self.meta["table"]


def _fail(path: Path, column: str, message: str) -> DataError:
    return DataError(f"{path}: column {column!r}: {message}")


def read_table(path: Path) -> pd.DataFrame:
    """Read a CSV or Parquet table; region_id read as string, exactly as written.

    Ids are never missing values: ``NA`` (a district code), ``null`` or ``nan`` stay those
    strings, and an empty cell (or a Parquet null) becomes ``""``, which :func:`_check_ids`
    refuses. Other columns keep pandas' missing-value spellings (an empty target cell is a
    missing label)."""
    if not path.exists():
        raise DataError(f"{path}: file not found")
    if path.is_dir():
        raise DataError(f"{path}: a folder, not a table file")
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".parquet"):
        raise DataError(f"{path}: unsupported table format {path.suffix!r} (use .csv or .parquet)")
    if suffix == ".csv":
        header = read_csv(path, error=DataError, header=None, nrows=1, dtype=str,
                          keep_default_na=False).iloc[0].tolist()
        _unique_columns(header, path)
        df = read_csv(path, error=DataError, dtype={ID: str}, keep_default_na=True)
        if ID in df.columns:  # again, the ids alone, without missing-value spellings
            df[ID] = read_csv(path, error=DataError, usecols=[ID], dtype=str,
                              keep_default_na=False)[ID].to_numpy()
    else:
        try:
            df = pd.read_parquet(path)
        except (OSError, ArrowException) as exc:
            raise DataError(f"{path}: not a readable Parquet table: "
                            f"{' '.join(str(exc).split())[:200]}") from None
        _unique_columns([str(c) for c in df.columns], path)
        if ID in df.columns:
            df[ID] = df[ID].astype(object).where(df[ID].notna(), "")
    if ID in df.columns:
        df[ID] = df[ID].astype(str)
    return df


def _unique_columns(names: list[str], path: Path) -> None:
    """A column name given twice is refused: which of the two a role reads would be a guess
    (pandas would silently rename the second ``name.1``)."""
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise DataError(f"{path}: column {name!r}: appears twice in the header")
        seen.add(name)


def _check_ids(df: pd.DataFrame, path: Path) -> None:
    if df.empty:
        raise DataError(f"{path}: the table is empty")
    if ID not in df.columns:
        raise DataError(f"{path}: column {ID!r}: missing")
    dup = df[ID][df[ID].duplicated()]
    if len(dup):
        raise _fail(path, ID, f"duplicate id {dup.iloc[0]!r}")
    empty = df[ID].str.strip() == ""
    if empty.any():
        raise _fail(path, ID, f"empty id at row {int(np.argmax(empty.to_numpy()))}")


def _numeric(df: pd.DataFrame, col: str, path: Path, *, missing_ok: bool) -> pd.Series:
    """The column as float, failing on the first non-numeric (or, unless allowed, missing) cell,
    and on the first infinite one or one beyond float32's range (``FLOAT32_MAX``, about
    3.4e38: the models compute in float32, where it would become infinite)."""
    raw = df[col]
    if raw.dtype == object:  # a list or array in a cell (a Parquet list column) is no number
        nested = raw.map(lambda v: np.ndim(v) > 0).to_numpy(dtype=bool)
        if nested.any():
            i = int(np.argmax(nested))
            raise _fail(path, col, f"a list of {len(raw.iloc[i])} values where a number belongs "
                                   f"(region {df[ID].iloc[i]!r})")
    values = pd.to_numeric(raw, errors="coerce")
    bad = values.isna().to_numpy() & (raw.notna().to_numpy() | (not missing_ok))
    if bad.any():
        i = int(np.argmax(bad))
        cell = raw.iloc[i]
        what = "missing value" if pd.isna(cell) else f"non-numeric value {_show(cell)}"
        raise _fail(path, col, f"{what} (region {df[ID].iloc[i]!r})")
    values = values.astype(np.float64)
    x = values.to_numpy()
    _first_bad(df, col, np.isinf(x), path, "infinite value")
    _first_bad(df, col, np.abs(np.nan_to_num(x)) > FLOAT32_MAX, path,
               f"value beyond the range the models compute in (|x| <= {FLOAT32_MAX:.4g}):")
    return values


def _show(value: Any) -> str:
    """A cell as the user wrote it: 3.0, 'lots' (not np.float64(3.0))."""
    return repr(value.item() if isinstance(value, np.generic) else value)


def _first_bad(df: pd.DataFrame, col: str, mask: np.ndarray, path: Path, what: str) -> None:
    if mask.any():
        i = int(np.argmax(mask))
        raise _fail(path, col, f"{what} {_show(df[col].iloc[i])} (region {df[ID].iloc[i]!r})")


def _check_targets(df: pd.DataFrame, targets: dict[str, dict], path: Path) -> None:
    for name, spec in targets.items():
        if name not in df.columns:
            raise _fail(path, name, "target column missing")
        values = _numeric(df, name, path, missing_ok=True)
        if spec["transform"] == "log1p":
            _first_bad(df, name, (values < 0).to_numpy(), path, "negative value under log1p")
        df[name] = values


def _check_coords(df: pd.DataFrame, path: Path) -> None:
    present = [c for c in ("lat", "lon") if c in df.columns]
    if len(present) == 1:
        raise _fail(path, present[0], "lat and lon come together; the other is missing")
    for col, limit in (("lat", 90.0), ("lon", 180.0)):
        if col in df.columns:
            values = _numeric(df, col, path, missing_ok=False)
            _first_bad(df, col, (values.abs() > limit).to_numpy(), path, "out of range")
            df[col] = values


def _check_pois(df: pd.DataFrame, path: Path) -> None:
    for col in (c for c in df.columns if c.startswith(POI_PREFIX)):
        values = _numeric(df, col, path, missing_ok=False)
        _first_bad(df, col, (values < 0).to_numpy(), path, "negative count")
        df[col] = values


def inside(rel: Any) -> str | None:
    """Why a path of the data contract breaks its rule, or None: paths are relative to the
    dataset folder and stay inside it as written (``tiles/../tiles/a.png`` does; ``../a.png``
    and ``/data/a.png`` do not). A symbolic link inside the folder may point anywhere: where
    the link leads is the user's explicit choice."""
    text = str(rel)
    if not text.strip():
        return "is empty"
    if os.path.isabs(text) or text.startswith("~"):
        return ("is absolute; paths are relative to the dataset folder (a symbolic link inside "
                "it may point elsewhere)")
    norm = os.path.normpath(text)
    if norm == ".." or norm.startswith(".." + os.sep):
        return ("leads outside the dataset folder; paths stay inside it (a symbolic link inside "
                "it may point elsewhere)")
    return None


def _check_images(df: pd.DataFrame, root: Path, path: Path) -> None:
    if "image_path" not in df.columns:
        return
    missing = df["image_path"].isna().to_numpy()
    _first_bad(df, "image_path", missing, path, "missing tile")
    escapes = np.array([inside(p) is not None for p in df["image_path"]])
    if escapes.any():
        i = int(np.argmax(escapes))
        cell = df["image_path"].iloc[i]
        raise _fail(path, "image_path", f"{cell!r} (region {df[ID].iloc[i]!r}) {inside(cell)}")
    exists = np.array([(root / str(p)).is_file() for p in df["image_path"]])
    _first_bad(df, "image_path", ~exists, path, "file not found:")


def read_embeddings(path: Path, ids: np.ndarray) -> np.ndarray:
    """Read an embeddings table (region_id + numeric columns) aligned to ``ids``."""
    df = read_table(path)
    _check_ids(df, path)
    cols = [c for c in df.columns if c != ID]
    if not cols:
        raise DataError(f"{path}: no embedding columns besides {ID!r}")
    for col in cols:
        df[col] = _numeric(df, col, path, missing_ok=False)
    known = set(df[ID])
    absent = [i for i in ids if i not in known]
    if absent:
        raise _fail(path, ID, f"region {absent[0]!r} is in the table but not in this modality")
    extra = known - set(ids)
    if extra:
        raise _fail(path, ID, f"region {sorted(extra)[0]!r} is in this modality but not the table")
    return df.set_index(ID).loc[ids, cols].to_numpy(dtype=np.float32)


def _read_meta(root: Path) -> dict[str, Any]:
    path = root / "dataset.yaml"
    if not path.is_file():
        raise DataError(f"{path}: file not found (a dataset folder needs a dataset.yaml)")
    meta = read_yaml(path, error=DataError)
    unknown = sorted(set(meta) - _DATASET_KEYS)
    if unknown:
        raise DataError(f"{path}: unknown key {unknown[0]!r}")
    for key in ("name", "table", "targets"):
        if key not in meta:
            raise DataError(f"{path}: key {key!r}: missing")
    targets = meta["targets"]
    if not isinstance(targets, dict) or not targets:
        raise DataError(f"{path}: key 'targets': needs at least one target (a mapping of "
                        f"names), got {_show(targets)[:80]}")
    check_schema(meta, _schema(), str(path), error=DataError)
    _check_name(meta["name"], path)
    for key, rel in [("table", meta["table"]), ("geometry", meta.get("geometry")),
                     *((f"embeddings.{m}", r) for m, r in (meta.get("embeddings") or {}).items())]:
        if rel is not None and (why := inside(rel)) is not None:
            raise DataError(f"{path}: key {key!r}: {str(rel)!r} {why}")
    for name, spec in list(targets.items()):
        spec = {"transform": "log1p"} if spec is None else dict(spec)
        bad = sorted(set(spec) - _TARGET_KEYS)
        if bad:
            raise DataError(f"{path}: targets.{name}: unknown key {bad[0]!r}")
        spec.setdefault("transform", "log1p")
        if spec["transform"] not in TRANSFORMS:
            raise DataError(f"{path}: targets.{name}.transform: {spec['transform']!r} "
                            f"is not one of {list(TRANSFORMS)}")
        targets[name] = spec
    ceiling = {t: v for t, v in (meta.get("noise_ceiling") or {}).items() if v is not None}
    for task, value in ceiling.items():
        if task not in targets:
            raise DataError(f"{path}: noise_ceiling.{task}: {task!r} is not a target")
        if not -float("inf") < value <= 1.0:  # an R² ceiling: finite, at most 1 (NaN fails)
            raise DataError(f"{path}: noise_ceiling.{task}: {value!r} is not an R² (at most 1)")
    meta["noise_ceiling"] = ceiling or None  # null per task: not known
    return meta


def _schema() -> dict[str, Any]:
    """The JSON schema of ``dataset.yaml`` (``resources/dataset.schema.yaml``)."""
    from importlib import resources

    text = resources.files("urbanmoe").joinpath("resources/dataset.schema.yaml").read_text()
    return load_yaml(text, "urbanmoe/resources/dataset.schema.yaml")


def _check_name(name: Any, path: Path) -> None:
    """A dataset's name becomes part of file names (feature caches, maps): it may not hold a
    path separator or control character, be ``.`` or ``..``, start with a dot, be empty or
    longer than ``NAME_MAX``. Spaces and other characters are fine (file names slug them)."""
    text = str(name)
    bad = (not text.strip() or len(text) > NAME_MAX or text.startswith(".")
           or any(c in text for c in "/\\") or any(ord(c) < 32 for c in text))
    if bad:
        raise DataError(f"{path}: key 'name': {text[:NAME_MAX + 20]!r} is not a safe name (no "
                        f"path separator, control character or leading dot, 1 to {NAME_MAX} "
                        "characters): it becomes part of file names")


def load_dataset(root: Path) -> RegionDataset:
    """Load and validate a dataset folder (``dataset.yaml`` + region table)."""
    root = Path(root)
    meta = _read_meta(root)
    path = root / str(meta["table"])
    df = read_table(path)
    _check_ids(df, path)
    from urbanmoe.data.groups import RESERVED, check_group_values, parse_groups  # (imports this)
    from urbanmoe.data.leaks import check_leaks, embedding_columns
    from urbanmoe.data.relations import check_relations, parse_relations

    groups = parse_groups(meta.get("feature_groups"), df, root / "dataset.yaml")
    taken = {*groups, *(meta.get("embeddings") or {}), *RESERVED}
    relations = parse_relations(meta.get("relations"), root, root / "dataset.yaml", taken)
    check_leaks(root / "dataset.yaml", meta["targets"], df.columns, groups,
                embedding_columns(root, meta.get("embeddings")))
    _check_targets(df, meta["targets"], path)
    _check_coords(df, path)
    _check_pois(df, path)
    _check_images(df, root, path)
    check_group_values(df, groups, path)
    ds = RegionDataset(
        root=root,
        name=str(meta["name"]),
        table=df.reset_index(drop=True),
        tasks=list(meta["targets"]),
        transforms={k: v["transform"] for k, v in meta["targets"].items()},
        meta=meta,
        feature_groups=groups,
        relations=relations,
    )
    check_relations(relations, ds.ids)
    for modality in meta.get("embeddings") or {}:
        ds.embedding(modality)  # validate ids and values now, not mid-training
    from urbanmoe.data.geometry import geometry_path  # (imports this module)

    geometry_path(ds)  # the file exists; its shapes are read (and checked) by its readers
    return ds
