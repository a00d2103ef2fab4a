"""The UrbanCLIP-toolkit adapter: real Beijing files when at hand, and small hand-made cities."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from urbanmoe.data.sources import fetch_commands, import_urbanclip_city
from urbanmoe.data.sources.urbanclip import COMMIT, GDP_FILL
from urbanmoe.data.table import DataError, load_dataset

BEIJING = Path(__file__).resolve().parents[2] / "shared/data/urbanclip-toolkit/Beijing"
ALLOWED_KEYS = {"name", "city", "table", "targets", "embeddings", "bbox", "noise_ceiling",
                "source"}
HEADER = ("satellite_img_name,BD09 coordinate,WGS84 coordinate,carbon_emissions (ton),"
          "population (unit),gdp (million yuan)")
ROWS = [  # (tile x, tile y, "(lat, lon)", carbon, population, gdp)
    (12659, 4738, "(40.0931, 116.4456)", "564.68", "1916", "4344.14"),
    (12668, 4714, "(39.9233, 116.5284)", "1667.13", "6945", "10000.0"),
    (12692, 4733, "(40.0578, 116.7492)", "0.0", "381", "5539.02"),
    (12625, 4734, "(40.0648, 116.1329)", "304.98", "1973", ""),
    (12635, 4704, "(39.8531, 116.2241)", "98.1", "0", "12.5"),
]


def _tile(x: int, y: int) -> str:
    return f"16_{x}_{y}_s"


def _make_city(root: Path, *, tiles: int = 5, rows: list[tuple] | None = None) -> Path:
    """A 5-tile toy city in the toolkit's layout, with ``tiles`` of its JPEG tiles present."""
    city = root / "Toy"
    (city / "tiles").mkdir(parents=True)
    rows = ROWS if rows is None else rows
    lines = [HEADER] + [f'Toy/{_tile(x, y)}.jpg,"({x},{y})","{ll}",{c},{p},{g}'
                        for x, y, ll, c, p, g in rows]
    (city / "Toy.csv").write_text("\n".join(lines) + "\n")
    caps = [{"caption": f"Sentence {k} of tile {i}.", "image": f"Toy/{_tile(*ROWS[i][:2])}.jpg"}
            for i in (0, 1, 2) for k in (1, 2)]
    caps.insert(1, {"caption": "Stray tile.", "image": "Toy/16_1_1_s.jpg"})
    (city / "Toy_captions.json").write_text(json.dumps([caps]))
    for i, (x, y, *_) in enumerate(rows[:tiles]):
        Image.new("RGB", (8, 8), (40 * i, 90, 160)).save(city / "tiles" / f"{_tile(x, y)}.jpg")
    return city


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.skipif(not BEIJING.is_dir(), reason="real UrbanCLIP-toolkit Beijing not at hand")
def test_real_beijing(tmp_path: Path) -> None:
    out = import_urbanclip_city(BEIJING, tmp_path / "Beijing")
    meta = yaml.safe_load((out / "dataset.yaml").read_text())
    assert set(meta) <= ALLOWED_KEYS and meta["name"] == "Beijing"
    ds = load_dataset(out)
    t = ds.table
    assert len(t) == 4587 and t["region_id"].is_unique
    assert "16_12659_4738_s" in set(t["region_id"])
    assert t["lat"].between(39, 41.5).all() and t["lon"].between(115, 118).all()
    gdp_missing = t["gdp"].isna().mean()
    assert 0.12 <= gdp_missing <= 0.21  # measured: 940 of 4,587 (20.5%)
    assert not (t["gdp"] == GDP_FILL).any()
    assert meta["source"]["gdp_fill_cells"] == int(t["gdp"].isna().sum())
    assert (t["text"].str.len() > 0).mean() > 0.99
    assert "image_path" not in t.columns and meta["source"]["tiles"]["present"] == 6
    assert meta["source"]["commit"] == COMMIT
    assert meta["source"]["captions"]["images_not_in_table"] == 5
    with pytest.raises(DataError, match="tiles named in Beijing.csv are missing"):
        import_urbanclip_city(BEIJING, tmp_path / "again", require_images=True)
    assert not (tmp_path / "again").exists()


