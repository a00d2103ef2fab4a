"""Predictions on the map: a GeoJSON of the regions for GIS users, and maps (PNG and PDF).

A region's shape is its polygon when ``dataset.yaml`` names a ``geometry`` file (any vector
format GDAL reads, with a ``region_id`` column), else the point at its ``lat``/``lon``; a city
with neither gets the table of predictions alone. GeoJSON is written in WGS84 (RFC 7946) with
geopandas.

The prediction maps draw one panel per task in the target's units, on a log1p colour scale for
log1p targets; the residual maps draw the labelled test regions' label minus prediction on a
diverging scale centred on 0 (its limits the 98th percentile of the absolute residual), on the
log1p scale for log1p targets (a residual of 0.7 there is a factor of about 2), in units
otherwise.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from urbanmoe.data.geometry import WGS84, read_geometry
from urbanmoe.data.table import ID, RegionDataset
from urbanmoe.errors import OutputError
from urbanmoe.io import atomic_path, claim, safe_name, write_text
from urbanmoe.ownership import overlap
from urbanmoe.report.palette import save_figure, use_agg


def region_shapes(ds: RegionDataset, table: pd.DataFrame) -> Any:
    """``table`` (one row per region of ``ds``, with ``region_id``) as a GeoDataFrame in
    WGS84: polygons from the ``geometry`` file, else points; None without either."""
    import geopandas as gpd

    shapes = read_geometry(ds)  # the checked polygons of ds's regions, WGS84, in table order
    if shapes is not None:
        by_id = shapes.loc[table[ID].astype(str).to_numpy()]
        return gpd.GeoDataFrame(table, geometry=by_id.to_numpy(), crs=WGS84)
    if ds.coords is None:
        return None
    return gpd.GeoDataFrame(table, geometry=gpd.points_from_xy(ds.coords[:, 1], ds.coords[:, 0]),
                            crs=WGS84)


def write_geojson(shapes: Any, path: Path) -> Path:
    """Write the regions and their columns as GeoJSON, atomically."""
    path = Path(path)
    with atomic_path(path) as tmp:
        shapes.to_file(tmp, driver="GeoJSON")
    return path


def _unit(ds: RegionDataset, task: str) -> str:
    unit = (ds.meta["targets"].get(task) or {}).get("unit")
    return f" ({unit})" if unit else ""


def _panels(n: int) -> tuple[Any, np.ndarray]:
    import matplotlib.pyplot as plt

    cols = min(n, 3)
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, squeeze=False, layout="constrained",
                             figsize=(5.2 * cols, 4.6 * rows))
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, axes.flat


def log1p_ticks(lo: float, hi: float, n: int = 6) -> list[float]:
    """Colour-bar ticks evenly spaced on the log1p scale, at two significant digits."""
    values = np.expm1(np.linspace(np.log1p(lo), np.log1p(hi), n))
    return sorted({float(f"{v:.2g}") for v in values if lo <= float(f"{v:.2g}") <= hi})


def _draw(ax: Any, shapes: Any, column: str, cmap: str, norm: Any, label: str,
          ticks: list[float] | None = None) -> None:
    points = shapes.geom_type.eq("Point").all()
    size = float(np.clip(6000.0 / max(len(shapes), 1), 2.0, 60.0))
    kw: dict[str, Any] = {"markersize": size, "marker": "s"} if points else {
        "edgecolor": "white", "linewidth": 0.2}
    legend: dict[str, Any] = {"label": label, "shrink": 0.8}
    if ticks:
        legend["ticks"] = ticks
    shapes.plot(column=column, ax=ax, cmap=cmap, norm=norm, legend=True, legend_kwds=legend,
                **kw)
    ax.set_xlabel("longitude (°)")
    ax.set_ylabel("latitude (°)")


def draw_prediction_maps(shapes: Any, ds: RegionDataset, stem: Path, title: str) -> list[Path]:
    """One panel per task: the mean prediction of every region, in the target's units."""
    use_agg()
    from matplotlib import colors

    fig, axes = _panels(len(ds.tasks))
    for ax, task in zip(axes, ds.tasks, strict=False):
        values = shapes[f"{task}_pred"].to_numpy(dtype=float)
        lo, hi = float(np.nanmin(values)), float(np.nanmax(values))
        hi = hi if hi > lo else lo + 1.0
        ticks = None
        if ds.transforms[task] == "log1p":
            lo = max(lo, 0.0)
            norm = colors.FuncNorm((np.log1p, np.expm1), vmin=lo, vmax=hi)
            ticks = log1p_ticks(lo, hi)
        else:
            norm = colors.Normalize(lo, hi)
        _draw(ax, shapes, f"{task}_pred", "viridis", norm, f"predicted {task}{_unit(ds, task)}",
              ticks)
        ax.set_title(f"{task}: predicted, all {len(shapes)} regions", fontsize=10)
    fig.suptitle(title)
    return save_figure(fig, stem)


