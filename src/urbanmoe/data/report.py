"""A data report for any dataset: label traits that decide how results should be read.

Two traits matter most on real cities (docs/urbanclip.md):

* **Fill values**: a round value (a multiple of 1000, or 9999) repeated across a large share of
  regions is usually a placeholder, not a measurement (the UrbanCLIP toolkit's GDP is exactly
  10000.0 for 12-20% of tiles). The report lists each target's most frequent value and flags
  it when it covers at least ``fill_share`` of the regions; fill values the importer already
  set to missing are counted from ``dataset.yaml``'s ``source``.
* **Labels shared between neighbours**: labels sampled from a coarse raster repeat exactly in
  neighbouring regions, so a random split puts copies of test labels in the training set. The
  report gives, per target, the share of nonzero labels that occur exactly in another region, in
  one of the ``k`` nearest regions, and the distances between such pairs.

``urbanmoe report --dataset DIR --out STEM`` writes ``STEM.json`` and ``STEM.md``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from sklearn.neighbors import NearestNeighbors

from urbanmoe.data.geo import km_points
from urbanmoe.data.table import RegionDataset
from urbanmoe.io import claim, write_json, write_text

FILL_SHARE = 0.05


def _round(x: float, digits: int = 4) -> float:
    return float(round(float(x), digits))


def looks_like_fill(value: float) -> bool:
    """A placeholder-looking number: a nonzero multiple of 1000, or all nines (9999, -999)."""
    v = abs(float(value))
    return v > 0 and v.is_integer() and (v % 1000 == 0 or set(str(int(v))) == {"9"})


def target_traits(values: np.ndarray, fill_share: float = FILL_SHARE) -> dict[str, Any]:
    """Counts, range and the most frequent value of one target (NaN = missing)."""
    observed = values[np.isfinite(values)]
    out: dict[str, Any] = {"observed": int(observed.size),
                           "missing": int(values.size - observed.size),
                           "zeros": int((observed == 0).sum())}
    if observed.size == 0:
        return out
    uniq, counts = np.unique(observed, return_counts=True)
    top = int(np.argmax(counts))
    share = counts[top] / observed.size
    out.update(min=float(observed.min()), median=float(np.median(observed)),
               max=float(observed.max()), distinct=int(uniq.size),
               most_frequent={"value": float(uniq[top]), "count": int(counts[top]),
                              "share": _round(share)},
               suspected_fill=bool(share >= fill_share and looks_like_fill(uniq[top])))
    return out


def neighbour_sharing(values: np.ndarray, xy_km: np.ndarray, k: int = 8) -> dict[str, Any]:
    """How often a nonzero label occurs exactly in another region, and how near that region is.

    ``exact_shared``: share of nonzero labels equal to another region's label anywhere;
    ``shared_with_k_nearest``: share equal to one of the ``k`` nearest regions' labels (what a
    random split leaks); ``pair_distance_km``: median and 90th percentile distance from each
    such region to its nearest region with the same label.
    """
    keep = np.isfinite(values) & (values != 0)
    v, xy = values[keep], xy_km[keep]
    if v.size < 2:
        return {"nonzero": int(v.size)}
    _, inverse, counts = np.unique(v, return_inverse=True, return_counts=True)
    shared = counts[inverse] > 1
    kk = min(k + 1, v.size)
    dist, idx = NearestNeighbors(n_neighbors=kk).fit(xy).kneighbors(xy)
    same = v[idx[:, 1:]] == v[:, None]
    near = same.any(axis=1)
    pair = np.where(same, dist[:, 1:], np.inf).min(axis=1)
    out: dict[str, Any] = {"nonzero": int(v.size), "exact_shared": _round(shared.mean()),
                           f"shared_with_{k}_nearest": _round(near.mean()),
                           "nearest_region_km_median": _round(np.median(dist[:, 1]), 3)}
    if near.any():
        out["pair_distance_km"] = {"median": _round(np.median(pair[near]), 3),
                                   "p90": _round(np.percentile(pair[near], 90), 3)}
    return out


def dataset_report(ds: RegionDataset, k: int = 8, fill_share: float = FILL_SHARE) -> dict:
    """The report of one dataset (JSON-ready)."""
    targets = ds.targets()
    source = ds.meta.get("source") or {}
    report: dict[str, Any] = {
        "dataset": ds.name, "table": ds.table_path.name, "regions": len(ds),
        "modalities": {"image": ds.image_paths is not None, "text": ds.texts is not None,
                       "poi_categories": len(ds.poi_columns), "coords": ds.coords is not None},
        "targets": {}}
    xy = km_points(ds.coords) if ds.coords is not None else None
    for j, task in enumerate(ds.tasks):
        entry = target_traits(targets[:, j], fill_share)
        if task == "gdp" and "gdp_fill_cells" in source:
            entry["fill_set_missing"] = {"value": source.get("gdp_fill_value"),
                                         "count": source["gdp_fill_cells"],
                                         "policy": source.get("gdp_fill", "missing")}
        if xy is not None:
            entry["neighbours"] = neighbour_sharing(targets[:, j], xy, k)
        report["targets"][task] = entry
    return report


def _advice(report: dict) -> list[str]:
    lines = []
    for task, t in report["targets"].items():
        if t.get("suspected_fill"):
            mf = t["most_frequent"]
            lines.append(f"- **{task}**: {mf['value']:g} occurs in {mf['count']} regions "
                         f"({mf['share']:.1%}): likely a fill value, not a measurement; "
                         "consider excluding it (set it missing).")
        fill = t.get("fill_set_missing")
        if fill and fill["policy"] == "missing":
            lines.append(f"- **{task}**: the fill value {fill['value']:g} was set missing in "
                         f"{fill['count']} regions at import (excluded from loss and metrics).")
        elif fill:
            lines.append(f"- **{task}**: the fill value {fill['value']:g} was KEPT in "
                         f"{fill['count']} regions at import (it enters loss and metrics).")
        nb = t.get("neighbours") or {}
        k_key = next((key for key in nb if key.startswith("shared_with_")), None)
        if k_key and nb[k_key] >= 0.05:
            lines.append(f"- **{task}**: {nb[k_key]:.1%} of nonzero labels equal a near "
                         f"neighbour's exactly (median pair distance "
                         f"{nb['pair_distance_km']['median']:.2f} km): labels come from a "
                         "coarse raster, a random split leaks them; report a spatial-block "
                         "split too.")
    return lines or ["- nothing flagged."]


def report_markdown(report: dict) -> str:
    """The report as Markdown: one table of targets, then what to watch for."""
    m = report["modalities"]
    lines = [f"# Data report: {report['dataset']}", "",
             f"{report['regions']} regions from `{report['table']}`; image: {m['image']}, "
             f"text: {m['text']}, POI categories: {m['poi_categories']}, "
             f"coordinates: {m['coords']}.", "",
             "| target | observed | missing | zeros | median | most frequent (share) | "
             "shared exactly | shared with a near neighbour | pair distance km (median) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for task, t in report["targets"].items():
        nb = t.get("neighbours") or {}
        k_key = next((key for key in nb if key.startswith("shared_with_")), None)
        lines.append(_row(task, t, t.get("most_frequent") or {}, nb, k_key))
    lines += ["", "## What to watch for", "", *_advice(report)]
    return "\n".join(lines) + "\n"


def _row(task: str, t: dict, mf: dict, nb: dict, k_key: str | None) -> str:
    def pct(x: float | None) -> str:
        return "—" if x is None else f"{x:.1%}"

    most = f"{mf['value']:.6g} ({mf['share']:.1%})" if mf else "—"
    median = f"{t['median']:.4g}" if "median" in t else "—"
    pair = (nb.get("pair_distance_km") or {}).get("median")
    return (f"| {task} | {t['observed']} | {t['missing']} | {t['zeros']} | {median} | {most} | "
            f"{pct(nb.get('exact_shared'))} | {pct(nb.get(k_key) if k_key else None)} | "
            f"{'—' if pair is None else f'{pair:.3f}'} |")


def write_report(ds: RegionDataset, stem: Path, k: int = 8) -> dict:
    """Write ``stem.json`` and ``stem.md`` atomically; return the report."""
    report = dataset_report(ds, k)
    stem = Path(stem)
    outputs = stem.with_suffix(".json"), stem.with_suffix(".md")
    claim(outputs, "data report")
    write_json(outputs[0], report, "data report")
    write_text(outputs[1], report_markdown(report), "data report")
    return report
