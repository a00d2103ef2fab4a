"""Cross-city transfer: train on one city, test on another that has no labels at all.

Not in the paper; the spatial-context extension's other use case (docs/spatial.md). A
practitioner's new city has no labels, so no spatial lag and no kNN exist there: what carries over
is what the features alone say. A transfer run

* joins the source and target region tables into one in-memory dataset on the tasks both have
  (same transforms), the columns both have (text, image tiles, the POI categories of both) and,
  for each, whether it comes from the source or the target;
* trains on a seeded random part of the source (``split.fractions``' train share against its
  validation share) with early stopping on the rest of the source, and tests on every target
  region;
* turns off what only works inside one city: the region embedding (``model.use_region``), the
  spatial lag and the ensembles (``spatial.*``), LightGBM's raw lat/lon; models on coordinates
  (kNN) are skipped with the reason.

Unsupervised encoders (TF-IDF + SVD of the text) are fitted on both cities' inputs, never on
labels; the joined table is kept as a dataset folder under ``features.cache_dir/transfer/`` so
its features are encoded once per pair and cached.

A city can also be cut in two along its median longitude or latitude (``part``: west, east,
south, north), so the one real city at hand gives a transfer across a city: train in the west,
test in the east.
"""

from __future__ import annotations

import copy
import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from urbanmoe.data.splits import Split
from urbanmoe.data.table import ID, RegionDataset, load_dataset
from urbanmoe.errors import ConfigError, DataError, InputError
from urbanmoe.evaluation.run import run_on
from urbanmoe.io import atomic_path
from urbanmoe.readers import dump_yaml

PARTS = ("all", "west", "east", "south", "north")


def city_part(ds: RegionDataset, part: str) -> RegionDataset:
    """The regions of ``ds`` west/east of its median longitude or south/north of its median
    latitude (``all``: every region)."""
    if part == "all":
        return ds
    if part not in PARTS:
        raise ConfigError(f"transfer: part {part!r} is not one of {PARTS}")
    if ds.coords is None:
        raise DataError(f"{ds.root}: transfer part {part} needs lat/lon columns")
    axis = 1 if part in ("west", "east") else 0
    values = ds.coords[:, axis]
    median = float(np.median(values))
    keep = values < median if part in ("west", "south") else values >= median
    table = ds.table.loc[keep].reset_index(drop=True)
    return RegionDataset(ds.root, f"{ds.name}-{part}", table, ds.tasks, ds.transforms,
                         dict(ds.meta), dict(ds.feature_groups))


def _absolute_images(ds: RegionDataset) -> pd.Series:
    return pd.Series([str(p.resolve()) for p in ds.image_paths or []], dtype=object)


def join_cities(source: RegionDataset, target: RegionDataset) -> tuple[RegionDataset, int]:
    """One dataset of both cities (source rows first) on what they share; and the source size.

    A one-line error when they share no task or transform a shared task differently.
    """
    tasks = [t for t in source.tasks if t in target.tasks]
    if not tasks:
        raise DataError(f"transfer: {source.name} ({source.tasks}) and {target.name} "
                         f"({target.tasks}) share no target")
    for t in tasks:
        if source.transforms[t] != target.transforms[t]:
            raise DataError(f"transfer: target {t!r} is {source.transforms[t]} in "
                             f"{source.name} and {target.transforms[t]} in {target.name}")
    cols = [c for c in ("lat", "lon", "text") if c in source.table and c in target.table]
    cols += sorted(set(source.poi_columns) & set(target.poi_columns))
    parts = []
    for tag, ds in (("source", source), ("target", target)):
        part = ds.table[cols + tasks].copy()
        part.insert(0, ID, [f"{tag}:{i}" for i in ds.ids])
        if source.image_paths is not None and target.image_paths is not None:
            part["image_path"] = _absolute_images(ds).to_numpy()
        parts.append(part)
    table = pd.concat(parts, ignore_index=True)
    meta = {"name": f"{source.name}->{target.name}", "table": "(transfer, in memory)",
            "noise_ceiling": {t: v for t, v in (target.meta.get("noise_ceiling") or {}).items()
                              if t in tasks} or None}
    joined = RegionDataset(source.root, meta["name"], table, tasks,
                           {t: source.transforms[t] for t in tasks}, meta)
    return joined, len(source)


