"""Table 1 (dataset statistics) and Figure 6 (one region's data sample, Appendix E).

:func:`dataset_table` counts what the loaded datasets hold (coverage box, regions, image tiles,
POIs, tasks, modalities; ``data/stats.py``) in the paper's Table 1 layout;
:func:`published_vs_reproduced_table1` sets it beside ``paper/published_table1.csv``.
:func:`plot_region_sample` draws one region's data (``data/stats.region_sample``) as Figure 6.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from urbanmoe.data.stats import IMAGE_NOTE, coverage_box, modalities, region_sample
from urbanmoe.data.table import RegionDataset
from urbanmoe.evaluation.uncertainty import placement
from urbanmoe.report.palette import BLUE, save_figure, use_agg
from urbanmoe.report.tables import DATASET_ORDER, is_synthetic, write_comparison, write_table


def _order(name: str) -> tuple[int, str]:
    """Sort key: the paper's dataset order (SH, BJ, DC), others after by name."""
    return (DATASET_ORDER.index(name), "") if name in DATASET_ORDER else (len(DATASET_ORDER), name)


def _deg(value: float, pos: str, neg: str) -> str:
    return f"{abs(value):.2f}°{pos if value >= 0 else neg}"


def _corner(lat: float, lon: float) -> str:
    return f"{_deg(lat, 'N', 'S')}, {_deg(lon, 'E', 'W')}"


def dataset_table(datasets: Sequence[RegionDataset]) -> pd.DataFrame:
    """Table 1: one row per dataset, in the paper's order (SH, BJ, DC, then by name).

    Numeric columns: ``lat_min``... (NaN without bbox or coordinates), ``coverage_source``,
    ``n_regions``, ``n_images`` (rows with an ``image_path``), ``n_pois`` (sum of all ``poi_*``
    counts; 0 without POI columns), ``n_tasks``, ``tasks``, ``modalities``. Display columns named
    as in the paper ("Coverage", "#Satellite Image", "#POI" ("—" without POI columns), "#Task")
    plus ours ("#Region", "Tasks", "Modalities").
    """
    rows = []
    for ds in sorted(datasets, key=lambda d: _order(d.name)):
        box = coverage_box(ds)
        t = ds.table
        n_images = int(t["image_path"].notna().sum()) if "image_path" in t else 0
        n_pois = int(round(float(t[ds.poi_columns].to_numpy().sum()))) if ds.poi_columns else 0
        mods = modalities(ds)
        rows.append({
            "dataset": ds.name, "city": str(ds.meta.get("city", "")),
            **dict(zip(["lat_min", "lon_min", "lat_max", "lon_max"],
                       box or (np.nan,) * 4, strict=True)),
            "coverage_source": "bbox" if ds.meta.get("bbox") is not None
            else "regions" if box else "none",
            "n_regions": len(ds), "n_images": n_images, "n_pois": n_pois,
            "n_tasks": len(ds.tasks), "tasks": ", ".join(ds.tasks),
            "modalities": ", ".join(mods),
            "Dataset": ds.name,
            "Coverage": f"{_corner(*box[:2])} – {_corner(*box[2:])}" if box else "—",
            "#Region": f"{len(ds):,}", "#Satellite Image": f"{n_images:,}",
            "#POI": f"{n_pois:,}" if ds.poi_columns else "—", "#Task": str(len(ds.tasks)),
            "Tasks": ", ".join(ds.tasks), "Modalities": ", ".join(mods) or "—"})
    return pd.DataFrame(rows)


def table1_note(datasets: Sequence[RegionDataset], data_note: str = "") -> str:
    """One line on what the reproduced numbers describe."""
    parts = [f"Reproduced on: {data_note.rstrip('.')}." if data_note else ""]
    if any(is_synthetic(str(ds.root)) for ds in datasets):
        parts.append("The embedded synthetic cities only carry the paper's names, boxes and "
                     "region counts (POI totals match only in expectation), not its data.")
    if any(ds.name == "DC" for ds in datasets):
        parts.append("Table 1 prints DC's box as 40.57-41.54°N, 72.50-73.82°W (around Long "
                     "Island, not Washington D.C.); it is kept as printed.")
    return " ".join(p for p in parts if p)


