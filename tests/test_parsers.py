"""Every YAML and JSON document urbanmoe reads goes through ``urbanmoe.readers``: alias bombs,
oversized, non-UTF-8 and malformed files, duplicate keys and run-folder files of the wrong shape
are one line naming the file (and line, and key), exit 2, nothing written; ``1e-3`` is a number;
region ids are strings exactly as written, an empty one refused."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
import yaml
from refusal import CONFIG, expect_refusal, quick_sets, small_city

from urbanmoe.cli import main
from urbanmoe.config import load_config
from urbanmoe.data.table import load_dataset, read_table
from urbanmoe.errors import ConfigError, DataError, InputError, RunError
from urbanmoe.readers import MAX_YAML_BYTES, dump_yaml, load_yaml

# 10 leaves, then 7 levels of 10 aliases each: 10^8 leaves once expanded, from 300 bytes
BOMB = ("{a: &a [x, x, x, x, x, x, x, x, x, x], "
        + ", ".join(f"{c}: &{c} [{', '.join([f'*{p}'] * 10)}]"
                    for p, c in zip("abcdefg", "bcdefgh", strict=True)) + "}")
RIDGE = ["--set", "model.name=ridge"]


# ------------------------------------------------------------------ documents the reader refuses
def _meta_text(city: Path) -> str:
    return (city / "dataset.yaml").read_text()


def _append_meta(text: str) -> Callable[[Path], None]:
    return lambda city: (city / "dataset.yaml").write_text(_meta_text(city) + text)


def _meta_bytes(data: bytes) -> Callable[[Path], None]:
    return lambda city: (city / "dataset.yaml").write_bytes(data)


def _config(text: str | bytes) -> Callable[[Path], None]:
    def spoil(city: Path) -> None:
        data = text if isinstance(text, bytes) else text.encode()
        (city.parent / "bad.yaml").write_bytes(CONFIG.read_bytes() + b"\n" + data)
    return spoil


def _csv_cell(name: str, row: int, col: str, value: str) -> Callable[[Path], None]:
    def spoil(city: Path) -> None:
        lines = (city / name).read_text().splitlines()
        cells = lines[row + 1].split(",")
        cells[lines[0].split(",").index(col)] = value
        lines[row + 1] = ",".join(cells)
        (city / name).write_text("\n".join(lines) + "\n")
    return spoil


def _parquet_null_id(city: Path) -> None:
    df = pd.read_csv(city / "regions.csv", dtype={"region_id": str})
    df["region_id"] = df["region_id"].astype(object)
    df.loc[4, "region_id"] = None
    df.to_parquet(city / "regions.parquet", index=False)
    (city / "regions.csv").unlink()
    meta = yaml.safe_load(_meta_text(city))
    (city / "dataset.yaml").write_text(yaml.safe_dump({**meta, "table": "regions.parquet"}))


REFUSED = [  # (case, spoil, extra argv, what the line names)
    ("alias bomb in dataset.yaml", _append_meta(f"noise_ceiling: {BOMB}\n"), [],
     ("dataset.yaml", "line ", "nodes once its aliases are expanded")),
    ("recursive alias in dataset.yaml", _append_meta("noise_ceiling: &n {a: *n}\n"), [],
     ("dataset.yaml", "line ", "alias *n", "recursive")),
    ("alias bomb in the config file", _config(f"bomb: {BOMB}\n"), ["--config", "bad.yaml"],
     ("bad.yaml", "line ", "nodes once its aliases are expanded")),
    ("alias bomb in --set", None, ["--set", f"train.loss_weights={BOMB}"],
     ("--set train.loss_weights=", "nodes once its aliases are expanded")),
    ("a second targets: in dataset.yaml", _append_meta("targets: {carbon: {}}\n"), [],
     ("dataset.yaml", "line ", "key 'targets' given twice (first at line ")),
    ("a target given twice in dataset.yaml",
     lambda city: (city / "dataset.yaml").write_text(
         _meta_text(city).replace("targets:\n", "targets:\n  light: {}\n", 1)), [],
     ("dataset.yaml", "key 'light' given twice")),
    ("two train: sections in the config", _config("train: {lr: 0.01}\n"),
     ["--config", "bad.yaml"], ("bad.yaml", "line ", "key 'train' given twice")),
    ("a key twice in a config section", _config("extra:\n  lr: 1\n  lr: 2\n"),
     ["--config", "bad.yaml"], ("bad.yaml", "line ", "key 'lr' given twice")),
    ("a key twice in a --set value", None,
     ["--set", "train.loss_weights={carbon: 1.0, carbon: 2.0}"],
     ("--set train.loss_weights=", "column 15: key 'carbon' given twice (first at column 2)")),
    ("dataset.yaml over the size bound", _append_meta("#" * MAX_YAML_BYTES + "\n"), [],
     ("dataset.yaml", "larger than 4 MiB")),
    ("dataset.yaml not UTF-8", _meta_bytes(b"name: caf\xe9\n"), [],
     ("dataset.yaml", "not UTF-8", "0xe9 on line 1")),
    ("dataset.yaml nested too deeply", _append_meta("noise_ceiling: " + "[" * 200 + "]" * 200),
     [], ("dataset.yaml", "nested deeper than 100")),
    ("dataset.yaml with a binary tag", _append_meta("noise_ceiling: !!binary AAAA\n"), [],
     ("dataset.yaml", "'binary'", "plain data only")),
    ("config file not UTF-8", _config(b"# \xff\n"), ["--config", "bad.yaml"],
     ("bad.yaml", "not UTF-8")),
    ("a float where a count belongs", None, ["--set", "train.max_epochs=1e3"],
     ("--set train.max_epochs=1e3", "train.max_epochs", "integer")),
    ("an empty region id", _csv_cell("regions.csv", 7, "region_id", ""), [],
     ("regions.csv", "'region_id'", "empty id at row 7")),
    ("an empty id in an embedding table", _csv_cell("street_emb.csv", 2, "region_id", ""), [],
     ("street_emb.csv", "'region_id'", "empty id at row 2")),
    ("a null id in a Parquet table", _parquet_null_id, [],
     ("regions.parquet", "'region_id'", "empty id at row 4")),
]


@pytest.mark.parametrize(("spoil", "extra", "says"), [c[1:] for c in REFUSED],
                         ids=[c[0] for c in REFUSED])
def test_a_bad_document_is_one_line(spoil: Callable[[Path], None] | None, extra: list[str],
                                    says: tuple[str, ...], tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    city = small_city(tmp_path / "city")
    if spoil is not None:
        spoil(city)
    extra = [str(tmp_path / a) if a == "bad.yaml" else a for a in extra]
    config = [] if "--config" in extra else ["--config", str(CONFIG)]
    line = expect_refusal(
        ["train", *config, "--quiet", "--dataset", str(city), "--seed", "0",
         "--out", str(tmp_path / "out/run"), *quick_sets(tmp_path), *extra],
        says, capsys, watch=[city, tmp_path / "bad.yaml"], absent=[tmp_path / "out"])
    assert len(line) < 300, line  # the line names the culprit, never the document


# ----------------------------------------------------------------------- numbers and strings
@pytest.mark.parametrize(("text", "value"), [
    ("1e-3", 1e-3), ("1E5", 1e5), ("2.5e+3", 2.5e3), ("-1e-3", -1e-3), ("+1e3", 1e3),
    ("1.5e3", 1.5e3), (".5e1", 5.0), ("1.0e-3", 1e-3), ("1.5", 1.5), ("1_000", 1000),
    ("0x1f", 31), ("12", 12), (".inf", float("inf")), ("1e", "1e"), ("e5", "e5"),
    ("1e5x", "1e5x"), ("2024-05-01", "2024-05-01"), ("NA", "NA")])
def test_yaml_numbers(text: str, value: object) -> None:
    """YAML 1.2's scientific notation is a number; YAML 1.1's numbers stay numbers; a date is
    the string it is written as."""
    got = load_yaml(f"v: {text}", "t")["v"]
    assert got == value and type(got) is type(value)


@pytest.mark.parametrize("text", ["1e5", "-2.5E-3", "1e-3"])
def test_strings_shaped_like_numbers_survive_a_round_trip(text: str) -> None:
    assert load_yaml(dump_yaml({"name": text}), "t") == {"name": text}


@pytest.mark.parametrize("spelling", ["1e-3", "1E-3", "2.5e-4", "1.0e-3"])
def test_scientific_notation_in_set_and_config(spelling: str, tmp_path: Path) -> None:
    want = float(spelling)
    assert load_config(None, [f"train.lr={spelling}"])["train"]["lr"] == want
    path = tmp_path / "config.yaml"
    path.write_text(f"train:\n  lr: {spelling}\n")
    assert load_config(path)["train"]["lr"] == want


def test_scientific_notation_in_dataset_yaml(tmp_path: Path) -> None:
    city = small_city(tmp_path / "city")
    _append_meta("noise_ceiling: {carbon: 9e-1, population: 8E-1, light: 7.5e-1}\n")(city)
    assert load_dataset(city).meta["noise_ceiling"] == {"carbon": 0.9, "population": 0.8,
                                                       "light": 0.75}


def test_set_lr_in_scientific_notation_trains(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    city = small_city(tmp_path / "city")
    out = tmp_path / "run"
    code = main(["train", "--config", str(CONFIG), "--quiet", "--dataset", str(city),
                 "--seed", "0", "--out", str(out), *quick_sets(tmp_path),
                 "--set", "train.lr=1e-3"])
    assert code == 0, capsys.readouterr().err
    assert yaml.safe_load((out / "config.yaml").read_text())["train"]["lr"] == 0.001
    assert json.loads((out / "metrics.json").read_text())["efficiency"]["epochs"]


NA_IDS = ["NA", "N/A", "null", "nan", "None", "-", "NULL", "n/a", "#N/A", "<NA>", "NaN"]


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_region_ids_are_strings_as_written(suffix: str, tmp_path: Path) -> None:
    df = pd.DataFrame({"region_id": NA_IDS, "carbon": [1.0, None, *range(len(NA_IDS) - 2)]})
    path = tmp_path / f"t{suffix}"
    df.to_csv(path, index=False) if suffix == ".csv" else df.to_parquet(path, index=False)
    back = read_table(path)
    assert back["region_id"].tolist() == NA_IDS
    assert back["carbon"].isna().tolist() == [False, True] + [False] * (len(NA_IDS) - 2)


def test_a_city_with_na_ids_trains_and_predicts(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    """Districts called NA, null, None...: trained on, and predicted by ``urbanmoe predict``
    under their own names (its predictions.parquet holds every region)."""
    city = small_city(tmp_path / "city")
    for name in ("regions.csv", "street_emb.csv"):
        df = pd.read_csv(city / name, dtype={"region_id": str})
        df.loc[:len(NA_IDS) - 1, "region_id"] = NA_IDS
        df.to_csv(city / name, index=False)
    ids = set(load_dataset(city).ids)
    assert set(NA_IDS) <= ids
    run = tmp_path / "run"
    assert main(["train", "--config", str(CONFIG), "--quiet", "--dataset", str(city), "--seed",
                 "0", "--out", str(run), *quick_sets(tmp_path), *RIDGE]) == 0, \
        capsys.readouterr().err
    assert set(pd.read_parquet(run / "predictions.parquet")["region_id"]) <= ids
    assert main(["predict", "--config", str(CONFIG), "--quiet", "--runs", str(run), "--out",
                 str(tmp_path / "pred")]) == 0, capsys.readouterr().err
    assert set(pd.read_parquet(tmp_path / "pred/predictions.parquet")["region_id"]) == ids


# --------------------------------------------------------------------- run folders spoilt
@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One run folder of the small city (ridge, two epochs)."""
    root = tmp_path_factory.mktemp("parsers")
    city = small_city(root / "city")
    run = root / "runs/ridge/seed0"
    code = main(["train", "--config", str(CONFIG), "--quiet", "--dataset", str(city), "--seed",
                 "0", "--out", str(run), *quick_sets(root), *RIDGE])
    assert code == 0
    return run


