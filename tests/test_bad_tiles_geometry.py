"""Bad image tiles and bad geometry files, case by case: one line naming the file and the
problem, exit status 2, inputs untouched and nothing written.

Tiles: every tile's header (size, band count, pixel type, a PNG or JPEG cut short) is checked
before any pixel is decoded, by the encoders and the image baselines alike; a tile that fails to
decode is one line too. Geometry: ``urbanmoe predict`` reads the ``geometry`` file (through
``data/geometry.py``) before predicting, and refuses a file GDAL cannot read, a missing id
column, ids that do not match the table, and null, invalid or duplicated shapes."""

from __future__ import annotations

import shutil
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rasterio
import yaml
from refusal import CONFIG, expect_refusal, quick_sets, raw_file, small_city

from urbanmoe.cli import main
from urbanmoe.data.tiles import MAX_TILE_SIDE, MIN_TILE_SIDE, read_tile
from urbanmoe.errors import DataError

BAD = 37  # the spoilt region's row (r037)


def _png(path: Path, shape: tuple[int, ...] = (16, 16, 3)) -> None:
    from PIL import Image

    rng = np.random.default_rng(zlib.crc32(path.name.encode()))
    Image.fromarray(rng.integers(0, 255, shape, dtype=np.uint8)).save(path)


def _tif(path: Path, count: int = 4, size: int = 16, dtype: str = "uint16",
         fill: float | None = None, **opts: object) -> None:
    rng = np.random.default_rng(3)
    with rasterio.open(path, "w", driver="GTiff", width=size, height=size, count=count,
                       dtype=dtype, **opts) as dst:
        if fill is None and size <= 1024:
            dst.write(rng.integers(0, 255, (count, size, size)).astype(dtype))
        elif fill is not None:
            dst.write(np.full((count, size, size), fill, dtype=dtype))
        # a huge tile is left unwritten: compressed, tiled and all zeros, it stays small


def _cut(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * keep)])


def _tiled_city(city: Path, bad: Callable[[Path], None], ext: str = "png",
                good: Callable[[Path], None] = _png) -> None:
    """Give every region a valid 16 x 16 tile, and region ``BAD`` the one ``bad`` writes."""
    df = pd.read_csv(city / "regions.csv", dtype={"region_id": str})
    (city / "tiles").mkdir()
    paths = []
    for i, rid in enumerate(df["region_id"]):
        rel = f"tiles/{rid}.{ext if i == BAD else 'png'}"
        (bad if i == BAD else good)(city / rel)
        paths.append(rel)
    df["image_path"] = paths
    df.to_csv(city / "regions.csv", index=False)


def _truncated_jpeg(path: Path) -> None:
    from PIL import Image

    Image.fromarray(np.random.default_rng(4).integers(0, 255, (64, 64, 3), dtype=np.uint8)
                    ).save(path, quality=95)
    _cut(path)


def _truncated_png(path: Path) -> None:
    _png(path, (64, 64, 3))
    _cut(path)


@dataclass
class TileCase:
    name: str
    bad: Callable[[Path], None]
    says: tuple[str, ...]
    ext: str = "png"


TILE_CASES = [
    TileCase("1x1 tile", lambda p: _png(p, (1, 1, 3)),
             ("1 x 1 px", f"smaller than {MIN_TILE_SIDE} px a side")),
    TileCase("3 px wide", lambda p: _png(p, (16, 3, 3)), ("3 x 16 px", "smaller than")),
    TileCase("20000 x 20000 tile", lambda p: _tif(p, count=1, size=20000, dtype="uint8",
                                                 compress="deflate", tiled=True),
             ("20000 x 20000 px", f"larger than {MAX_TILE_SIDE} px a side"), "tif"),
    TileCase("garbage bytes", lambda p: p.write_bytes(b"\x00garbage, not an image" * 40),
             ("cannot read image tile", "not an image")),
    TileCase("empty file", lambda p: p.write_bytes(b""),
             ("cannot read image tile", "not an image")),
    TileCase("truncated PNG", _truncated_png, ("64 x 64 px", "truncated PNG")),
    TileCase("truncated JPEG", _truncated_jpeg, ("64 x 64 px", "truncated JPEG"), "jpg"),
    TileCase("2 bands", lambda p: _tif(p, count=2), ("2 band(s)", "2 bands"), "tif"),
    TileCase("20 bands", lambda p: _tif(p, count=20), ("20 band(s)", "20 bands"), "tif"),
    TileCase("complex pixels", lambda p: _tif(p, count=3, dtype="complex64", fill=0),
             ("complex64", "not a real number type"), "tif"),
    TileCase("NaN pixels", lambda p: _tif(p, count=3, dtype="float32", fill=np.nan),
             ("float32", "NaN or infinite"), "tif"),
    TileCase("other band count", lambda p: _tif(p, count=4),
             ("4 band(s)", "share their band count", "r000.png"), "tif"),
]