def draw_residual_maps(shapes: Any, ds: RegionDataset, stem: Path, title: str) -> list[Path]:
    """One panel per task: label minus prediction at the labelled regions some run tested."""
    use_agg()
    from matplotlib import colors

    fig, axes = _panels(len(ds.tasks))
    for ax, task in zip(axes, ds.tasks, strict=False):
        log = ds.transforms[task] == "log1p"
        col = f"{task}_residual_log" if log else f"{task}_residual"
        label = (f"log1p({task}) residual, log1p of{_unit(ds, task)}" if log
                 else f"residual {task}{_unit(ds, task)}")
        shown = shapes[np.isfinite(shapes[col].to_numpy(dtype=float))]
        ax.set_title(f"{task}: label − prediction, {len(shown)} test regions", fontsize=10)
        if shown.empty:
            ax.text(0.5, 0.5, "no labelled test region", ha="center", transform=ax.transAxes)
            continue
        half = float(np.nanpercentile(np.abs(shown[col]), 98)) or 1.0
        _draw(ax, shown, col, "RdBu_r", colors.CenteredNorm(0.0, half), label)
    fig.suptitle(title)
    return save_figure(fig, stem)


def write_predictions(run_paths: list[Path], dataset: Path | None, out: Path,
                      maps: Path | None = None, cache: Path | None = None,
                      progress: bool = False) -> dict[str, Any]:
    """``urbanmoe predict``: apply the runs (``training/predict.py``) to every region of the
    dataset (default: the one they were trained on) and write, atomically, into ``out``:
    ``predictions.csv`` and ``.parquet``, ``regions.geojson`` and ``predict.json``; the maps
    ``DATASET-MODEL-predicted`` and ``-residuals`` (PNG, PDF) go to ``maps`` (default ``out``).
    """
    from urbanmoe.data.table import load_dataset
    from urbanmoe.io import write_json
    from urbanmoe.training.predict import (
        RunError,
        predict_run,
        prediction_table,
        read_run,
        run_folders,
    )

    runs = run_folders(run_paths)
    saved = [read_run(r) for r in runs]
    trained_on = {dataset_dir for _, _, dataset_dir in saved}
    if dataset is None:
        if len(trained_on) > 1:
            raise RunError(f"the runs were trained on several datasets {sorted(trained_on)}; "
                           "give --dataset")
        dataset = Path(trained_on.pop())
    ds = load_dataset(Path(dataset))
    models = sorted({cfg["model"]["name"] for cfg, _, _ in saved})
    if len(models) > 1:
        raise RunError(f"{runs[0]}: the runs are of several models {models}; give one model's")
    out = Path(out)
    inside = maps is None or Path(maps) == out  # the maps then belong to the output folder
    stem = Path(maps or out) / safe_name(f"{ds.name}-{models[0]}")
    drawn = has_shapes(ds)
    maps_files = ([stem.with_name(f"{stem.name}-{part}{s}") for part in ("predicted", "residuals")
                   for s in (".png", ".pdf")] if drawn
                  else [stem.with_name(stem.name + "-no-map.txt")])
    for flag, path, container in (("--out", out, False), ("--maps", stem.parent, True)):
        why = overlap(path, [ds.root, *runs], container=container)
        if why is not None:  # the dataset named by the runs (the command line may not say)
            raise OutputError(f"{flag} {path}: {why}")
    claim([out], "predictions")
    if not inside:
        claim(maps_files, "figure" if drawn else "map note")
    shapes = region_shapes(ds, ds.table[[ID]]) if drawn else None  # checked before predicting
    preds = [predict_run(r, ds, cache, progress) for r in runs]
    table = prediction_table(ds, preds)
    if shapes is not None:
        shapes = region_shapes(ds, table)
    title = f"{ds.name}: {models[0]}, mean of {len(preds)} run(s)"
    summary = {"dataset": str(dataset), "model": models[0], "runs": [str(r) for r in runs],
               "seeds": [p.seed for p in preds], "n_regions": len(ds),
               "n_unlabelled": int((~table["labelled"]).sum()),
               "chosen_on_validation": {str(p.seed): p.chosen for p in preds},
               "shapes": ("polygons" if ds.meta.get("geometry") else "points")
               if shapes is not None else "none: no lat/lon and no geometry file"}
    with atomic_path(out, "predictions") as tmp:
        tmp.mkdir(parents=True)
        table.to_csv(tmp / "predictions.csv", index=False)
        table.to_parquet(tmp / "predictions.parquet", index=False)
        if shapes is not None:
            write_geojson(shapes, tmp / "regions.geojson")
        if inside:
            drawn_files = _draw_maps(ds, shapes, tmp / stem.name, title, out)
            summary.update(_maps_entry(drawn_files, out))
        write_json(tmp / "predict.json", summary)
    if not inside:
        summary.update(_maps_entry(_draw_maps(ds, shapes, stem, title, out), stem.parent))
    return summary


def has_shapes(ds: RegionDataset) -> bool:
    """Whether the regions can be drawn: a ``geometry`` file, or ``lat``/``lon``."""
    return ds.meta.get("geometry") is not None or ds.coords is not None


def _draw_maps(ds: RegionDataset, shapes: Any, stem: Path, title: str,
               out: Path) -> list[Path]:
    """Draw the prediction and residual maps at ``stem-*``; without shapes, write a note saying
    so instead (and return no path)."""
    if shapes is None:
        write_text(stem.with_name(stem.name + "-no-map.txt"),
                   f"no map of {ds.name}: no lat/lon and no geometry file; the predictions are "
                   f"in {out / 'predictions.csv'}\n", "map note")
        return []
    return [*draw_prediction_maps(shapes, ds, stem.with_name(stem.name + "-predicted"), title),
            *draw_residual_maps(shapes, ds, stem.with_name(stem.name + "-residuals"), title)]


def _maps_entry(paths: list[Path], folder: Path) -> dict[str, Any]:
    """The summary's ``maps``: where the drawn files are once in place (none: no entry)."""
    return {"maps": [str(folder / p.name) for p in paths]} if paths else {}
