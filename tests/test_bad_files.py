"""Bad files and values are bad input, never an internal error: each is one line naming the
file (and field, and value), exit 2, before any work, nothing written, the inputs unchanged.

The shape of ``dataset.yaml`` is checked against its schema before anything reads it; every
number the model sees must be finite in float32 (the precision it trains in); arguments out of
their range are refused by the parser in the same one-line form. Spoilt run folders and
documents are in ``test_parsers.py``, paths in ``test_path_escapes.py``, outputs in
``test_outputs.py``, tiles and geometry in ``test_bad_tiles_geometry.py``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
from refusal import CONFIG, Case, edit_meta, expect_refusal, quick_sets, small_city

from urbanmoe.cli import main


def _yaml(text: str) -> Callable[[Path], None]:
    return lambda city: (city / "dataset.yaml").write_text(text)


def _meta(**changes: object) -> Callable[[Path], None]:
    return lambda city: edit_meta(city, **changes)


def _cell(name: str, column: str, row: int, value: object,
          then: Callable[[Path], None] | None = None) -> Callable[[Path], None]:
    """Set one cell of a CSV of the city (as text, so that no writer rounds it)."""
    def spoil(city: Path) -> None:
        df = pd.read_csv(city / name, dtype=str, keep_default_na=False)
        df.loc[row, column] = str(value)
        df.to_csv(city / name, index=False)
        if then is not None:
            then(city)
    return spoil


def _list_cells(city: Path) -> None:
    df = pd.read_csv(city / "street_emb.csv", dtype={"region_id": str})
    df["e0"] = [[1.0, 2.0]] * len(df)
    df.to_parquet(city / "street_emb.parquet")
    edit_meta(city, embeddings={"street": "street_emb.parquet"})


def _header_twice(city: Path) -> None:
    lines = (city / "regions.csv").read_text().split("\n")
    lines[0] = lines[0].replace("light", "carbon")
    (city / "regions.csv").write_text("\n".join(lines))


def _parquet_column_twice(city: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    df = pd.read_csv(city / "street_emb.csv", dtype={"region_id": str})
    arrays = [pa.array(df["region_id"]), pa.array(df["e0"]), pa.array(df["e1"])]
    pq.write_table(pa.Table.from_arrays(arrays, names=["region_id", "e0", "e0"]),
                   city / "street_emb.parquet")
    edit_meta(city, embeddings={"street": "street_emb.parquet"})


GROUPS = _meta(feature_groups={"land": {"prefix": "poi_"}})
NONE = _meta(targets={"carbon": {"transform": "none"}, "population": None, "light": None})



CASES = [
    Case("dataset.yaml a top-level list", _yaml("- name: BAD\n- table: regions.csv\n"),
         ("dataset.yaml", "mapping")),
    Case("dataset.yaml a plain string", _yaml("just some words\n"), ("dataset.yaml",)),
    Case("targets a string", _meta(targets="carbon"), ("dataset.yaml", "targets")),
    Case("targets a list", _meta(targets=["carbon", "light"]), ("dataset.yaml", "targets")),
    Case("a target a string", _meta(targets={"carbon": "log1p"}),
         ("dataset.yaml", "targets.carbon")),
    Case("a feature group a string", _meta(feature_groups={"land": "poi_"}),
         ("dataset.yaml", "feature_groups.land")),
    Case("a group's columns a string", _meta(feature_groups={"land": {"columns": "poi_shopping"}}),
         ("dataset.yaml", "feature_groups.land.columns")),
    Case("embeddings a list", _meta(embeddings=["street_emb.csv"]),
         ("dataset.yaml", "embeddings")),
    Case("an embedding path a number", _meta(embeddings={"street": 7}),
         ("dataset.yaml", "embeddings.street")),
    Case("noise_ceiling a word", _meta(noise_ceiling={"carbon": "high"}),
         ("dataset.yaml", "noise_ceiling.carbon", "high")),
    Case("noise_ceiling a list", _meta(noise_ceiling=[0.8, 0.9]),
         ("dataset.yaml", "noise_ceiling")),
    Case("noise_ceiling of a task that is not a target", _meta(noise_ceiling={"gdp": 0.5}),
         ("dataset.yaml", "noise_ceiling.gdp", "not a target")),
    Case("noise_ceiling above 1", _meta(noise_ceiling={"carbon": 1.5}),
         ("dataset.yaml", "noise_ceiling.carbon", "1.5")),
    Case("bbox of three numbers", _meta(bbox=[1, 2, 3]), ("dataset.yaml", "bbox")),
    Case("a huge target under transform none", _cell("regions.csv", "carbon", 3, "1e150", NONE),
         ("regions.csv", "'carbon'", "1e+150")),
    Case("a target beyond float32 under log1p", _cell("regions.csv", "population", 5, "1e200"),
         ("regions.csv", "'population'", "1e+200")),
    Case("a group value beyond float32", _cell("regions.csv", "poi_shopping", 2, "1e39", GROUPS),
         ("regions.csv", "'poi_shopping'", "1e+39")),
    Case("an embedding beyond float32", _cell("street_emb.csv", "e1", 4, "1e39"),
         ("street_emb.csv", "'e1'", "1e+39")),
    Case("an infinite embedding", _cell("street_emb.csv", "e2", 7, "inf"),
         ("street_emb.csv", "'e2'", "inf")),
    Case("a negative infinite embedding", _cell("street_emb.csv", "e0", 1, "-inf"),
         ("street_emb.csv", "'e0'", "inf")),
    Case("a coordinate beyond float32", _cell("regions.csv", "lat", 0, "1e39"),
         ("regions.csv", "'lat'")),
    Case("list cells in a Parquet embedding", _list_cells,
         ("street_emb.parquet", "'e0'", "a list of 2 values")),
    Case("a CSV header naming a column twice", _header_twice,
         ("regions.csv", "'carbon'", "appears twice")),
    Case("a Parquet table naming a column twice", _parquet_column_twice,
         ("street_emb.parquet", "e0")),  # pyarrow refuses it first, naming the column
    Case("a negative seed", None, ("--seed", "'-1'"), ("--seed", "-1")),
    Case("a seed beyond 2**32 - 1", None, ("--seed", "'4294967296'"), ("--seed", "4294967296")),
    Case("a seed not an integer", None, ("--seed", "'1.5'"), ("--seed", "1.5")),
    Case("a seed list beyond range", None, ("train.seeds",),
         ("--seed", "0", "--set", "train.seeds=[0,99999999999]")),
    Case("a split seed beyond range", None, ("split.seed",),
         ("--seed", "0", "--set", "split.seed=-4")),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_a_bad_file_is_one_line(case: Case, tmp_path: Path,
                                capsys: pytest.CaptureFixture[str]) -> None:
    city = small_city(tmp_path / "city")
    if case.spoil is not None:
        case.spoil(city)
    out = tmp_path / "run"
    seed = () if "--seed" in case.args else ("--seed", "0")
    argv = ["train", "--dataset", str(city), "--out", str(out), *seed, *case.args,
            "--config", str(CONFIG), *quick_sets(tmp_path), "--quiet"]
    expect_refusal(argv, case.says, capsys, watch=[city], absent=[out])


@pytest.mark.parametrize("argv,says", [
    (["synth", "--seed", "-7"], ("synth", "--seed", "'-7'")),
    (["build", "--city", "SH", "--patch-px", "0"], ("--patch-px", "'0'")),
    (["build", "--city", "SH", "--resolution-m", "nan"], ("--resolution-m", "'nan'")),
    (["build", "--bbox", "0", "0", "inf", "1"], ("--bbox", "'inf'")),
    (["nosuchverb"], ("invalid choice", "'nosuchverb'")),
    (["train", "--seed", "0"], ("train", "required", "--dataset")),
], ids=["synth seed", "patch side", "resolution nan", "bbox inf", "unknown verb", "missing"])
def test_a_bad_argument_is_one_line(argv: list[str], says: tuple[str, ...], tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    if argv[0] == "build":
        argv = [*argv, "--imagery", "a.tif", "--pois", "p.csv", "--label", "c=c.tif:sum:t"]
    argv = [*argv, "--out", str(out)] if argv[0] in {"synth", "build"} else argv
    assert main(argv) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("urbanmoe: error: "), err
    assert all(s in err[0] for s in says), err[0]
    assert not out.exists()


def test_a_valid_noise_ceiling_trains(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The control: a numeric noise ceiling in scientific notation trains and is recorded."""
    city = small_city(tmp_path / "city")
    _meta(noise_ceiling={"carbon": 9e-1, "population": None})(city)
    out = tmp_path / "run"
    code = main(["train", "--dataset", str(city), "--out", str(out), "--seed", "0",
                 "--config", str(CONFIG), *quick_sets(tmp_path), "--quiet"])
    assert code == 0, capsys.readouterr().err
    assert (out / "metrics.json").is_file()


