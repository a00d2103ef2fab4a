"""HAFusion's public cities -> region-table dataset folders (docs/hafusion.md).

HAFusion (Sun et al., "Urban Region Representation Learning with Attentive Fusion", ICDE 2024;
``MiRuacle24/HAFusion``) publishes per city (New York 180 regions, Chicago 77, San Francisco
175) nine ``.npy`` files, rows in one region order and no coordinates or ids: POI and land-use
counts per region, three labels (check-ins, crimes, service calls), and four region x region
matrices. This module turns one city folder into the contract of docs/data.md:

- ``region_id`` ``r000``, ``r001``, ... in file order (the files' own order, which their
  evaluation folds follow);
- targets ``check_in``, ``crime``, ``service_call`` (raw counts, ``log1p`` by default);
- the POI counts as ``poi_00`` ... (the ``pois`` group), the land-use counts as a feature group
  ``landuse`` (``landuse_00`` ...): the upstream files name no categories;
- the four matrices copied, checked, into ``relations/`` and declared under ``relations:``.

Every file is checked before anything is written (shape, region count, finite, non-negative):
one line naming the file and the value. It never downloads anything.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from urbanmoe.binaries import read_npy
from urbanmoe.data.report import write_report
from urbanmoe.data.table import DataError, load_dataset
from urbanmoe.errors import InputError
from urbanmoe.io import atomic_path, sha256_file
from urbanmoe.readers import dump_yaml

REPOSITORY = "MiRuacle24/HAFusion"
COMMIT = "73fbe911901ada71bb40129e19d86dedb9b9602c"
RAW_BASE = f"https://raw.githubusercontent.com/{REPOSITORY}/{COMMIT}"
LICENCE = "none stated upstream: fetch from the upstream repository, do not redistribute"
CITIES = {"NY": "NYC", "Chi": "Chicago", "SF": "San Francisco"}  # folder suffix -> city
TARGETS = {  # our target -> (upstream file, unit)
    "check_in": ("check_counts.npy", "check-ins"),
    "crime": ("crime_counts.npy", "crimes"),
    "service_call": ("serviceCall_counts.npy", "service calls"),
}
GROUPS = {"poi": "poi_dist.npy", "landuse": "landUse_dist.npy"}  # counts per category
RELATIONS = {  # region x region matrices, copied as they are
    "mobility": "mob-adj.npy",
    "mobility_dist": "mob_dist.npy",
    "poi_similarity": "poi_simi.npy",
    "landuse_similarity": "landUse_simi.npy",
}
# a second sample of the same trips (docs/hafusion.md): HAFusion's view input, not a profile
NO_PROFILE = ("mobility_dist",)
# their evaluation as their code runs it per city (tasks_*/*.py; docs/hafusion.md), stated with
# the data so that protocol.name: hafusion reproduces it (evaluation/protocols.py)
PROTOCOLS = {
    "NY": {"folds": 10, "shuffle": False, "drop_zero": []},
    "Chi": {"folds": 25, "shuffle": True, "random_state": 2024, "drop_zero": ["check_in"]},
    "SF": {"folds": 10, "shuffle": True, "random_state": 2024, "drop_zero": ["check_in"]},
}
FILES = [f for f, _ in TARGETS.values()] + list(GROUPS.values()) + list(RELATIONS.values())


def upstream_path(folder: str, name: str) -> str:
    """A file's path in the upstream repository (``data_NY/poi_dist.npy``)."""
    return f"{folder}/{name}"


