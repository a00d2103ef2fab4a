"""Bad input, case by case: one line naming the culprit, exit status 2, inputs untouched and no
partial output. Each case mutates a copy of one valid small city (or the command line) and runs
``urbanmoe`` in-process; the valid city itself trains (the control)."""

from __future__ import annotations

import hashlib
import pickle
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from refusal import CONFIG, small_city

from urbanmoe.cli import main


def _edit_table(fn: Callable[[pd.DataFrame], pd.DataFrame | None]) -> Callable[[Path], None]:
    def edit(city: Path) -> None:
        df = pd.read_csv(city / "regions.csv", dtype={"region_id": str})
        out = fn(df)
        (df if out is None else out).to_csv(city / "regions.csv", index=False)
    return edit


def _edit_meta(fn: Callable[[dict], None]) -> Callable[[Path], None]:
    def edit(city: Path) -> None:
        meta = yaml.safe_load((city / "dataset.yaml").read_text())
        fn(meta)
        (city / "dataset.yaml").write_text(yaml.safe_dump(meta, sort_keys=False))
    return edit


def _write(name: str, data: bytes) -> Callable[[Path], None]:
    return lambda city: (city / name).write_bytes(data)


def _set(df: pd.DataFrame, col: str, row: int, value: object) -> None:
    df[col] = df[col].astype(object)
    df.loc[row, col] = value


def _tiles(city: Path, corrupt: int | None = None, missing: int | None = None) -> None:
    """Give every region a small GeoTIFF-free PNG tile; one corrupt or missing if asked."""
    from PIL import Image

    df = pd.read_csv(city / "regions.csv", dtype={"region_id": str})
    (city / "tiles").mkdir()
    rng = np.random.default_rng(1)
    for i, rid in enumerate(df["region_id"]):
        path = city / "tiles" / f"{rid}.png"
        if i == corrupt:
            path.write_bytes(b"not an image at all")
        elif i != missing:
            Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(path)
    df["image_path"] = [f"tiles/{rid}.png" for rid in df["region_id"]]
    df.to_csv(city / "regions.csv", index=False)


def _pickled_checkpoint(city: Path) -> None:
    class Payload:
        def __reduce__(self) -> tuple:
            return (print, ("payload ran",))

    (city / "weights.pt").write_bytes(pickle.dumps({"w": Payload()}))


def _drawn_tables(folder: Path, seeds_row: str,
                  seeds_header: str = "dataset,model,split,seed,avg_r2") -> None:
    """A figures folder holding Table 2 and its per-run values (the claims' inputs)."""
    (folder / "table2.csv").write_text("dataset,model,split,n_seeds,avg_r2_mean\n"
                                       "SH,urbanmoe,random,1,0.8\n")
    (folder / "table2_seeds.csv").write_text(f"{seeds_header}\n{seeds_row}")


@dataclass
class Case:
    """One bad input: how to spoil the city (or the command line) and what the line names."""

    name: str
    says: tuple[str, ...]
    spoil: Callable[[Path], None] | None = None
    args: tuple[str, ...] = ()
    verb: str = "train"
    dataset: str = "city"  # the --dataset path relative to the case's folder
    out: str = "out/run"
    sets: tuple[str, ...] = field(default_factory=tuple)


def _identical_coords(df: pd.DataFrame) -> None:
    df["lat"], df["lon"] = 38.9, -77.1