@pytest.mark.parametrize("model", ["urbanmoe", "pca"])
@pytest.mark.parametrize("case", TILE_CASES, ids=[c.name for c in TILE_CASES])
def test_a_bad_tile_is_refused_in_one_line(case: TileCase, model: str, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    """Through an image encoder (UrbanMoE's stats features) and an image baseline (PCA)."""
    city = small_city(tmp_path / "city")
    _tiled_city(city, case.bad, case.ext)
    argv = ["train", "--config", str(CONFIG), "--quiet", "--dataset", str(city), "--seed", "0",
            "--out", str(tmp_path / "out/run"), *quick_sets(tmp_path),
            "--set", f"model.name={model}"]
    expect_refusal(argv, (f"tiles/r{BAD:03d}.{case.ext}", *case.says), capsys,
                   watch=[city], absent=[tmp_path / "out"])


def test_every_header_is_checked_before_any_tile_is_decoded(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The last tile is too small: it is refused before the first is decoded."""
    import urbanmoe.features.image as image

    city = small_city(tmp_path / "city")
    df = pd.read_csv(city / "regions.csv", dtype={"region_id": str})
    last = len(df) - 1
    (city / "tiles").mkdir()
    for i, rid in enumerate(df["region_id"]):
        _png(city / f"tiles/{rid}.png", (4, 4, 3) if i == last else (16, 16, 3))
    df["image_path"] = [f"tiles/{rid}.png" for rid in df["region_id"]]
    df.to_csv(city / "regions.csv", index=False)
    decoded: list[Path] = []
    monkeypatch.setattr(image, "read_tile", lambda p: decoded.append(p) or read_tile(p))
    expect_refusal(["train", "--config", str(CONFIG), "--quiet", "--dataset", str(city),
                    "--seed", "0", "--out", str(tmp_path / "run"), *quick_sets(tmp_path)],
                   (f"r{last:03d}.png", "4 x 4 px"), capsys, watch=[city],
                   absent=[tmp_path / "run"])
    assert decoded == []


def test_a_tile_that_fails_to_decode_is_one_line(tmp_path: Path) -> None:
    """A GeoTIFF whose header is whole but whose pixels are cut off fails at read time."""
    path = tmp_path / "cut.tif"
    _tif(path, count=4, size=256, compress="deflate", tiled=True, blockxsize=64, blockysize=64)
    with rasterio.open(path) as src:  # the header must survive the cut for this case
        offsets = [int(src.get_tag_item("BLOCK_OFFSET_0_0", "TIFF", bidx=1) or 0)]
    assert offsets[0] > 0
    _cut(path, 0.6)
    with pytest.raises(DataError) as info:
        read_tile(path)
    message = str(info.value)
    assert str(path) in message and "\n" not in message
    assert "256 x 256 px" in message or "cannot read image tile" in message


def test_tiles_within_the_limits_train(tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    """Seven float32 bands at the smallest side: nothing is refused."""
    city = small_city(tmp_path / "city")
    _tiled_city(city, lambda p: _tif(p, count=7, size=MIN_TILE_SIDE, dtype="float32", fill=0.2),
                "tif", good=lambda p: _tif(p, count=7, size=MIN_TILE_SIDE, dtype="float32",
                                           fill=0.1))
    code = main(["train", "--config", str(CONFIG), "--quiet", "--dataset", str(city), "--seed",
                 "0", "--out", str(tmp_path / "run"), *quick_sets(tmp_path)])
    assert code == 0, capsys.readouterr().err


# --- geometry ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A small city and a ridge run on it (predict needs runs)."""
    root = tmp_path_factory.mktemp("geometry")
    city = small_city(root / "city")
    runs = root / "runs"
    assert main(["train", "--config", str(CONFIG), "--quiet", "--dataset", str(city), "--seed",
                 "0", "--out", str(runs / "seed0"), *quick_sets(root),
                 "--set", "model.name=ridge"]) == 0
    return city, runs


def _cells(city: Path, ids: list[str] | None = None, crs: str | None = "EPSG:4326",
           id_column: str = "region_id") -> object:
    import geopandas as gpd
    from shapely.geometry import box

    df = pd.read_csv(city / "regions.csv", dtype={"region_id": str})
    return gpd.GeoDataFrame(
        {id_column: ids if ids is not None else df["region_id"].tolist()},
        geometry=[box(lon - 0.004, lat - 0.004, lon + 0.004, lat + 0.004)
                  for lat, lon in zip(df["lat"], df["lon"], strict=True)], crs=crs)


def _gpkg(edit: Callable[[object], object] = lambda g: g, **kw: object
          ) -> Callable[[Path], str]:
    def write(city: Path) -> str:
        edit(_cells(city, **kw)).to_file(city / "areas.gpkg")  # type: ignore[attr-defined]
        return "areas.gpkg"
    return write


def _truncated_gpkg(city: Path) -> str:
    _gpkg()(city)
    _cut(city / "areas.gpkg", 0.3)
    return "areas.gpkg"


def _set_geom(i: int, geom: object) -> Callable[[object], object]:
    def edit(g: object) -> object:
        g.loc[i, "geometry"] = geom  # type: ignore[index]
        return g
    return edit


def _bowtie() -> object:
    from shapely.geometry import Polygon

    return Polygon([(-77.1, 38.9), (-77.0, 39.0), (-77.0, 38.9), (-77.1, 39.0)])


def _duplicated(g: object) -> object:
    return pd.concat([g, g.iloc[2:3]])  # type: ignore[attr-defined]


@dataclass
class GeoCase:
    name: str
    write: Callable[[Path], str]
    says: tuple[str, ...]


GEO_CASES = [
    GeoCase("garbage bytes", raw_file("areas.gpkg", b"\x01not a geopackage" * 100),
            ("areas.gpkg", "not a vector file GDAL can read")),
    GeoCase("truncated GeoPackage", _truncated_gpkg, ("areas.gpkg", "not a vector file")),
    GeoCase("empty file", raw_file("areas.gpkg", b""), ("areas.gpkg", "an empty file")),
    GeoCase("GeoJSON that is not JSON",
            raw_file("areas.geojson", b'{"type": "FeatureCollection", '),
            ("areas.geojson", "not a vector file")),
    GeoCase("ids that do not match", _gpkg(ids=[f"x{i:03d}" for i in range(60)]),
            ("areas.gpkg", "'region_id'", "'r000'", "has no shape", "60 of 60")),
    GeoCase("one region without a shape", _gpkg(lambda g: g.drop(index=5)),  # type: ignore
            ("areas.gpkg", "'r005'", "no shape", "1 of 60")),
    GeoCase("no id column", _gpkg(id_column="id"), ("areas.gpkg", "'region_id'", "missing")),
    GeoCase("a null shape", _gpkg(_set_geom(7, None)), ("areas.gpkg", "'r007'", "null or empty")),
    GeoCase("an invalid shape", _gpkg(_set_geom(9, _bowtie())),
            ("areas.gpkg", "'r009'", "invalid shape", "Self-intersection")),
    GeoCase("a region with two shapes", _gpkg(_duplicated), ("areas.gpkg", "'r002'",
                                                            "more than one shape")),
    GeoCase("no coordinate reference system", _gpkg(crs=None),
            ("areas.gpkg", "no coordinate reference system")),
]


@pytest.mark.parametrize("case", GEO_CASES, ids=[c.name for c in GEO_CASES])
def test_a_bad_geometry_file_is_refused_before_predicting(
        case: GeoCase, trained: tuple[Path, Path], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    city, runs = trained
    copy = tmp_path / "city"
    shutil.copytree(city, copy)
    name = case.write(copy)
    meta = yaml.safe_load((copy / "dataset.yaml").read_text())
    (copy / "dataset.yaml").write_text(yaml.safe_dump({**meta, "geometry": name},
                                                      sort_keys=False))
    argv = ["predict", "--quiet", "--runs", str(runs), "--dataset", str(copy),
            "--out", str(tmp_path / "pred"), "--maps", str(tmp_path / "maps")]
    expect_refusal(argv, (str(copy / name), *case.says), capsys, watch=[copy, runs],
                   absent=[tmp_path / "pred", tmp_path / "maps"])


def test_a_geometry_folder_or_missing_file_is_refused_at_load(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Every verb loads the dataset: a ``geometry`` that names no file is refused by train too."""
    city = small_city(tmp_path / "city")
    (city / "shapes").mkdir()
    for name, says in (("shapes", "a folder"), ("gone.gpkg", "not found")):
        meta = yaml.safe_load((city / "dataset.yaml").read_text())
        (city / "dataset.yaml").write_text(yaml.safe_dump({**meta, "geometry": name}))
        expect_refusal(["train", "--config", str(CONFIG), "--quiet", "--dataset", str(city),
                        "--seed", "0", "--out", str(tmp_path / "run"), *quick_sets(tmp_path)],
                       ("dataset.yaml", "geometry", name, says), capsys, watch=[city],
                       absent=[tmp_path / "run"])


def test_a_good_geometry_file_draws_polygons(trained: tuple[Path, Path], tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    """Shapes of regions the table lacks are left out; a projected CRS is reprojected."""
    city, runs = trained
    copy = tmp_path / "city"
    shutil.copytree(city, copy)
    cells = _cells(copy)
    extra = cells.iloc[:1].copy()  # type: ignore[attr-defined]
    extra["region_id"] = "elsewhere"
    pd.concat([cells, extra]).to_crs("EPSG:3857").to_file(copy / "areas.gpkg")
    meta = yaml.safe_load((copy / "dataset.yaml").read_text())
    (copy / "dataset.yaml").write_text(yaml.safe_dump({**meta, "geometry": "areas.gpkg"}))
    code = main(["predict", "--quiet", "--runs", str(runs), "--dataset", str(copy),
                 "--out", str(tmp_path / "pred")])
    assert code == 0, capsys.readouterr().err
    import geopandas as gpd

    shapes = gpd.read_file(tmp_path / "pred/regions.geojson")
    assert len(shapes) == 60 and (shapes.geom_type == "Polygon").all()
