"""Paths stay where the data contract puts them: every path in ``dataset.yaml`` and the region
table is relative to the dataset folder and stays inside it (a symbolic link inside the folder
may point anywhere: that is the user's explicit choice), and a dataset's name, which becomes
part of file names, is a safe name. Each escape is refused in one line naming the file, the
field and the value, before any work."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from refusal import CONFIG, Case, edit_meta, expect_refusal, quick_sets, small_city

from urbanmoe.cli import main


def _tiles(city: Path, path_of: Callable[[int, str], str]) -> None:
    """A PNG tile per region under ``city/tiles`` and one outside the city, with ``image_path``
    as ``path_of(row, region_id)`` says."""
    from PIL import Image

    df = pd.read_csv(city / "regions.csv", dtype={"region_id": str})
    (city / "tiles").mkdir(exist_ok=True)
    (city.parent / "outside").mkdir(exist_ok=True)
    rng = np.random.default_rng(1)
    for rid in df["region_id"]:
        pixels = rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(city / "tiles" / f"{rid}.png")
        Image.fromarray(pixels).save(city.parent / "outside" / f"{rid}.png")
    df["image_path"] = [path_of(i, rid) for i, rid in enumerate(df["region_id"])]
    df.to_csv(city / "regions.csv", index=False)


def _elsewhere(city: Path, name: str) -> Path:
    """``name`` of the city moved next to it (outside the folder)."""
    shutil.move(city / name, city.parent / name)
    return city.parent / name



CASES = [
    Case("name climbing out", lambda c: edit_meta(c, name="../../somewhere"),
         ("dataset.yaml", "name", "'../../somewhere'", "safe name")),
    Case("name with a slash", lambda c: edit_meta(c, name="a/b"), ("name", "'a/b'")),
    Case("name of dots", lambda c: edit_meta(c, name=".."), ("name", "'..'")),
    Case("hidden name", lambda c: edit_meta(c, name=".tmp-x"), ("name", "'.tmp-x'")),
    Case("empty name", lambda c: edit_meta(c, name=""), ("name", "''")),
    Case("absolute name", lambda c: edit_meta(c, name="/etc/cron.d/x"), ("name", "/etc/cron.d/x")),
    Case("image above the folder", lambda c: _tiles(c, lambda i, r: f"../outside/{r}.png"),
         ("regions.csv", "image_path", "'../outside/r000.png'", "outside the dataset folder")),
    Case("image by an absolute path", lambda c: _tiles(
        c, lambda i, r: str((c.parent / "outside" / f"{r}.png").resolve())),
         ("regions.csv", "image_path", "absolute")),
    Case("image climbing out mid-path", lambda c: _tiles(
        c, lambda i, r: f"tiles/../../outside/{r}.png" if i == 7 else f"tiles/{r}.png"),
         ("image_path", "'tiles/../../outside/r007.png'", "r007")),
    Case("table above the folder", lambda c: (_elsewhere(c, "regions.csv"),
                                              edit_meta(c, table="../regions.csv")),
         ("dataset.yaml", "table", "'../regions.csv'", "outside the dataset folder")),
    Case("table by an absolute path", lambda c: edit_meta(
        c, table=str(_elsewhere(c, "regions.csv").resolve())), ("dataset.yaml", "table",
                                                                 "absolute")),
    Case("embeddings above the folder", lambda c: (_elsewhere(c, "street_emb.csv"), edit_meta(
        c, embeddings={"street": "../street_emb.csv"})), ("embeddings.street", "outside")),
    Case("geometry by an absolute path", lambda c: edit_meta(c, geometry="/etc/passwd"),
         ("dataset.yaml", "geometry", "absolute")),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_an_escaping_path_is_refused(case: Case, tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    city = small_city(tmp_path / "city")
    case.spoil(city)
    argv = ["train", "--config", str(CONFIG), "--quiet", "--dataset", str(city), "--seed", "0",
            "--out", str(tmp_path / "out/run"), *quick_sets(tmp_path)]
    expect_refusal(argv, case.says, capsys, watch=[tmp_path], absent=[tmp_path / "out"],
                   skip=("cache",))


def test_predict_refuses_a_name_that_would_write_maps_elsewhere(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The runs were trained under a good name; the dataset's name was changed afterwards."""
    city = small_city(tmp_path / "city")
    runs = tmp_path / "runs"
    assert main(["train", "--config", str(CONFIG), "--quiet", "--dataset", str(city), "--seed",
                 "0", "--out", str(runs / "seed0"), *quick_sets(tmp_path),
                 "--set", "model.name=ridge"]) == 0
    edit_meta(city, name="../../escaped")
    expect_refusal(["predict", "--quiet", "--runs", str(runs), "--out", str(tmp_path / "pred"),
                    *quick_sets(tmp_path)], ("name", "'../../escaped'"), capsys,
                   watch=[city, runs], absent=[tmp_path / "pred"])
    assert not list(tmp_path.parent.glob("escaped*"))


def test_what_stays_inside_is_read(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The rule is lexical and about the folder: a path that wanders but stays inside, and a
    symbolic link inside the folder to tiles kept elsewhere, are both fine."""
    city = small_city(tmp_path / "city")
    _tiles(city, lambda i, r: f"tiles/../tiles/{r}.png" if i % 2 else f"linked/{r}.png")
    (city / "linked").symlink_to(tmp_path / "outside", target_is_directory=True)
    assert main(["train", "--config", str(CONFIG), "--quiet", "--dataset", str(city), "--seed",
                 "0", "--out", str(tmp_path / "run"), *quick_sets(tmp_path),
                 "--set", "model.name=pca"]) == 0, capsys.readouterr().err
    assert (tmp_path / "run/metrics.json").is_file()