def materialise(joined: RegionDataset, cache_dir: Path) -> RegionDataset:
    """The joined dataset as a dataset folder under ``cache_dir/transfer/`` (named by a hash of
    its table), so its features are encoded once per pair and cached like any dataset's.

    An existing folder of the same content is reused; concurrent writers do not clash (the first
    rename wins, the others drop their copy). Tiles are linked into the folder (``tiles/``), as
    the data contract wants every path inside the dataset folder.
    """
    table_hash = hashlib.sha256(
        pd.util.hash_pandas_object(joined.table, index=False).to_numpy().tobytes()).hexdigest()
    name = joined.name.replace(">", "").replace("/", "_")
    folder = Path(cache_dir) / "transfer" / f"{name}-{table_hash[:12]}"
    if not (folder / "dataset.yaml").is_file():
        with atomic_path(folder, "cache") as tmp:
            tmp.mkdir(parents=True)
            table = joined.table.copy()
            if "image_path" in table:  # links inside the folder to both cities' tiles
                (tmp / "tiles").mkdir()
                links = [f"tiles/{k}{Path(p).suffix}" for k, p in enumerate(table["image_path"])]
                for link, src in zip(links, table["image_path"], strict=True):
                    (tmp / link).symlink_to(src)
                table["image_path"] = links
            table.to_parquet(tmp / "regions.parquet", index=False)
            meta = {"name": joined.name, "table": "regions.parquet",
                    "targets": {t: {"transform": joined.transforms[t]} for t in joined.tasks}}
            if joined.meta.get("noise_ceiling"):
                meta["noise_ceiling"] = joined.meta["noise_ceiling"]
            (tmp / "dataset.yaml").write_text(dump_yaml(meta))
    return load_dataset(folder)


def transfer_split(n_source: int, n_total: int, fractions: list[float], seed: int) -> Split:
    """Train and validation from a seeded permutation of the source rows (in the ratio of the
    configured train and validation shares); every target row is a test row."""
    order = np.random.default_rng(seed).permutation(n_source)
    n_train = int(round(n_source * fractions[0] / (fractions[0] + fractions[1])))
    return Split(np.sort(order[:n_train]), np.sort(order[n_train:]),
                 np.arange(n_source, n_total))


def transfer_config(cfg: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """``cfg`` with what only works inside one city turned off, and what was turned off."""
    out = copy.deepcopy(cfg)
    changed = []
    if out["model"]["use_region"]:
        out["model"]["use_region"] = False
        changed.append("model.use_region")
    for key, off in (("lag", "none"), ("ensemble", "none")):
        if out["spatial"][key] != off:
            out["spatial"][key] = off
            changed.append(f"spatial.{key}")
    if out["baselines"]["lightgbm"]["use_coords"]:
        out["baselines"]["lightgbm"]["use_coords"] = False
        changed.append("baselines.lightgbm.use_coords")
    return out, changed


def transfer_run(source_dir: Path, target_dir: Path, seed: int, out_dir: Path,
                 cfg: dict[str, Any], *, source_part: str = "all", target_part: str = "all",
                 progress: bool = True, variant: str | None = None) -> dict[str, Any]:
    """Train on the source city (or part), test on the target; write a run folder."""
    if Path(source_dir).resolve() == Path(target_dir).resolve():
        overlap = source_part == target_part or "all" in (source_part, target_part)
        if overlap or {source_part, target_part} not in ({"west", "east"}, {"south", "north"}):
            raise InputError(f"transfer: {source_dir} {source_part} -> {target_part} overlap; "
                             "use opposite parts (west/east, south/north) of one city")
    source = city_part(load_dataset(Path(source_dir)), source_part)
    target = city_part(load_dataset(Path(target_dir)), target_part)
    joined, n_source = join_cities(source, target)
    cache = Path(cfg["features"]["cache_dir"])
    joined = materialise(joined, cache)
    cfg, changed = transfer_config(cfg)
    split = transfer_split(n_source, len(joined), cfg["split"]["fractions"], seed)
    skip = None
    if cfg["model"]["name"] in ("knn", "knn_tuned"):
        skip = (f"{cfg['model']['name']} predicts from labelled neighbours; the target "
                f"{target.name} has none")
    extra = {"transfer": {"source": source.name, "target": target.name,
                          "source_dir": str(source_dir), "target_dir": str(target_dir),
                          "tasks": joined.tasks, "n_source": n_source,
                          "n_target": len(target), "turned_off": changed}}
    return run_on(joined, seed, out_dir, cfg, progress, variant, cache=cache, split=split,
                  skip=skip, extra=extra)