CASES = [
    Case("duplicate id", ("regions.csv", "region_id", "duplicate id 'r000'"),
         _edit_table(lambda df: _set(df, "region_id", 1, "r000"))),
    Case("blank region id", ("regions.csv", "region_id", "empty id"),
         _edit_table(lambda df: _set(df, "region_id", 3, " "))),
    Case("negative target under log1p", ("regions.csv", "'carbon'", "negative value", "-3.0"),
         _edit_table(lambda df: _set(df, "carbon", 5, -3.0))),
    Case("infinite target", ("regions.csv", "'population'", "infinite value"),
         _edit_table(lambda df: _set(df, "population", 2, "inf"))),
    Case("non-numeric target", ("regions.csv", "'light'", "non-numeric value 'lots'"),
         _edit_table(lambda df: _set(df, "light", 7, "lots"))),
    Case("missing target column", ("regions.csv", "'light'", "target column missing"),
         _edit_table(lambda df: df.drop(columns="light"))),
    Case("empty table file", ("regions.csv", "empty"), _write("regions.csv", b"")),
    Case("header-only table", ("regions.csv", "the table is empty"),
         _write("regions.csv", b"region_id,lat,lon,carbon,population,light\n")),
    Case("latitude out of range", ("regions.csv", "'lat'", "out of range", "95.0"),
         _edit_table(lambda df: _set(df, "lat", 4, 95.0))),
    Case("non-numeric longitude", ("regions.csv", "'lon'", "non-numeric value 'east'"),
         _edit_table(lambda df: _set(df, "lon", 4, "east"))),
    Case("lat without lon", ("regions.csv", "'lat'", "the other is missing"),
         _edit_table(lambda df: df.drop(columns="lon"))),
    Case("negative POI count", ("regions.csv", "'poi_shopping'", "negative count"),
         _edit_table(lambda df: _set(df, "poi_shopping", 0, -1))),
    Case("no region_id column", ("regions.csv", "'region_id'", "missing"),
         _edit_table(lambda df: df.rename(columns={"region_id": "id"}))),
    Case("missing tile", ("regions.csv", "'image_path'", "file not found", "r003"),
         lambda city: _tiles(city, missing=3)),
    Case("corrupt tile", ("r004.png", "cannot read image tile"),
         lambda city: _tiles(city, corrupt=4)),
    Case("embedding ids differ", ("street_emb.csv", "region_id", "r059"),
         lambda city: (city / "street_emb.csv").write_text(
             "\n".join((city / "street_emb.csv").read_text().splitlines()[:-1]) + "\n")),
    Case("non-numeric embedding", ("street_emb.csv", "'e2'", "non-numeric value 'x'"),
         lambda city: _edit_csv(city / "street_emb.csv", "e2", 3, "x")),
    Case("missing embedding file", ("nowhere.csv", "file not found"),
         _edit_meta(lambda m: m["embeddings"].update(street="nowhere.csv"))),
    Case("unknown dataset.yaml key", ("dataset.yaml", "unknown key 'colour'"),
         _edit_meta(lambda m: m.update(colour="red"))),
    Case("unknown transform", ("dataset.yaml", "targets.carbon.transform", "'sqrt'"),
         _edit_meta(lambda m: m["targets"]["carbon"].update(transform="sqrt"))),
    Case("no targets key", ("dataset.yaml", "'targets'", "missing"),
         _edit_meta(lambda m: m.pop("targets"))),
    Case("empty targets", ("dataset.yaml", "'targets'", "at least one target"),
         _edit_meta(lambda m: m.update(targets={}))),
    Case("invalid dataset.yaml", ("dataset.yaml", "not valid YAML"),
         _write("dataset.yaml", b"name: [unclosed\n")),
    Case("unsupported table format", ("regions.xlsx", "unsupported table format"),
         lambda city: ((city / "regions.xlsx").write_bytes((city / "regions.csv").read_bytes()),
                       _edit_meta(lambda m: m.update(table="regions.xlsx"))(city))),
    Case("table path is a folder", ("tiles", "a folder"),
         lambda city: ((city / "tiles").mkdir(), _edit_meta(lambda m: m.update(table="tiles"))(
             city))),
    Case("empty texts", ("text",),
         _edit_table(lambda df: df.assign(text=""))),
    Case("unknown --set key", ("--set train.colour=red", "'colour' was unexpected"),
         sets=("train.colour=red",)),
    Case("mistyped --set value", ("--set train.lr=abc", "train.lr", "'abc'"),
         sets=("train.lr=abc",)),
    Case("--set without =", ("'train.lr'", "key=value"), sets=("train.lr",)),
    Case("unknown model name", ("--set model.name=forest", "model.name", "'forest'"),
         sets=("model.name=forest",)),
    Case("empty split fractions", ("--set split.fractions=[]", "split.fractions"),
         sets=("split.fractions=[]",)),
    Case("missing config file", ("nowhere.yaml", "file not found"),
         args=("--config", "nowhere.yaml")),
    Case("config not a mapping", ("listcfg.yaml", "expected a mapping"),
         lambda city: (city.parent / "listcfg.yaml").write_text("- a\n- b\n"),
         args=("--config", "listcfg.yaml")),
    Case("missing dataset folder", ("nowhere", "dataset.yaml", "file not found"),
         dataset="nowhere"),
    Case("--dataset pointing at a file", ("regions.csv", "dataset.yaml"),
         dataset="city/regions.csv"),
    Case("spatial blocks without coordinates", ("spatial_block", "lat/lon"),
         _edit_table(lambda df: df.drop(columns=["lat", "lon"])),
         sets=("split.kind=spatial_block",)),
    Case("identical coordinates under blocks", ("spatial_block", "block"),
         _edit_table(_identical_coords), sets=("split.kind=spatial_block",)),
    Case("a task without any label", ("regions.csv", "'light'", "0/0/0 labelled regions"),
         _edit_table(lambda df: df.assign(light=np.nan))),
    Case("a task with one labelled region", ("regions.csv", "'light'", "each part needs"),
         _edit_table(lambda df: df.assign(light=[7.0] + [np.nan] * (len(df) - 1)))),
    Case("too few regions", ("regions.csv", "5 labelled region(s)", "at least 15"),
         lambda city: (_edit_table(lambda df: df.head(5))(city),
                       _edit_meta(lambda m: m.pop("embeddings"))(city))),
    Case("more folds than a part can hold", ("regions.csv", "fold", "each part needs"),
         sets=("split.kind=kfold", "split.folds=20")),
    Case("unknown loss weight task", ("train.loss_weights", "'gdp'"),
         sets=("train.loss_weights={gdp: 1.0}",)),
    Case("pickled RemoteCLIP checkpoint", ("weights.pt", "cannot be read as a RemoteCLIP"),
         lambda city: (_tiles(city), _pickled_checkpoint(city)), verb="features",
         sets=("features.image.encoder=remoteclip",)),
    Case("non-tensor RemoteCLIP checkpoint", ("weights.pt", "not a state dict", "'note'"),
         lambda city: (_tiles(city), torch.save({"note": "hello"}, city / "weights.pt")),
         verb="features",
         sets=("features.image.encoder=remoteclip",)),
    Case("malformed variant", ("variant", "model.d_r", "key=value"),
         args=("--variant", "urbanmoe@model.d_r")),
    Case("several seeds, one --out", ("--out", "{seed}"), args=("--seed", "1", "2")),
    Case("--out under a regular file", ("--out", "regions.csv", "is a file, not a folder"),
         out="city/regions.csv/run"),
    Case("--out under /proc", ("--out /proc/urbanmoe-run", "cannot write under /proc"),
         out="/proc/urbanmoe-run"),
    Case("claims without the tables' folder", ("--figures", "nowhere", "no such folder"),
         verb="claims", args=("--figures", "nowhere"), out="out/claims.md"),
    Case("claims over a per-run table with a word for a seed",
         ("table2_seeds.csv", "column 'seed'", "'zero'", "not a number"),
         lambda city: _drawn_tables(city, "SH,urbanmoe,random,zero,0.8\n"), verb="claims",
         args=("--figures", "city"), out="out/claims.md"),
    Case("claims over a per-run table without its split column",
         ("table2_seeds.csv", "column 'split'", "missing"),
         lambda city: _drawn_tables(city, "SH,urbanmoe,random,0,0.8\n", "dataset,model,x,"
                                    "seed,avg_r2"), verb="claims", args=("--figures", "city"),
         out="out/claims.md"),
    Case("aggregate of a folder without runs", ("no metrics.json",), verb="aggregate",
         args=("city",), out="out/summary.csv"),
    Case("predict from a folder that is not a run", ("city", "not a run folder"),
         verb="predict", args=("--runs", "city"), out="out/pred"),
    Case("build with neither --city nor --bbox", ("--city", "--bbox"), verb="build",
         args=("--imagery", "x.tif", "--pois", "p.csv", "--label", "carbon=c.tif:sum:t"),
         out="out/built"),
    Case("malformed --label", ("--label", "NAME=PATH:AGG:UNIT"), verb="build",
         args=("--city", "DC", "--imagery", "x.tif", "--pois", "p.csv", "--label", "carbon"),
         out="out/built"),
]


