"""UrbanCLIP-Dataset-Toolkit city -> region-table dataset folder (docs/urbanclip.md).

The toolkit (``siruzhong/UrbanCLIP-Dataset-Toolkit``) publishes per city a CSV of zoom-16 tiles
with their WGS84 centre and three labels, a JSON of LLM-written caption sentences per tile, and
the tiles themselves. This module turns those files into the contract of docs/data.md; it never
downloads anything (``fetch_commands`` only spells the ``dvc import-url`` commands).
"""

from __future__ import annotations

import math
import re
import shlex
import shutil
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import pandas as pd

from urbanmoe.data.report import write_report
from urbanmoe.data.table import DataError, load_dataset
from urbanmoe.errors import ConfigError, InputError
from urbanmoe.io import atomic_path, sha256_file
from urbanmoe.readers import dump_yaml, read_csv, read_json

REPOSITORY = "siruzhong/UrbanCLIP-Dataset-Toolkit"
COMMIT = "1b2541d1b87cf931083dac31221966b032e26f61"
RAW_BASE = f"https://raw.githubusercontent.com/{REPOSITORY}/{COMMIT}"
GDP_FILL = 10000.0  # upstream fill value in the GDP column: not a measurement, read as missing
NAME_COL = "satellite_img_name"
COORD_COL = "WGS84 coordinate"
TARGETS = {  # our target -> (upstream column, unit)
    "carbon": ("carbon_emissions (ton)", "t CO2"),
    "population": ("population (unit)", "people"),
    "gdp": ("gdp (million yuan)", "million yuan"),
}
PRODUCTS = {"carbon": "ODIAC", "population": "WorldPop"}
LICENCE = ("none stated upstream ('educational and personal use'): fetch from the upstream "
           "repository, do not redistribute")
# the toolkit's captions files are a few MB per city (Beijing: 3.8 MB); room for larger ones
MAX_CAPTIONS_BYTES = 64 * 2**20
_CITY = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")
_COORD = re.compile(r"^\(\s*([^,()\s]+)\s*,\s*([^,()\s]+)\s*\)$")


def _check_city(city: str) -> str:
    if not _CITY.match(city):
        raise InputError(f"city {city!r}: expected a toolkit city name such as 'Beijing'")
    return city


def upstream_files(city: str) -> dict[str, str]:
    """Local file name -> its path in the upstream repository, for one city."""
    city = _check_city(city)
    return {f"{city}.csv": f"integrate/output/{city}/{city}.csv",
            f"{city}_captions.json": f"caption/pairs/{city}_captions.json"}


CITIES = ("Beijing", "Shanghai", "Guangzhou", "Shenzhen")  # the toolkit's four cities
GDP_FILL_POLICIES = ("missing", "keep")


def fetch_commands(city: str, dest: Path, no_exec: bool = False) -> list[str]:
    """The ``dvc import-url`` commands fetching a city's CSV and captions into ``dest``.

    One command per raw file URL at the pinned commit; nothing is run here. With ``no_exec``
    the commands only write the import stages (``.dvc`` files) without downloading: that is
    how ``data/raw/urbanclip/<City>/`` was made, and ``dvc update -R`` fetches them later.
    """
    flag = " --no-exec" if no_exec else ""
    return [f"dvc import-url{flag} {RAW_BASE}/{up} {shlex.quote(str(Path(dest) / name))}"
            for name, up in upstream_files(city).items()]


def _cell_error(path: Path, column: str, row: int, value: Any, what: str) -> DataError:
    return DataError(f"{path}: column {column!r}: row {row + 1}: {what} {value!r}")


