"""HAFusion's cities (ICDE 2024) as dataset folders: the importer on a made-up city of the same
files (always), on the real three cities where ``../shared/data/hafusion`` is at hand, and every
bad file refused in one line with nothing written."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from refusal import CONFIG, checksums, expect_refusal, raw_file

from urbanmoe.cli import main
from urbanmoe.data.sources.hafusion import FILES, GROUPS, RELATIONS, TARGETS
from urbanmoe.data.table import load_dataset

REAL = Path(__file__).resolve().parents[2] / "shared/data/hafusion"
N = 40


def fake_city(root: Path, n: int = N) -> Path:
    """A HAFusion-shaped city folder: labels, POI and land-use counts, four matrices."""
    rng = np.random.default_rng(0)
    root.mkdir(parents=True)
    pois = rng.poisson(3, (n, 26)).astype(np.int32)
    for f, _ in TARGETS.values():
        np.save(root / f, (pois.sum(1) * rng.uniform(5, 20, n)).astype(np.int64))
    np.save(root / GROUPS["poi"], pois)
    np.save(root / GROUPS["landuse"], rng.poisson(2, (n, 11)).astype(np.int32))
    for f in RELATIONS.values():
        m = rng.uniform(0, 1, (n, n))
        np.save(root / f, (m + m.T) / 2)
    return root


def test_a_city_becomes_a_dataset(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    city = fake_city(tmp_path / "data_NY")
    before = checksums([city])
    out = tmp_path / "NY"
    assert main(["import-hafusion", "--city-dir", str(city), "--out", str(out)]) == 0
    assert checksums([city]) == before
    ds = load_dataset(out)
    assert ds.name == "NY" and ds.meta["city"] == "NYC" and len(ds.ids) == N
    assert ds.coords is None and list(ds.tasks) == list(TARGETS)
    assert ds.ids[0] == "r000" and "landuse" in ds.feature_groups
    table = pd.read_parquet(out / "regions.parquet")
    assert np.array_equal(table["crime"], np.load(city / TARGETS["crime"][0]))
    assert np.array_equal(table.filter(like="poi_").to_numpy(), np.load(city / GROUPS["poi"]))
    for f in RELATIONS.values():
        assert (out / "relations" / f).read_bytes() == (city / f).read_bytes()
    meta = yaml.safe_load((out / "dataset.yaml").read_text())
    assert set(meta["source"]["files"]) == set(FILES)
    run = tmp_path / "run"
    assert main(["train", "--dataset", str(out), "--seed", "0", "--out", str(run), "--config",
                 str(CONFIG), "--set", "model.name=ridge", "--quiet"]) == 0
    assert (run / "metrics.json").is_file()
    capsys.readouterr()


def _save(name: str, value: Callable[[np.ndarray], np.ndarray]) -> Callable[[Path], str]:
    def spoil(city: Path) -> str:
        np.save(city / name, value(np.load(city / name)))
        return name
    return spoil


def _gone(name: str) -> Callable[[Path], str]:
    def spoil(city: Path) -> str:
        (city / name).unlink()
        return name
    return spoil


def _nan(a: np.ndarray) -> np.ndarray:
    a = a.astype(float)
    a[3, 4] = np.nan
    return a


def _negative(a: np.ndarray) -> np.ndarray:
    a = a.copy()
    a[7] = -5
    return a


BAD = [
    ("NaN in a matrix", _save("mob-adj.npy", _nan), ("mob-adj.npy", "nan", "[3, 4]")),
    ("negative label", _save("crime_counts.npy", _negative), ("crime_counts.npy", "-5")),
    ("labels of another length", _save("check_counts.npy", lambda a: a[:-1]),
     ("crime_counts.npy", "40 regions", "check_counts.npy has 39")),
    ("counts of another length", _save("poi_dist.npy", lambda a: a[:-2]),
     ("poi_dist.npy", "38 rows", "expected 40")),
    ("matrix not square", _save("poi_simi.npy", lambda a: a[:, :-1]),
     ("poi_simi.npy", "(40, 39)")),
    ("a 3-D array", _save("landUse_dist.npy", lambda a: a[:, :, None]),
     ("landUse_dist.npy", "2-D")),
    ("text, not numbers", _save("mob_dist.npy", lambda a: a.astype(str)),
     ("mob_dist.npy", "numeric")),
    ("garbage bytes", raw_file("poi_dist.npy", b"not numpy"), ("poi_dist.npy", "cannot be read")),
    ("a pickle", raw_file("crime_counts.npy", b"\x93NUMPY\x01\x00v\x00{'descr': '|O', "
                      b"'fortran_order': False, 'shape': (3,), }" + b" " * 60 + b"\n"),
     ("crime_counts.npy", "cannot be read")),
    ("missing file", _gone("serviceCall_counts.npy"), ("serviceCall_counts.npy", "not found")),
]


@pytest.mark.parametrize(("spoil", "says"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_a_bad_file_is_one_line(spoil: Callable[[Path], str], says: tuple[str, ...],
                                tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    city = fake_city(tmp_path / "data_SF")
    spoil(city)
    out = tmp_path / "SF"
    expect_refusal(["import-hafusion", "--city-dir", str(city), "--out", str(out)], says,
                   capsys, watch=[city], absent=[out])


def test_the_output_may_not_be_the_input(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    city = fake_city(tmp_path / "data_Chi")
    expect_refusal(["import-hafusion", "--city-dir", str(city), "--out", str(city / "x")],
                   ("--out",), capsys, watch=[city])


@pytest.mark.skipif(not REAL.is_dir(), reason="HAFusion's data not at hand (../shared/data)")
@pytest.mark.parametrize(("folder", "n", "landuse"), [("data_NY", 180, 11), ("data_Chi", 77, 12),
                                                      ("data_SF", 175, 23)])
def test_the_real_cities(folder: str, n: int, landuse: int, tmp_path: Path) -> None:
    city = tmp_path / folder
    shutil.copytree(REAL / folder, city)
    out = tmp_path / "city"
    assert main(["import-hafusion", "--city-dir", str(city), "--out", str(out)]) == 0
    ds = load_dataset(out)
    assert len(ds.ids) == n and ds.feature_groups["landuse"].matrix(ds.table).shape[1] == landuse
    assert ds.coords is None
