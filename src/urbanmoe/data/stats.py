"""What a dataset holds: the statistics of Table 1 and one region's data for Figure 6.

:func:`coverage_box` and :func:`modalities` are what Table 1 lists beside the counts;
:func:`region_sample` picks one region and gathers its image, POI counts, text and labels
(Appendix E). ``report/dataset_stats.py`` lays them out as Table 1 and draws Figure 6.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from urbanmoe.data.table import ID, DataError, RegionDataset
from urbanmoe.data.tiles import read_tile

STRETCH = (2.0, 98.0)  # display-only contrast stretch of the image panel (percentiles)
IMAGE_NOTE = ("RGB from bands B04/B03/B02 (red, green, blue), linearly contrast-stretched "
              f"between percentiles {STRETCH[0]:g} and {STRETCH[1]:g}, for display only")


def coverage_box(ds: RegionDataset) -> tuple[float, float, float, float] | None:
    """(lat_min, lon_min, lat_max, lon_max): dataset.yaml ``bbox``, else the regions' extent."""
    if ds.meta.get("bbox") is not None:
        lat0, lon0, lat1, lon1 = (float(v) for v in ds.meta["bbox"])
        return lat0, lon0, lat1, lon1
    coords = ds.coords
    if coords is None:
        return None
    return (float(coords[:, 0].min()), float(coords[:, 1].min()),
            float(coords[:, 0].max()), float(coords[:, 1].max()))


def _row_modalities(ds: RegionDataset) -> pd.DataFrame:
    """Per region, whether it has each modality (image, text, POIs, location)."""
    t = ds.table
    have = pd.DataFrame(index=t.index)
    have["image"] = t["image_path"].notna() if "image_path" in t else False
    have["text"] = t["text"].fillna("").astype(str).str.strip() != "" if "text" in t else False
    have["POI"] = t[ds.poi_columns].sum(axis=1) > 0 if ds.poi_columns else False
    coords = ds.coords
    have["location"] = (pd.Series(np.isfinite(coords).all(axis=1), index=t.index)
                        if coords is not None else False)
    return have


def modalities(ds: RegionDataset) -> list[str]:
    """Modalities any region has, plus precomputed ``embedding:<name>`` files."""
    have = _row_modalities(ds)
    found = [m for m in have.columns if have[m].any()]
    return found + [f"embedding:{m}" for m in (ds.meta.get("embeddings") or {})]


def _choose(ds: RegionDataset, region_id: str | None, seed: int) -> int:
    if region_id is not None:
        hit = np.flatnonzero(ds.table[ID].to_numpy() == str(region_id))
        if not len(hit):
            raise DataError(f"{ds.root}: column {ID!r}: no region {region_id!r}")
        return int(hit[0])
    count = _row_modalities(ds).sum(axis=1).to_numpy()
    candidates = np.flatnonzero(count == count.max())
    return int(np.random.default_rng(seed).choice(candidates))


def stretch(tile: np.ndarray) -> np.ndarray:
    """(C, H, W) B,G,R(,NIR) reflectance -> (H, W, 3) RGB in [0, 1], for display only.

    One linear stretch for the three bands together (their joint :data:`STRETCH` percentiles),
    so the hues stay as the reflectances have them.
    """
    rgb = np.moveaxis(tile[[2, 1, 0]], 0, -1).astype(np.float64)
    lo, hi = np.percentile(rgb, STRETCH)
    return np.clip((rgb - lo) / (hi - lo if hi > lo else 1.0), 0.0, 1.0)


def region_sample(ds: RegionDataset, region_id: str | None = None, seed: int = 0) -> dict:
    """One region's data (Figure 6): ``region_id`` given, or drawn with ``seed`` among the
    regions having the most modalities.

    Keys: ``dataset``, ``region_id``, ``lat``/``lon`` (None without coordinates), ``image``
    ((C, H, W) reflectance or None), ``image_rgb`` (display-only stretch, see
    :data:`IMAGE_NOTE`), ``poi`` ({category: count}, empty without POI columns), ``text`` (None
    without text), ``labels`` ({task: {"value", "unit"}}, original units), ``caption``.
    """
    i = _choose(ds, region_id, seed)
    row = ds.table.iloc[i]
    paths = ds.image_paths
    image = read_tile(paths[i]) if paths is not None and pd.notna(row["image_path"]) else None
    units = {t: str((ds.meta["targets"].get(t) or {}).get("unit", "")) for t in ds.tasks}
    text = ds.texts[i] if ds.texts is not None and ds.texts[i].strip() else None
    coords = ds.coords
    sample = {
        "dataset": ds.name, "region_id": str(row[ID]),
        "lat": float(coords[i, 0]) if coords is not None else None,
        "lon": float(coords[i, 1]) if coords is not None else None,
        "image": image, "image_rgb": None if image is None else stretch(image),
        "poi": {c.removeprefix("poi_"): float(row[c]) for c in ds.poi_columns},
        "text": text,
        "labels": {t: {"value": float(row[t]), "unit": units[t]} for t in ds.tasks},
    }
    sample["caption"] = (f"Figure 6: data sample of region {sample['region_id']} in "
                         f"{ds.name}. Image: " + (IMAGE_NOTE if image is not None else "none")
                         + ". POI counts per category; text as stored; labels in original "
                         "units (not log1p).")
    return sample
