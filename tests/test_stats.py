"""Table 1 (dataset statistics), Figure 6 (one region's data sample) and notebooks/dataset.ipynb."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rasterio
import yaml
from conftest import notebook_parameters, skip_without_kernel, write_dataset

from urbanmoe.data import stats
from urbanmoe.data.table import DataError, RegionDataset, load_dataset
from urbanmoe.report import dataset_stats
from urbanmoe.report.palette import CATEGORY_COLOURS, OKABE_ITO

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(__file__).resolve().parents[2] / "shared/paper"
UNITS = {"carbon": {"transform": "log1p", "unit": "t CO2 / yr"},
         "population": {"transform": "log1p", "unit": "people"}}
N = 12


def _tiles(root: Path, n: int, red: int) -> list[str]:
    """n 4-band uint16 GeoTIFFs (B, G, R, NIR): red (band 3) bright, the others dark."""
    (root / "tiles").mkdir(parents=True, exist_ok=True)
    arr = np.full((4, 8, 8), 300, np.uint16)
    arr[2] = red
    arr[2, 0, 0] = 0  # some contrast for the display stretch
    paths = []
    for k in range(n):
        rel = f"tiles/t{k}.tif"
        with rasterio.open(root / rel, "w", driver="GTiff", width=8, height=8, count=4,
                           dtype="uint16") as dst:
            dst.write(arr)
        paths.append(rel)
    return paths


def _hand_made(root: Path, name: str = "TOY", images: bool = True, pois: bool = True,
               meta: dict | None = None) -> RegionDataset:
    """N regions: lat 30.0..30.11, lon 120.0..120.22; POIs shop = k, school = 2 (none in r0);
    text everywhere but r1; r2's population missing."""
    k = np.arange(N)
    table = pd.DataFrame({"region_id": [f"r{i}" for i in k], "lat": 30.0 + 0.01 * k,
                          "lon": 120.0 + 0.02 * k, "carbon": 10.0 * (k + 1),
                          "population": np.where(k == 2, np.nan, 100.0 + k)})
    table["text"] = ["" if i == 1 else f"region {i} has {i} shops" for i in k]
    if pois:
        table["poi_shopping"] = k
        table["poi_school"] = np.where(k == 0, 0, 2)
    if images:
        table["image_path"] = _tiles(root, N, red=5000)
    return load_dataset(write_dataset(root, table, {"name": name, "targets": UNITS,
                                                    **(meta or {})}))


def test_palette() -> None:
    assert len(OKABE_ITO) == 8 and len(set(OKABE_ITO)) == 8 and OKABE_ITO[-1] == "#000000"
    assert all(re.fullmatch(r"#[0-9A-F]{6}", c) for c in OKABE_ITO)
    assert set(CATEGORY_COLOURS) == {"specific", "dual", "shared", "fused"}
    assert len(set(CATEGORY_COLOURS.values())) == 4 and set(CATEGORY_COLOURS.values()) <= set(
        OKABE_ITO)


def test_table1_hand_made(tmp_path: Path) -> None:
    ds = _hand_made(tmp_path / "toy")
    row = dataset_stats.dataset_table([ds]).iloc[0]
    assert (row.n_regions, row.n_images, row.n_tasks) == (N, N, 2)
    assert row.n_pois == N * (N - 1) // 2 + 2 * (N - 1)  # shops 0..N-1, 2 schools but in r0
    assert row.tasks == "carbon, population" and row.coverage_source == "regions"
    assert (row.lat_min, row.lon_min) == (30.0, 120.0)
    assert row.lat_max == pytest.approx(30.11) and row.lon_max == pytest.approx(120.22)
    assert row["Coverage"] == "30.00°N, 120.00°E – 30.11°N, 120.22°E"
    assert row["#POI"] == f"{row.n_pois:,}" and row.modalities == "image, text, POI, location"
    boxed = _hand_made(tmp_path / "boxed", meta={"bbox": [-34.0, -58.6, -33.5, -58.2]})
    row = dataset_stats.dataset_table([boxed]).iloc[0]
    assert (row.coverage_source, row.lat_min, row.lon_max) == ("bbox", -34.0, -58.2)
    assert row["Coverage"] == "34.00°S, 58.60°W – 33.50°S, 58.20°W"