def test_all_tiles_present(tmp_path: Path) -> None:
    city = _make_city(tmp_path / "in")
    out = import_urbanclip_city(city, tmp_path / "out" / "Toy")
    ds = load_dataset(out)
    t = ds.table
    assert list(t["region_id"]) == [_tile(x, y) for x, y, *_ in ROWS]
    assert all(p.is_file() for p in ds.image_paths)
    assert np.allclose(ds.coords[0], [40.0931, 116.4456])
    assert t["gdp"].isna().tolist() == [False, True, False, True, False]  # fill value and empty
    assert t["text"].iloc[0] == "Sentence 1 of tile 0. Sentence 2 of tile 0."
    assert t["text"].iloc[3] == "" and t["text"].iloc[4] == ""
    meta = yaml.safe_load((out / "dataset.yaml").read_text())
    src = meta["source"]
    assert src["gdp_fill_cells"] == 1 and src["zero_labels"] == {"carbon": 1, "population": 1,
                                                                 "gdp": 0}
    assert src["captions"]["images_not_in_table"] == 1
    assert src["captions"]["sentences_not_in_table"] == 1
    assert src["captions"]["regions_without_text"] == 2
    assert meta["bbox"] == pytest.approx([39.8531, 116.1329, 40.0931, 116.7492], abs=2e-6)
    assert set(meta["targets"]) == {"carbon", "population", "gdp"}
    assert import_urbanclip_city(city, tmp_path / "req", require_images=True).is_dir()


def test_missing_tiles_leave_image_path_out(tmp_path: Path) -> None:
    city = _make_city(tmp_path / "in", tiles=2)
    out = import_urbanclip_city(city, tmp_path / "out")
    assert "image_path" not in load_dataset(out).table.columns
    assert yaml.safe_load((out / "dataset.yaml").read_text())["source"]["tiles"]["present"] == 2
    with pytest.raises(DataError, match="3 of 5 tiles"):
        import_urbanclip_city(city, tmp_path / "out2", require_images=True)


@pytest.mark.parametrize("cell", ["(40.1; 116.2)", "(north, 116.2)", "40.1, 116.2",
                                  "(95.0, 116.2)", "(40.1, nan)"])
def test_malformed_coordinate(tmp_path: Path, cell: str) -> None:
    rows = list(ROWS)
    rows[2] = (*rows[2][:2], cell, *rows[2][3:])
    city = _make_city(tmp_path / "in", rows=rows)
    with pytest.raises(DataError) as err:
        import_urbanclip_city(city, tmp_path / "out")
    msg = str(err.value)
    assert "\n" not in msg and "Toy.csv" in msg and "'WGS84 coordinate'" in msg
    assert "row 3" in msg and cell in msg
    assert not (tmp_path / "out").exists()


def test_bad_label_and_duplicate(tmp_path: Path) -> None:
    rows = list(ROWS)
    rows[1] = (*rows[1][:3], "-3", *rows[1][4:])
    with pytest.raises(DataError, match=r"'carbon_emissions \(ton\)': row 2: .*'-3'"):
        import_urbanclip_city(_make_city(tmp_path / "a", rows=rows), tmp_path / "o")
    with pytest.raises(DataError, match="duplicate tile"):
        import_urbanclip_city(_make_city(tmp_path / "b", rows=ROWS + ROWS[:1]), tmp_path / "o")


def test_deterministic_and_inputs_untouched(tmp_path: Path) -> None:
    city = _make_city(tmp_path / "in")
    before = _snapshot(city)
    first = _snapshot(import_urbanclip_city(city, tmp_path / "a"))
    again = _snapshot(import_urbanclip_city(city, tmp_path / "a"))  # replaces the folder
    other = _snapshot(import_urbanclip_city(city, tmp_path / "b"))
    assert first == again == other
    assert _snapshot(city) == before
    with pytest.raises(ValueError, match="would replace the input"):
        import_urbanclip_city(city, tmp_path / "in")


def test_fetch_commands(tmp_path: Path) -> None:
    cmds = fetch_commands("Beijing", Path("data/raw/Beijing"))
    assert cmds == [
        f"dvc import-url https://raw.githubusercontent.com/siruzhong/UrbanCLIP-Dataset-Toolkit/"
        f"{COMMIT}/integrate/output/Beijing/Beijing.csv data/raw/Beijing/Beijing.csv",
        f"dvc import-url https://raw.githubusercontent.com/siruzhong/UrbanCLIP-Dataset-Toolkit/"
        f"{COMMIT}/caption/pairs/Beijing_captions.json data/raw/Beijing/Beijing_captions.json",
    ]
    assert "'my dir/Shanghai.csv'" in fetch_commands("Shanghai", Path("my dir"))[0]
    with pytest.raises(ValueError):
        fetch_commands("../etc", tmp_path)