def _read_csv(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    df = read_csv(path, error=DataError, dtype=str, keep_default_na=False)
    for col in (NAME_COL, COORD_COL, *(c for c, _ in TARGETS.values())):
        if col not in df.columns:
            raise DataError(f"{path}: column {col!r}: missing")
    if df.empty:
        raise DataError(f"{path}: the table is empty")
    return df


def _region_ids(df: pd.DataFrame, path: Path) -> tuple[list[str], list[str]]:
    """Tile file names (``16_x_y_s.jpg``) and region ids (their stems), checked unique."""
    files, ids, seen = [], [], set()
    for i, cell in enumerate(df[NAME_COL]):
        name = PurePosixPath(cell.strip().replace("\\", "/")).name
        stem = PurePosixPath(name).stem
        if not stem:
            raise _cell_error(path, NAME_COL, i, cell, "empty tile name")
        if stem in seen:
            raise _cell_error(path, NAME_COL, i, cell, "duplicate tile")
        seen.add(stem)
        files.append(name)
        ids.append(stem)
    return files, ids


def _coords(df: pd.DataFrame, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Parse ``"(lat, lon)"`` cells; a malformed or out-of-range cell is a DataError."""
    lat = np.empty(len(df))
    lon = np.empty(len(df))
    for i, cell in enumerate(df[COORD_COL]):
        m = _COORD.match(cell.strip())
        try:
            a, b = (float(m.group(1)), float(m.group(2))) if m else (math.nan, math.nan)
        except ValueError:
            a = b = math.nan
        if not (math.isfinite(a) and math.isfinite(b)):
            raise _cell_error(path, COORD_COL, i, cell, "not '(lat, lon)':")
        if abs(a) > 90 or abs(b) > 180:
            raise _cell_error(path, COORD_COL, i, cell, "coordinate out of range:")
        lat[i], lon[i] = a, b
    return lat, lon


def _target(df: pd.DataFrame, column: str, path: Path) -> np.ndarray:
    """A label column as float; empty = missing; non-numeric, infinite or negative is an error."""
    raw = df[column].str.strip()
    values = pd.to_numeric(raw.where(raw != ""), errors="coerce").to_numpy(dtype=np.float64)
    bad = (np.isnan(values) & (raw != "").to_numpy()) | np.isinf(values)
    bad |= np.nan_to_num(values) < 0
    if bad.any():
        i = int(np.argmax(bad))
        raise _cell_error(path, column, i, df[column].iloc[i], "not a count >= 0:")
    return values


def _captions(path: Path) -> list[tuple[str, str]]:
    """(tile file name, sentence) pairs in file order from ``[[{caption, image}, ...]]``."""
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    data = read_json(path, error=DataError, expect=list, max_bytes=MAX_CAPTIONS_BYTES)
    pairs = []
    entries = (e for group in data for e in (group if isinstance(group, list) else [group]))
    for k, entry in enumerate(entries):
        ok = isinstance(entry, dict) and all(isinstance(entry.get(key), str)
                                             for key in ("caption", "image"))
        if not ok:
            raise DataError(f"{path}: entry {k}: expected {{'caption': str, 'image': str}}, "
                            f"got {str(entry)[:80]!r}")
        pairs.append((PurePosixPath(entry["image"].replace("\\", "/")).name,
                      entry["caption"].strip()))
    return pairs


def _bbox(lat: np.ndarray, lon: np.ndarray) -> list[float]:
    """[min_lat, min_lon, max_lat, max_lon] of the tile centres, rounded outward to 1e-6."""
    down = [math.floor(float(v.min()) * 1e6) / 1e6 for v in (lat, lon)]
    up = [math.ceil(float(v.max()) * 1e6) / 1e6 for v in (lat, lon)]
    return [down[0], down[1], up[0], up[1]]


def import_urbanclip_city(city_dir: Path, out_dir: Path, *, city: str | None = None,
                          require_images: bool = False, gdp_fill: str = "missing") -> Path:
    """Turn one toolkit city folder into a region-table dataset folder at ``out_dir``.

    ``city_dir`` holds ``<City>.csv``, ``<City>_captions.json`` and optionally ``tiles/``
    (``city`` defaults to the folder's name). The table gets ``region_id`` (the tile name's
    stem), ``lat``/``lon``, targets ``carbon``/``population``/``gdp`` (log1p; GDP's fill value
    10000.0 becomes missing with ``gdp_fill="missing"``, the default, or stays with ``"keep"``),
    ``text`` (the tile's caption sentences joined in file order;
    empty if none) and, only when every tile is present, ``image_path`` (tiles copied into
    ``out_dir/tiles``). With ``require_images`` a missing tile is a DataError. The folder is
    written atomically, validated with ``load_dataset`` before it appears; inputs are read only.
    """
    city_dir, out_dir = Path(city_dir), Path(out_dir)
    city = _check_city(city or city_dir.name)
    if gdp_fill not in GDP_FILL_POLICIES:
        raise ConfigError(f"gdp_fill: {gdp_fill!r} is not one of {list(GDP_FILL_POLICIES)}")
    src, dst = city_dir.resolve(), out_dir.resolve()
    if src == dst or dst in src.parents:
        raise InputError(f"{out_dir}: the output folder would replace the input {city_dir}")
    files = upstream_files(city)
    csv_path, cap_path = (city_dir / name for name in files)
    df = _read_csv(csv_path)
    tiles, ids = _region_ids(df, csv_path)
    lat, lon = _coords(df, csv_path)
    table = pd.DataFrame({"region_id": ids, "lat": lat, "lon": lon})
    for name, (column, _) in TARGETS.items():
        table[name] = _target(df, column, csv_path)
    fills = table["gdp"].to_numpy() == GDP_FILL
    if gdp_fill == "missing":
        table.loc[fills, "gdp"] = np.nan

    by_tile: dict[str, list[str]] = {t: [] for t in tiles}
    pairs = _captions(cap_path)
    stray_images: set[str] = set()
    for tile, sentence in pairs:
        if tile not in by_tile:
            stray_images.add(tile)
        elif sentence:
            by_tile[tile].append(sentence)
    table["text"] = [" ".join(by_tile[t]) for t in tiles]

    tiles_dir = city_dir / "tiles"
    present = [(tiles_dir / t).is_file() for t in tiles]
    all_present = all(present)
    if require_images and not all_present:
        first = tiles[present.index(False)]
        raise DataError(f"{tiles_dir}: {present.count(False)} of {len(tiles)} tiles named in "
                        f"{csv_path.name} are missing (first {first!r})")
    if all_present:
        table["image_path"] = [f"tiles/{t}" for t in tiles]

    source = {
        "repository": f"https://github.com/{REPOSITORY}",
        "commit": COMMIT,
        "adapter": "urbanmoe.data.sources.urbanclip",
        "licence": LICENCE,
        "files": {name: {"upstream": up, "sha256": sha256_file(city_dir / name)}
                  for name, up in files.items()},
        "tiles_upstream": f"crawl/tiles/{city}/",
        "products": dict(PRODUCTS),
        "regions": len(table),
        "gdp_fill_value": GDP_FILL,
        "gdp_fill_cells": int(fills.sum()),
        "gdp_fill": gdp_fill,
        "zero_labels": {n: int((table[n] == 0).sum()) for n in TARGETS},
        "captions": {
            "sentences": len(pairs),
            "images": len({t for t, _ in pairs}),
            "images_not_in_table": len(stray_images),
            "sentences_not_in_table": sum(t in stray_images for t, _ in pairs),
            "regions_without_text": int((table["text"] == "").sum()),
        },
        "tiles": {"present": int(sum(present)), "regions": len(tiles),
                  "image_path": all_present},
    }
    meta = {
        "name": city,
        "city": city,
        "table": "regions.parquet",
        "targets": {n: {"transform": "log1p", "unit": unit} for n, (_, unit) in TARGETS.items()},
        "bbox": _bbox(lat, lon),
        "source": source,
    }
    with atomic_path(out_dir, "dataset") as tmp:
        tmp.mkdir(parents=True)
        if all_present:
            (tmp / "tiles").mkdir()
            for t in tiles:
                shutil.copyfile(tiles_dir / t, tmp / "tiles" / t)
        table.to_parquet(tmp / meta["table"], index=False)
        (tmp / "dataset.yaml").write_text(dump_yaml(meta))
        write_report(load_dataset(tmp), tmp / "report")
    return out_dir