# ------------------------------------------------------- binary files: checkpoints, arrays
@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One UrbanMoE run folder of the small city (two epochs): model.pt and routing.npz."""
    root = tmp_path_factory.mktemp("binaries")
    city = small_city(root / "city")
    run = root / "runs/urbanmoe/seed0"
    code = main(["train", "--config", str(CONFIG), "--quiet", "--dataset", str(city), "--seed",
                 "0", "--out", str(run), *quick_sets(root)])
    assert code == 0
    return run


def _saved(obj: object) -> bytes:
    import io

    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def _checkpoints() -> list[tuple[str, Callable[[bytes], bytes], str]]:
    return [
        ("garbage", lambda b: b"not a checkpoint at all", "cannot be read as"),
        ("empty", lambda b: b"", "cannot be read as"),
        ("truncated", lambda b: b[:len(b) // 2], "cannot be read as"),
        ("code, not weights", lambda b: _saved(Path("/etc")), "cannot be read as"),
        ("a list of tensors", lambda b: _saved([1, 2]), "not a state dict"),
    ]


@pytest.mark.parametrize(("change", "says"), [c[1:] for c in _checkpoints()],
                         ids=[c[0] for c in _checkpoints()])
def test_a_spoilt_checkpoint_is_one_line(change: Callable[[bytes], bytes], says: str,
                                         trained: Path, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    import shutil

    runs = tmp_path / "runs"
    shutil.copytree(trained.parent.parent, runs)
    weights = runs / "urbanmoe/seed0/model.pt"
    weights.write_bytes(change(weights.read_bytes()))
    out = tmp_path / "pred"
    argv = ["predict", "--config", str(CONFIG), "--quiet", "--runs", str(runs / "urbanmoe"),
            "--out", str(out)]
    expect_refusal(argv, (str(weights), says), capsys, watch=[runs], absent=[out])


@pytest.mark.parametrize(("data", "says"), [
    (b"PK\x03\x04 truncated", "cannot be read as a run's routing"),
    (b"", "cannot be read as a run's routing"),
], ids=["truncated zip", "empty"])
def test_a_spoilt_routing_file_is_one_line(data: bytes, says: str, trained: Path,
                                           tmp_path: Path) -> None:
    import shutil

    from urbanmoe.errors import RunError
    from urbanmoe.evaluation.experts import load_routing

    run = tmp_path / "run"
    shutil.copytree(trained, run)
    (run / "routing.npz").write_bytes(data)
    with pytest.raises(RunError, match="routing.npz: " + says):
        load_routing(run)
    assert load_routing(trained).branches  # the control


def test_a_damaged_cache_entry_is_a_miss(tmp_path: Path,
                                         caplog: pytest.LogCaptureFixture) -> None:
    """Caches are never replaced; an entry that cannot be read is removed with a warning and
    computed again, whatever kind of array it holds."""
    import numpy as np

    from urbanmoe.binaries import read_cached, read_npy, read_npz

    good, bad = tmp_path / "good.npy", tmp_path / "bad.npz"
    np.save(good, np.arange(3))
    bad.write_bytes(b"PK\x03\x04 half an archive")
    assert read_cached(good, lambda p: read_npy(p, "tiles")).tolist() == [0, 1, 2]
    assert read_cached(bad, lambda p: read_npz(p, "a representation")) is None
    assert not bad.exists() and "damaged cache entry" in caplog.text
    assert read_cached(tmp_path / "none.npy", lambda p: read_npy(p, "tiles")) is None


def test_a_damaged_feature_cache_entry_is_encoded_again(tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    city = small_city(tmp_path / "city")
    argv = ["train", "--dataset", str(city), "--seed", "0", "--config", str(CONFIG),
            *quick_sets(tmp_path), "--quiet"]
    assert main([*argv, "--out", str(tmp_path / "a")]) == 0
    entries = sorted((tmp_path / "cache").glob("*-text-*.parquet"))
    assert entries
    entries[0].write_bytes(entries[0].read_bytes()[:100])
    assert main([*argv, "--out", str(tmp_path / "b")]) == 0, capsys.readouterr().err
    assert pd.read_parquet(entries[0]).shape[0] == 60  # encoded and written again


def test_an_argument_error_masks_secrets(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--seed", "https://ann:Hunter2-Secret@host/x"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Hunter2-Secret" not in err and "***@host" in err


def _geotiff(path: Path) -> None:
    import numpy as np
    import rasterio
    from rasterio.transform import from_origin

    with rasterio.open(path, "w", driver="GTiff", width=50, height=50, count=4, dtype="uint16",
                       crs="EPSG:4326", transform=from_origin(0, 0.1, 0.002, 0.002)) as dst:
        dst.write(np.ones((4, 50, 50), dtype="uint16"))


@pytest.mark.parametrize(("bad", "says"), [("imagery", "cannot read imagery"),
                                           ("label", "cannot read a label raster")])
def test_build_from_a_raster_that_is_not_one(bad: str, says: str, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    image, label = tmp_path / "s2.tif", tmp_path / "odiac.tif"
    _geotiff(image)
    _geotiff(label)
    (image if bad == "imagery" else label).write_bytes(b"not a raster at all")
    pois = tmp_path / "pois.csv"
    pois.write_text("lon,lat,category,name\n0.05,0.05,food,x\n")
    out = tmp_path / "out"
    argv = ["build", "--bbox", "0", "0", "0.1", "0.1", "--imagery", str(image), "--pois",
            str(pois), "--label", f"carbon={label}:sum:t", "--out", str(out)]
    expect_refusal(argv, (str(image if bad == "imagery" else label), says), capsys,
                   watch=[image, label, pois], absent=[out])