_QUANTITIES = [  # (display name, published column(s), reproduced column(s), format)
    ("Bottom-left", ("bottom_left_lat", "bottom_left_lon"), ("lat_min", "lon_min"), "corner"),
    ("Top-right", ("top_right_lat", "top_right_lon"), ("lat_max", "lon_max"), "corner"),
    ("#Satellite Image", ("satellite_images",), ("n_images",), "int"),
    ("#Region", ("satellite_images",), ("n_regions",), "int"),
    ("#POI", ("pois",), ("n_pois",), "int"),
    ("#Task", ("tasks",), ("n_tasks",), "int"),
]


def _show(values: tuple[float, ...], kind: str) -> str:
    if any(pd.isna(v) for v in values):
        return "—"
    return _corner(*values) if kind == "corner" else f"{int(values[0]):,}"


def _diff(p: tuple[float, ...], r: tuple[float, ...], kind: str) -> str:
    if kind == "corner":
        return "lat {:+.2f}°, lon {:+.2f}°".format(*(b - a for a, b in zip(p, r, strict=True)))
    d = r[0] - p[0]
    return f"{d:+,.0f}" + (f" ({d / p[0]:+.1%})" if p[0] else "")


def published_vs_reproduced_table1(reproduced: pd.DataFrame,
                                   published: pd.DataFrame) -> pd.DataFrame:
    """One display row per (dataset, quantity): published, reproduced, and the judgement.

    The paper has one satellite image per region, so its ``#Region`` is its image count. A
    count is ``within`` when equal (no spread: Table 1 describes the data, not runs), else the
    reproduced count is ``above`` or ``below``; a corner is ``within`` when equal to 0.01° (the
    paper's precision), else ``outside``. The synthetic benchmark is built to Table 1's names,
    boxes and region counts, so the column is meaningful on it too.
    """
    pub = published.set_index("dataset")
    rep = reproduced.set_index("dataset")
    names = sorted(set(pub.index) | set(rep.index), key=_order)
    rows = []
    for ds in names:
        for label, pcols, rcols, kind in _QUANTITIES:
            p = tuple(float(pub.loc[ds, c]) for c in pcols) if ds in pub.index else (np.nan,)
            r = tuple(float(rep.loc[ds, c]) for c in rcols) if ds in rep.index else (np.nan,)
            nan = any(pd.isna(v) for v in (*p, *r))
            same = not nan and all(abs(a - b) < 0.005 for a, b in zip(p, r, strict=True))
            judged = ("within" if same else "outside" if kind == "corner"
                      else placement(p[0], r[0]))
            rows.append({"Dataset": ds, "Quantity": label, "Published": _show(p, kind),
                         "Reproduced": _show(r, kind),
                         "Reproduced − published": "" if nan else _diff(p, r, kind),
                         "Judgement": "—" if nan else judged})
    return pd.DataFrame(rows)


def write_table1(datasets: Sequence[RegionDataset], out_dir: Path,
                 published: Path | None = None, data_note: str = "") -> pd.DataFrame:
    """Write ``table1.{csv,md,tex}`` and, with ``published``, the published-vs-reproduced
    ``published_vs_reproduced_table1.{md,tex}``; return Table 1."""
    out_dir = Path(out_dir)
    table = dataset_table(datasets)
    note = table1_note(datasets, data_note)
    write_table(table, out_dir / "table1",
                f"Table 1: multimodal urban region profiling dataset statistics. {note}")
    if published is not None:
        write_comparison(published_vs_reproduced_table1(table, pd.read_csv(published)),
                         out_dir / "published_vs_reproduced_table1",
                         "Published vs reproduced: Table 1", note)
    return table