def test_table1_synthetic_sh(synth_sh: Path) -> None:
    ds = load_dataset(synth_sh)
    raw = pd.read_parquet(synth_sh / "regions.parquet")
    meta = yaml.safe_load((synth_sh / "dataset.yaml").read_text())
    row = dataset_stats.dataset_table([ds]).iloc[0]
    assert (row.dataset, row.n_regions, row.n_tasks) == ("SH", 1558, 3)
    assert row.n_images == len(list((synth_sh / "tiles").glob("*.tif")))
    assert row.n_pois == int(raw.filter(like="poi_").to_numpy().sum())
    assert [row.lat_min, row.lon_min, row.lat_max, row.lon_max] == meta["bbox"]


def test_published_table1_transcription() -> None:
    pub = pd.read_csv(REPO / "paper/published_table1.csv").set_index("dataset")
    shared = SHARED / "published_table1.csv"
    if shared.is_file():
        assert (REPO / "paper/published_table1.csv").read_bytes() == shared.read_bytes()
    paper = SHARED / "urbanmoe-www26.txt"
    if not paper.is_file():
        pytest.skip(f"paper text {paper} not present")
    lines = [ln.split("\t") for ln in paper.read_text().splitlines()
             if re.match(r"^(SH|BJ|DC)\t\d", ln)]
    assert len(lines) == 3
    for name, bl, tr, images, pois, tasks in lines:
        corners = [float(v) * (-1 if h in "SW" else 1)
                   for v, h in re.findall(r"([\d.]+)°([NSEW])", f"{bl} {tr}")]
        got = pub.loc[name, ["bottom_left_lat", "bottom_left_lon", "top_right_lat",
                             "top_right_lon"]].tolist()
        assert got == corners
        assert pub.loc[name, "satellite_images"] == int(images.replace(",", ""))
        assert pub.loc[name, "pois"] == int(pois.replace(",", ""))
        assert pub.loc[name, "tasks"] == int(tasks)


def test_published_vs_reproduced(tmp_path: Path) -> None:
    ds = _hand_made(tmp_path / "SH", name="SH", meta={"bbox": [30.70, 120.90, 31.63, 121.95]})
    published = tmp_path / "pub.csv"
    pd.DataFrame([["SH", "Shanghai", 30.70, 120.90, 31.63, 121.95, N, 999, 2],
                  ["BJ", "Beijing", 39.65, 115.82, 40.65, 117.11, 2310, 541407, 3]],
                 columns=["dataset", "city", "bottom_left_lat", "bottom_left_lon",
                          "top_right_lat", "top_right_lon", "satellite_images", "pois",
                          "tasks"]).to_csv(published, index=False)
    dataset_stats.write_table1([ds], tmp_path / "out", published, "a hand-made toy")
    shown = dataset_stats.published_vs_reproduced_table1(dataset_stats.dataset_table([ds]),
                                                 pd.read_csv(published))
    sh = shown[shown["Dataset"] == "SH"].set_index("Quantity")
    n_pois = N * (N - 1) // 2 + 2 * (N - 1)
    assert sh.loc["#POI", "Judgement"] == ("above" if n_pois > 999 else "below")
    assert sh.loc["#Region", "Judgement"] == "within"
    assert sh.loc["Bottom-left", "Judgement"] == "within"
    assert sh.loc["#Task", "Judgement"] == "within"
    assert sh.loc["#POI", "Reproduced"] == f"{N * (N - 1) // 2 + 2 * (N - 1):,}"
    assert set(shown.loc[shown["Dataset"] == "BJ", "Judgement"]) == {"—"}  # not reproduced
    md = (tmp_path / "out/published_vs_reproduced_table1.md").read_text()
    assert "Reproduced on: a hand-made toy." in md and "synthetic" not in md
    assert (tmp_path / "out/published_vs_reproduced_table1.tex").read_text().count(r"\\") > 12
    csv = pd.read_csv(tmp_path / "out/table1.csv")
    assert list(csv["n_regions"]) == [N] and "Coverage" not in csv.columns


