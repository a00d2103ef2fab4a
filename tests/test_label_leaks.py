"""Label leaks: a column named as a target that a modality also reads would be given to the
model it is asked to predict. Each way a column becomes a model input is refused in one line
naming the column and both roles, when the dataset is loaded (before any work), through
``urbanmoe train``; a target equal in value to an input under another name is not refused (it
cannot be told from a legitimate target), and the legitimate city trains."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from refusal import CONFIG, Case, edit_meta, expect_refusal, quick_sets, small_city

from urbanmoe.cli import main


def _table(city: Path, edit: Callable[[pd.DataFrame], None]) -> None:
    df = pd.read_csv(city / "regions.csv", dtype={"region_id": str})
    edit(df)
    df.to_csv(city / "regions.csv", index=False)


def _target(name: str) -> Callable[[dict], None]:
    return lambda meta: meta["targets"].update({name: {"transform": "none"}})


def _add_group(name: str, spec: dict) -> Callable[[Path], None]:
    def spoil(city: Path) -> None:
        _table(city, lambda df: df.insert(len(df.columns), "flow_in", np.arange(len(df)) % 7))
        edit_meta(city, lambda m: m.setdefault("feature_groups", {}).update({name: spec}))
    return spoil


def _embedding_with(column: str, fmt: str) -> Callable[[Path], None]:
    def spoil(city: Path) -> None:
        emb = pd.read_csv(city / "street_emb.csv", dtype={"region_id": str})
        emb[column] = np.linspace(0.0, 1.0, len(emb))
        if fmt == "parquet":
            emb.to_parquet(city / "street_emb.parquet", index=False)
            (city / "street_emb.csv").unlink()
            edit_meta(city, lambda m: m.update(embeddings={"street": "street_emb.parquet"}))
        else:
            emb.to_csv(city / "street_emb.csv", index=False)
    return spoil


def _tiles_and_target(city: Path) -> None:
    from PIL import Image

    (city / "tiles").mkdir()
    rng = np.random.default_rng(2)

    def add(df: pd.DataFrame) -> None:
        for rid in df["region_id"]:
            pixels = rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(city / "tiles" / f"{rid}.png")
        df["image_path"] = [f"tiles/{rid}.png" for rid in df["region_id"]]

    _table(city, add)
    edit_meta(city, _target("image_path"))



CASES = [
    Case("poi_ column as a target", lambda c: edit_meta(c, _target("poi_shopping")),
         ("dataset.yaml", "'poi_shopping'", "both a target and an input", "pois group")),
    Case("target listed in a group's columns",
         _add_group("mobility", {"columns": ["flow_in", "carbon"]}),
         ("dataset.yaml", "'carbon'", "target", "feature group 'mobility'")),
    Case("target matched by a group's prefix", _add_group("stuff", {"prefix": "pop"}),
         ("'population'", "target", "feature group 'stuff'")),
    Case("target in a group named pois", _add_group("pois", {"columns": ["flow_in", "light"]}),
         ("'light'", "feature group 'pois'")),
    Case("embeddings table (CSV) with the target's column", _embedding_with("carbon", "csv"),
         ("'carbon'", "target", "embeddings table 'street'")),
    Case("embeddings table (Parquet) with the target's column",
         _embedding_with("light", "parquet"), ("'light'", "embeddings table 'street'")),
    Case("text column as a target", lambda c: edit_meta(c, _target("text")),
         ("'text'", "target", "text modality")),
    Case("lat as a target", lambda c: edit_meta(c, _target("lat")),
         ("'lat'", "target", "coordinates")),
    Case("lon as a target", lambda c: edit_meta(c, _target("lon")), ("'lon'", "coordinates")),
    Case("image_path as a target", _tiles_and_target, ("'image_path'", "image modality")),
    Case("region_id as a target", lambda c: edit_meta(c, _target("region_id")),
         ("'region_id'", "region id")),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_a_target_that_is_also_an_input_is_refused(case: Case, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    city = small_city(tmp_path / "city")
    case.spoil(city)
    argv = ["train", "--config", str(CONFIG), "--quiet", "--dataset", str(city), "--seed", "0",
            "--out", str(tmp_path / "out/run"), *quick_sets(tmp_path)]
    line = expect_refusal(argv, (str(city / "dataset.yaml"), *case.says,
                                 "a target must not be a model input"),
                          capsys, watch=[city], absent=[tmp_path / "out"])
    assert line.count("urbanmoe: error:") == 1


def test_a_legitimate_city_trains(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A feature group and a target whose values copy an input under another name (``shops``
    = ``poi_shopping``): names differ, nothing is refused."""
    city = small_city(tmp_path / "city")
    _add_group("mobility", {"columns": ["flow_in"]})(city)
    _table(city, lambda df: df.insert(len(df.columns), "shops", df["poi_shopping"]))
    edit_meta(city, _target("shops"))
    code = main(["train", "--config", str(CONFIG), "--quiet", "--dataset", str(city), "--seed",
                 "0", "--out", str(tmp_path / "run"), *quick_sets(tmp_path),
                 "--set", "model.name=ridge"])
    assert code == 0, capsys.readouterr().err
    assert (tmp_path / "run/metrics.json").is_file()