def _panel(ax: Any, title: str, text: str, centre: bool = False, **kw: Any) -> None:
    """A tick-free panel holding ``text`` (centred grey for a "no ..." message)."""
    ax.set_title(title, fontsize=kw.pop("title_size", 11))
    ax.set(xticks=[], yticks=[])
    where = dict(x=0.03, y=0.95, ha="left", va="top", fontsize=12)
    if centre:
        where, kw = dict(x=0.5, y=0.5, ha="center", va="center", color="#555555",
                         fontsize=12), {}
    ax.text(s=text, transform=ax.transAxes, **{**where, **kw})


def _label_line(task: str, spec: dict) -> str:
    value = spec["value"]
    shown = "missing" if np.isnan(value) else f"{value:,.{2 if abs(value) < 1000 else 0}f}"
    unit = f" {spec['unit']}" if spec["unit"] and not np.isnan(value) else ""
    return f"{task.replace('_', ' ').capitalize()}: {shown}{unit}"


def plot_region_sample(sample: dict, dataset_name: str) -> Any:
    """Figure 6: image, POI counts (horizontal bars), text and labels of one region."""
    use_agg()
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(13, 8.5), layout="constrained")
    grid = fig.add_gridspec(2, 2, height_ratios=[1.6, 1], width_ratios=[1, 1.2])
    ax_img, ax_poi = fig.add_subplot(grid[0, 0]), fig.add_subplot(grid[0, 1])
    ax_txt, ax_lab = fig.add_subplot(grid[1, 0]), fig.add_subplot(grid[1, 1])
    where = (f" at {_corner(sample['lat'], sample['lon'])}" if sample.get("lat") is not None
             else "")
    fig.suptitle(f"Figure 6: data sample of {dataset_name}, region {sample['region_id']}{where}",
                 fontsize=14)
    image_title = "Satellite image\n(" + textwrap.fill(IMAGE_NOTE, 55) + ")"
    if sample["image_rgb"] is None:
        _panel(ax_img, image_title, "no image", centre=True, title_size=9)
    else:
        ax_img.imshow(sample["image_rgb"], interpolation="nearest")
        ax_img.set(title=image_title, xlabel="pixel (column)", ylabel="pixel (row)")
        ax_img.title.set_fontsize(9)
    counts = {k.replace("_", " ").capitalize(): v for k, v in sample["poi"].items()}
    if not sum(counts.values()):
        _panel(ax_poi, "POI counts per category", "no POIs recorded in this region" if counts
               else "no POIs", centre=True)
    else:
        names = list(counts)[::-1]  # first category on top
        bars = ax_poi.barh(names, [counts[n] for n in names], color=BLUE)
        ax_poi.bar_label(bars, fmt="%g", padding=2, fontsize=8)
        ax_poi.set(title="POI counts per category", xlabel="number of POIs in the region")
        ax_poi.tick_params(axis="y", labelsize=9)
        ax_poi.margins(x=0.12)
    lines = textwrap.wrap(sample["text"] or "", 66)
    text = "\n".join(lines[:14]) + ("\n[…]" if len(lines) > 14 else "")
    _panel(ax_txt, "Text description", text or "no text", centre=not lines, fontsize=9.5)
    body = "\n".join(_label_line(t, v) for t, v in sample["labels"].items())
    _panel(ax_lab, "Labels (original units)", body or "no labels", fontsize=12, linespacing=1.8)
    return fig


def write_figure6(ds: RegionDataset, out_dir: Path, region_id: str | None = None,
                  seed: int = 0) -> tuple[dict, Any]:
    """Draw Figure 6 for one region of ``ds`` into ``out_dir/figure6.{png,pdf}``."""
    sample = region_sample(ds, region_id, seed)
    fig = plot_region_sample(sample, ds.name)
    save_figure(fig, Path(out_dir) / "figure6")
    return sample, fig