def _metrics_edit(fn: Callable[[dict], object]) -> Callable[[bytes], bytes]:
    """The bytes of metrics.json after ``fn`` changed it in place."""
    def edit(data: bytes) -> bytes:
        m = json.loads(data)
        fn(m)
        return json.dumps(m).encode()
    return edit


BAD_METRICS = [  # (case, how the bytes change, what the line names besides the file)
    ("truncated", lambda b: b[:len(b) // 2], "not valid JSON"),
    ("empty", lambda b: b"", "empty"),
    ("not UTF-8", lambda b: b"\xff\xfe" + b, "not UTF-8"),
    ("not JSON", lambda b: b"dataset: SH\n", "not valid JSON"),
    ("a list", lambda b: b"[1, 2]", "(top level): expected a mapping"),
    ("no dataset", _metrics_edit(lambda m: m.pop("dataset")), "field 'dataset': missing"),
    ("tasks not a list", _metrics_edit(lambda m: m.update(tasks="carbon")),
     "field 'tasks': expected a list"),
    ("no split kind", _metrics_edit(lambda m: m["split"].pop("kind")),
     "field 'split.kind': missing"),
    ("no efficiency", _metrics_edit(lambda m: m.pop("efficiency")),
     "field 'efficiency': missing"),
    ("a key twice", lambda b: b[:-2] + b', "seed": 1}', "key 'seed' given twice"),
    ("over the size bound", lambda b: b + b" " * (16 * 2**20), "larger than 16 MiB"),
]
BAD_RUN_CONFIG = [
    ("not YAML", b"train: [unclosed\n", "not valid YAML"),
    ("alias bomb", f"x: {BOMB}\n".encode(), "nodes once its aliases are expanded"),
    ("a key twice", b"seed: 0\nseed: 1\n", "key 'seed' given twice"),
    ("a list", b"- a\n- b\n", "(top level): expected a mapping"),
    ("not UTF-8", b"seed: \xff\n", "not UTF-8"),
]


def _spoilt_copy(trained: Path, tmp_path: Path, name: str,
                 change: Callable[[bytes], bytes] | bytes) -> Path:
    runs = tmp_path / "runs"
    shutil.copytree(trained.parent.parent, runs)
    path = runs / "ridge/seed0" / name
    path.write_bytes(change if isinstance(change, bytes) else change(path.read_bytes()))
    return path


@pytest.mark.parametrize("verb", ["aggregate", "predict", "provenance"])
@pytest.mark.parametrize(("change", "says"), [c[1:] for c in BAD_METRICS],
                         ids=[c[0] for c in BAD_METRICS])
def test_a_spoilt_metrics_json(verb: str, change: Callable[[bytes], bytes], says: str,
                               trained: Path, tmp_path: Path,
                               capsys: pytest.CaptureFixture[str]) -> None:
    path = _spoilt_copy(trained, tmp_path, "metrics.json", change)
    runs, out = tmp_path / "runs", tmp_path / "out"
    argv = {"aggregate": [str(runs), "--out", str(out / "summary.csv")],
            "predict": ["--quiet", "--runs", str(runs / "ridge"), "--out", str(out / "pred")],
            "provenance": ["--out", str(out / "prov.json"), "--artifact",
                           str(runs / "ridge/seed0/history.csv"), "--runs",
                           str(runs / "ridge/seed0")]}[verb]
    argv = [verb, "--config", str(CONFIG), *argv]
    expect_refusal(argv, (str(path), says), capsys, watch=[runs], absent=[out])


@pytest.mark.parametrize("verb", ["predict", "track"])
@pytest.mark.parametrize(("data", "says"), [c[1:] for c in BAD_RUN_CONFIG],
                         ids=[c[0] for c in BAD_RUN_CONFIG])
def test_a_spoilt_run_config(verb: str, data: bytes, says: str, trained: Path, tmp_path: Path,
                             monkeypatch: pytest.MonkeyPatch,
                             capsys: pytest.CaptureFixture[str]) -> None:
    path = _spoilt_copy(trained, tmp_path, "config.yaml", data)
    run, out = path.parent, tmp_path / "out"
    if verb == "track":
        pytest.importorskip("mlflow")
        monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{out / 'mlflow.db'}")
        argv = [str(run), "--experiment", "t", "--record", str(out / "rec.json")]
    else:
        argv = ["--quiet", "--runs", str(run), "--out", str(out / "pred")]
    expect_refusal([verb, "--config", str(CONFIG), *argv], (str(path), says), capsys,
                   watch=[tmp_path / "runs"], absent=[out])


@pytest.mark.parametrize(("change", "says"), [
    (lambda b: b[:len(b) // 2], "not a readable Parquet table"),
    (lambda b: b"", "not a readable Parquet table"),
], ids=["truncated", "empty"])
def test_a_spoilt_predictions_table(change: Callable[[bytes], bytes], says: str, trained: Path,
                                    tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _spoilt_copy(trained, tmp_path, "predictions.parquet", change)
    expect_refusal(["predict", "--config", str(CONFIG), "--quiet", "--runs", str(path.parent),
                    "--out", str(tmp_path / "out")], (str(path), says), capsys,
                   watch=[tmp_path / "runs"], absent=[tmp_path / "out"])


@pytest.mark.parametrize(("data", "says"), [
    (b'[{"run_dir": "x", "run_id": "1"}', "not valid JSON"),
    (b"", "empty"),
    (b'{"run_dir": "x"}', "(top level): expected a list"),
    (b'[{"run_dir": "x"}]', "field '0.run_id': missing"),
    (b'[{"run_dir": 3, "run_id": "1"}]', "field '0.run_dir': expected a string"),
], ids=["truncated", "empty", "an object", "no run id", "a number for a path"])
def test_a_spoilt_track_record(data: bytes, says: str, trained: Path, tmp_path: Path,
                               capsys: pytest.CaptureFixture[str]) -> None:
    record = tmp_path / "record.json"
    record.write_bytes(data)
    out = tmp_path / "out"
    expect_refusal(["provenance", "--config", str(CONFIG), "--out", str(out / "prov.json"),
                    "--artifact", str(trained / "history.csv"), "--runs", str(trained),
                    "--records", str(record)], (str(record), says), capsys,
                   watch=[record, trained], absent=[out])


@pytest.mark.parametrize("kind", [InputError, ConfigError, DataError, RunError])
def test_the_reader_refuses_with_the_callers_kind(kind: type[InputError]) -> None:
    said = r"^--set x=1: column 8: key 'a' given twice \(first at column 2\)$"
    with pytest.raises(kind, match=said):
        load_yaml("{a: 1, a: 2}", "--set x=1", error=kind)


# ------------------------------------------------------------- other JSON and CSV readers
@pytest.mark.parametrize(("name", "data", "says"), [
    ("Toy.csv", b"", "the file is empty"),
    ("Toy.csv", b"satellite_img_name,x\n\xff\n", "not UTF-8"),
    ("Toy.csv", b'satellite_img_name,x\n"open\n', "not a readable CSV table"),
    ("Toy_captions.json", b'[[{"caption": "a", "image": "b"}', "not valid JSON"),
    ("Toy_captions.json", b"", "empty"),
    ("Toy_captions.json", b"\xff[]", "not UTF-8"),
    ("Toy_captions.json", b'{"caption": "a"}', "(top level): expected a list, got a mapping"),
], ids=["empty csv", "csv not UTF-8", "csv open quote", "truncated captions", "empty captions",
        "captions not UTF-8", "captions an object"])
def test_a_spoilt_urbanclip_city(name: str, data: bytes, says: str, tmp_path: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    from test_urbanclip import _make_city

    city = _make_city(tmp_path)
    (city / name).write_bytes(data)
    expect_refusal(["import-urbanclip", "--config", str(CONFIG), "--city-dir", str(city),
                    "--out", str(tmp_path / "out")], (str(city / name), says), capsys,
                   watch=[city], absent=[tmp_path / "out"])


class _Counting:
    """A caching describer that counts what it is asked."""

    name, model, endpoint, cached = "fake", "m", "http://fake", True

    def __init__(self) -> None:
        self.asked = 0

    def describe(self, query: object) -> str:
        self.asked += 1
        return f"answer {self.asked}"


@pytest.mark.parametrize("data", [b'{"text": "ans', b"", b"\xff\xfe", b"[1]", b'{"text": 3}',
                                  b'{"prompt": "p"}'],
                         ids=["truncated", "empty", "not UTF-8", "a list", "text not a string",
                              "no text"])
def test_an_unreadable_cache_entry_is_asked_again(data: bytes, tmp_path: Path,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    from urbanmoe.features.llm import describe_dataset

    table = pd.DataFrame({"region_id": ["a", "b", "c"], "poi_shopping": [1, 2, 3]})
    first = _Counting()
    texts = describe_dataset(table, first, tmp_path / "cache", progress=False)
    entries = sorted((tmp_path / "cache").rglob("*.json"))
    assert first.asked == 3 and len(entries) == 3
    entries[1].write_bytes(data)
    again = _Counting()
    with caplog.at_level("WARNING"):
        redone = describe_dataset(table, again, tmp_path / "cache", progress=False)
    assert again.asked == 1 and str(entries[1]) in caplog.text
    assert json.loads(entries[1].read_text())["text"] == "answer 1"
    changed = [i for i, (old, new) in enumerate(zip(texts, redone, strict=True)) if old != new]
    assert len(changed) <= 1 and all(redone[i] == "answer 1" for i in changed)