def test_region_sample(tmp_path: Path) -> None:
    ds = _hand_made(tmp_path / "toy")
    complete = {f"r{i}" for i in range(3, N)} | {"r2"}  # r0 has no POIs, r1 no text
    drawn = [stats.region_sample(ds, seed=s)["region_id"] for s in range(8)]
    assert drawn == [stats.region_sample(ds, seed=s)["region_id"] for s in range(8)]
    assert set(drawn) <= complete and len(set(drawn)) > 1
    s = stats.region_sample(ds, region_id="r2")
    assert s["text"] == "region 2 has 2 shops" and s["poi"] == {"shopping": 2.0, "school": 2.0}
    assert s["labels"]["carbon"] == {"value": 30.0, "unit": "t CO2 / yr"}
    assert np.isnan(s["labels"]["population"]["value"])
    assert s["image"].shape == (4, 8, 8) and s["image_rgb"].shape == (8, 8, 3)
    rgb = s["image_rgb"]
    assert rgb.min() >= 0 and rgb.max() <= 1 and rgb[1:, 1:, 0].mean() > rgb[..., 2].mean()
    assert "display only" in s["caption"]
    assert stats.region_sample(ds, region_id="r1")["text"] is None
    with pytest.raises(DataError, match="nope"):
        stats.region_sample(ds, region_id="nope")


def _texts(fig) -> str:  # noqa: ANN001
    return " ".join(t.get_text() for ax in fig.axes for t in [*ax.texts, ax.title])


def test_figure6_files(synth_sh: Path, tmp_path: Path) -> None:
    ds = load_dataset(synth_sh)
    sample, fig = dataset_stats.write_figure6(ds, tmp_path, seed=1)
    assert sample["region_id"] in set(ds.table["region_id"])
    assert (tmp_path / "figure6.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "figure6.pdf").read_bytes()[:4] == b"%PDF"
    assert f"region {sample['region_id']}" in fig._suptitle.get_text()
    assert "SH" in fig._suptitle.get_text() and "t CO2 / yr" in _texts(fig)
    assert "no image" not in _texts(fig) and not list(tmp_path.glob(".tmp-*"))


def test_no_images_no_pois(tmp_path: Path) -> None:
    ds = _hand_made(tmp_path / "bare", images=False, pois=False)
    row = dataset_stats.dataset_table([ds]).iloc[0]
    assert (row.n_images, row.n_pois, row["#POI"]) == (0, 0, "—")
    assert row.modalities == "text, location"
    sample, fig = dataset_stats.write_figure6(ds, tmp_path / "out", seed=0)
    assert sample["image"] is None and sample["poi"] == {}
    assert "no image" in _texts(fig) and "no POIs" in _texts(fig)
    assert (tmp_path / "out/figure6.png").stat().st_size > 0


def test_notebook_end_to_end(tmp_path: Path) -> None:
    skip_without_kernel()
    import papermill

    for name in ("SH", "BJ"):
        _hand_made(tmp_path / "data" / name, name=name, images=name == "SH")
    out = tmp_path / "figs"
    papermill.execute_notebook(
        str(REPO / "notebooks/dataset.ipynb"), str(tmp_path / "executed.ipynb"),
        parameters={"dataset_dirs": [str(tmp_path / "data" / n) for n in ("BJ", "SH")],
                    "out_dir": str(out), "published": str(REPO / "paper/published_table1.csv"),
                    "sample_dataset": "SH", "sample_seed": 0, "data_note": "toy data"},
        kernel_name="python3", cwd=str(tmp_path), progress_bar=False)
    names = {p.name for p in out.iterdir()}
    assert {"table1.csv", "table1.md", "table1.tex", "figure6.png", "figure6.pdf",
            "published_vs_reproduced_table1.md", "published_vs_reproduced_table1.tex"} <= names
    assert list(pd.read_csv(out / "table1.csv")["dataset"]) == ["SH", "BJ"]  # paper order
    shown = json.dumps([c.get("outputs") for c in
                        json.loads((tmp_path / "executed.ipynb").read_text())["cells"]])
    assert "image/png" in shown and "Published vs reproduced" in shown


def test_notebook_parameters_cell() -> None:
    params = notebook_parameters("dataset.ipynb")
    assert params["dataset_dirs"][0] == "data/synthetic/SH"
    assert params["out_dir"] == "paper_figures"
    assert params["published"] == "paper/published_table1.csv"
    assert (params["sample_dataset"], params["sample_seed"]) == ("SH", 0)