def _edit_csv(path: Path, col: str, row: int, value: object) -> None:
    df = pd.read_csv(path, dtype={"region_id": str})
    _set(df, col, row, value)
    df.to_csv(path, index=False)


def _checksums(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _argv(case: Case, work: Path) -> list[str]:
    config = ["--config", str(CONFIG)] if "--config" not in case.args else []
    out = case.out if case.out.startswith("/") else str(work / case.out)
    sets = ["train.max_epochs=2", f"features.cache_dir={work / 'cache'}",
            f"features.remoteclip.checkpoint={work / 'city/weights.pt'}", *case.sets]
    argv = [case.verb, *config, "--quiet", "--out", out]
    for item in sets:
        argv += ["--set", item]
    if case.verb in ("train", "features"):
        argv += ["--dataset", str(work / case.dataset)]
    if case.verb == "train" and "--seed" not in case.args:
        argv += ["--seed", "0"]
    args = [str(work / a) if a in ("city", "nowhere", "nowhere.yaml", "listcfg.yaml") else a
            for a in case.args]
    if case.verb == "aggregate":
        return [case.verb, *config, "--out", out, *args]
    return argv + args


def test_there_are_enough_cases() -> None:
    assert len(CASES) >= 45
    assert len({c.name for c in CASES}) == len(CASES)


def test_the_valid_city_trains(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The control: unspoilt, the city trains, so each case fails by its own spoiling."""
    small_city(tmp_path / "city")
    code = main(_argv(Case("valid", ()), tmp_path))
    assert code == 0, capsys.readouterr().err
    assert (tmp_path / "out/run/metrics.json").is_file()


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_gets_one_line_and_exit_2(case: Case, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    city = small_city(tmp_path / "city")
    if case.spoil is not None:
        case.spoil(city)
    before = _checksums(tmp_path)
    code = main(_argv(case, tmp_path))
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("urbanmoe:")]
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("urbanmoe: error: "), err
    for culprit in case.says:
        assert culprit in lines[0], f"{culprit!r} not in {lines[0]!r}"
    assert "payload ran" not in err
    after = {k: v for k, v in _checksums(tmp_path).items() if not k.startswith("cache/")}
    assert after == {k: v for k, v in before.items() if not k.startswith("cache/")}
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*"))


def test_out_under_an_immutable_folder(tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    """Refused before any work, naming --out (root ignores permissions, not immutability)."""
    import subprocess

    small_city(tmp_path / "city")
    locked = tmp_path / "locked"
    locked.mkdir()
    if subprocess.run(["chattr", "+i", str(locked)], capture_output=True).returncode != 0:
        pytest.skip("chattr +i is not available here (not root, or the file system lacks it)")
    try:
        code = main(_argv(Case("immutable", (), out="locked/run"), tmp_path))
    finally:
        subprocess.run(["chattr", "-i", str(locked)], check=True)
    err = capsys.readouterr().err
    assert code == 2 and f"--out {locked / 'run'}: cannot write under {locked}" in err, err
    assert not (tmp_path / "cache").exists()  # no work was done


def test_a_bug_is_not_reported_as_bad_input(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    """A ValueError from inside the library (here a stand-in for a shape bug) exits 1, says it
    is a bug and where its traceback went; -v lets it through."""
    import urbanmoe.evaluation.run as run

    def broken(*args: object, **kwargs: object) -> None:
        raise ValueError("mat1 and mat2 shapes cannot be multiplied (4x3 and 5x2)")

    monkeypatch.setattr(run, "train_run", broken)
    small_city(tmp_path / "city")
    code = main(_argv(Case("bug", ()), tmp_path))
    err = capsys.readouterr().err
    assert code == 1, err
    assert "internal error (a bug, not your input): ValueError: mat1 and mat2" in err
    trace = Path(err.split("traceback in ")[1].split(" (or rerun")[0])
    assert "Traceback" in trace.read_text() and "broken" in trace.read_text()
    trace.unlink()
    with pytest.raises(ValueError, match="mat1 and mat2"):
        main(["-v", *_argv(Case("bug", ()), tmp_path)])