def _checked(path: Path, ndim: int, n: int | None) -> np.ndarray:
    """The array in ``path`` as float64: ``ndim`` dimensions, ``n`` regions (rows; and columns
    for a square matrix), every value finite and non-negative."""
    if not path.is_file():
        raise DataError(f"{path}: file not found (a HAFusion city folder holds {FILES})")
    a = read_npy(path, "a HAFusion array", error=DataError)
    if a.ndim != ndim or a.dtype.kind not in "biuf":
        raise DataError(f"{path}: expected a {ndim}-D numeric array, got shape {a.shape} "
                        f"of {a.dtype}")
    a = a.astype(np.float64)
    if n is not None and a.shape[0] != n:
        raise DataError(f"{path}: {a.shape[0]} rows, expected {n} (one per region)")
    bad = ~np.isfinite(a) | (a < 0)
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        raise DataError(f"{path}: value {a[where]!r} at {list(where)}: counts and weights are "
                        "finite and non-negative")
    return a


def import_hafusion_city(city_dir: Path, out_dir: Path, *, name: str | None = None) -> Path:
    """Turn one HAFusion city folder (``data_NY``, ``data_Chi``, ``data_SF`` or one of the same
    files) into a dataset folder at ``out_dir``, written atomically and validated with
    ``load_dataset`` before it appears; the inputs are read only."""
    city_dir, out_dir = Path(city_dir), Path(out_dir)
    suffix = city_dir.name.removeprefix("data_")
    name = name or suffix
    src, dst = city_dir.resolve(), out_dir.resolve()
    if src == dst or dst in src.parents or src in dst.parents:
        raise InputError(f"{out_dir}: the output folder would overlap the input {city_dir}")
    labels = {t: _checked(city_dir / f, 1, None) for t, (f, _) in TARGETS.items()}
    n = len(next(iter(labels.values())))
    for t, (f, _) in TARGETS.items():
        if len(labels[t]) != n:
            raise DataError(f"{city_dir / f}: {len(labels[t])} regions, but "
                            f"{TARGETS['check_in'][0]} has {n}")
    groups = {g: _checked(city_dir / f, 2, n) for g, f in GROUPS.items()}
    for f in RELATIONS.values():
        m = _checked(city_dir / f, 2, n)
        if m.shape != (n, n):
            raise DataError(f"{city_dir / f}: shape {m.shape}, expected {(n, n)} "
                            "(region x region)")

    table = pd.DataFrame({"region_id": [f"r{i:03d}" for i in range(n)]})
    for t, y in labels.items():
        table[t] = y
    prefix = {"poi": "poi_", "landuse": "landuse_"}
    for g, x in groups.items():
        for j in range(x.shape[1]):
            table[f"{prefix[g]}{j:02d}"] = x[:, j]
    folder = city_dir.name
    meta = {
        "name": name,
        "city": CITIES.get(suffix, name),
        "table": "regions.parquet",
        "targets": {t: {"transform": "log1p", "unit": unit} for t, (_, unit) in TARGETS.items()},
        "feature_groups": {"landuse": {"prefix": "landuse_"}},
        "relations": {r: ({"path": f"relations/{f}", "profile": False} if r in NO_PROFILE
                          else f"relations/{f}") for r, f in RELATIONS.items()},
        "source": {
            "repository": f"https://github.com/{REPOSITORY}",
            "commit": COMMIT,
            "adapter": "urbanmoe.data.sources.hafusion",
            "licence": LICENCE,
            "files": {f: {"upstream": upstream_path(folder, f),
                          "sha256": sha256_file(city_dir / f)} for f in FILES},
            "regions": n,
            "order": "rows in the upstream files' order (region_id r000 is row 0)",
            "categories": {g: int(x.shape[1]) for g, x in groups.items()},
            **({"protocols": {"hafusion": PROTOCOLS[suffix]}} if suffix in PROTOCOLS else {}),
            "zero_labels": {t: int((y == 0).sum()) for t, y in labels.items()},
        },
    }
    with atomic_path(out_dir, "dataset") as tmp:
        tmp.mkdir(parents=True)
        (tmp / "relations").mkdir()
        for f in RELATIONS.values():
            shutil.copyfile(city_dir / f, tmp / "relations" / f)
        table.to_parquet(tmp / meta["table"], index=False)
        (tmp / "dataset.yaml").write_text(dump_yaml(meta))
        write_report(load_dataset(tmp), tmp / "report")
    return out_dir
