"""Evaluation protocols as data (``protocol.name``, ``evaluation/protocols.py``): HAFusion's
folds, raw scale, clip at 0, pooled metrics and its test-fold epoch selection, recorded in the
run folder; the project's protocol beside it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from refusal import CONFIG, quick_sets, small_city
from test_hafusion import fake_city

from urbanmoe.cli import main
from urbanmoe.data.sources.hafusion import TARGETS, import_hafusion_city
from urbanmoe.data.table import load_dataset
from urbanmoe.evaluation import protocols
from urbanmoe.training.registry import Representation

N = 60
THEIRS = {"name": "hafusion", "folds": 10, "shuffle": False, "random_state": 2024,
          "ridge_alpha": 1.0, "clip_at_zero": True, "drop_zero": [], "select_epoch": "final"}


@pytest.fixture(scope="module")
def cities(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("protocols")
    out = {}
    for suffix in ("NY", "Chi"):
        raw = fake_city(root / f"data_{suffix}", N)
        check_in = np.load(raw / TARGETS["check_in"][0])
        check_in[[3, 7]] = 0  # zero check-ins, which their Chicago evaluation drops
        np.save(raw / TARGETS["check_in"][0], check_in)
        out[suffix] = import_hafusion_city(raw, root / suffix)
    return out


def _train(city: Path, out: Path, model: str, *sets: str) -> dict:
    code = main(["train", "--dataset", str(city), "--out", str(out), "--seed", "0", "--config",
                 str(CONFIG), *quick_sets(out.parent), "--quiet", "--set", f"model.name={model}",
                 "--set", "protocol.name=hafusion", *[a for s in sets for a in ("--set", s)]])
    assert code == 0
    return json.loads((out / "metrics.json").read_text())


def test_new_york_folds_are_contiguous_rows_and_chicago_shuffled(cities: dict[str, Path]) -> None:
    ny = load_dataset(cities["NY"])
    p = protocols.settings({"protocol": {"name": "hafusion", "hafusion": THEIRS}}, ny)
    tests = [te for _, te in protocols.kfold_parts(N, p)]
    assert [list(t) for t in tests] == [list(range(k * 6, k * 6 + 6)) for k in range(10)]
    chi = load_dataset(cities["Chi"])
    q = protocols.settings({"protocol": {"name": "hafusion", "hafusion": THEIRS}}, chi)
    assert q["folds"] == 25 and q["shuffle"] and q["drop_zero"] == ["check_in"]
    assert "folds" in q["stated_by_dataset"]  # the dataset's published protocol wins
    assert [list(t) for _, t in protocols.kfold_parts(N, q)] != [
        list(range(k, k + 1)) for k in range(25)]


def test_a_representation_run_is_scored_by_their_probe(cities: dict[str, Path],
                                                       tmp_path: Path) -> None:
    """End to end: ridge (its own predictions) under their protocol: every labelled region is
    predicted once, none below 0, zero check-ins of Chicago left out, metrics pooled and
    computed from exactly those predictions; the protocol is in metrics.json."""
    m = _train(cities["Chi"], tmp_path / "ridge", "ridge")
    assert m["protocol"]["name"] == "hafusion" and m["protocol"]["folds"] == 25
    assert "folds" not in m and len(m["per_fold"]) == 25
    pred = pd.read_parquet(tmp_path / "ridge" / "predictions.parquet")
    assert len(pred) == N and (pred.filter(like="_pred").drop(
        columns=pred.filter(like="_pred_log").columns) >= 0).all().all()
    dropped = pred.set_index("region_id").loc[["r003", "r007"], "check_in_true"]
    assert dropped.isna().all()  # left out, not scored
    y, p = pred["crime_true"].to_numpy(), pred["crime_pred"].to_numpy()
    r2 = 1 - np.sum((y - p) ** 2) / np.sum((y - y.mean()) ** 2)
    assert m["original_scale"]["crime"]["r2"] == pytest.approx(r2)
    config = yaml.safe_load((tmp_path / "ridge" / "config.yaml").read_text())
    assert config["protocol"]["name"] == "hafusion"


def test_the_test_fold_selection_picks_a_snapshot_and_says_so(cities: dict[str, Path]) -> None:
    """A checkpoint that holds the labels themselves wins under ``test_folds`` (and the notes
    say it is a selection on test data); ``final`` never looks at it."""
    ds = load_dataset(cities["NY"])
    y = ds.targets()
    rng = np.random.default_rng(0)
    noise = rng.normal(size=(N, 8)).astype(np.float32)
    rep = Representation(noise, 0, snapshots={30: noise, 60: np.log1p(y).astype(np.float32)})
    for select, epoch in (("test_folds", 60), ("final", None)):
        p = {**THEIRS, "select_epoch": select}
        pred, chosen, notes = protocols.probe_representation(rep, y, ds.tasks, p)
        assert set(chosen.values()) == {epoch}
        assert (protocols.TEST_SELECTION_NOTE in notes) == (select == "test_folds")
        assert np.isfinite(pred).all() and (pred >= 0).all()


def test_an_unknown_drop_zero_target_is_one_line(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    city = small_city(tmp_path / "city")  # states no protocol: the config's settings hold
    code = main(["train", "--dataset", str(city), "--out", str(tmp_path / "r"),
                 "--seed", "0", "--config", str(CONFIG), *quick_sets(tmp_path), "--quiet",
                 "--set", "protocol.name=hafusion", "--set", "protocol.hafusion.drop_zero=[gdp]",
                 "--set", "model.name=ridge"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "'gdp'" in err[0] and "drop_zero" in err[0]
    assert not (tmp_path / "r").exists()


def test_the_project_protocol_is_recorded_with_its_folds(cities: dict[str, Path],
                                                         tmp_path: Path) -> None:
    out = tmp_path / "p"
    code = main(["train", "--dataset", str(cities["NY"]), "--out", str(out), "--seed", "0",
                 "--config", str(CONFIG), *quick_sets(tmp_path), "--quiet", "--set",
                 "model.name=ridge", "--set", "split.kind=kfold", "--set", "split.folds=3"])
    assert code == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["protocol"] == {"name": "project", "split": "kfold", "folds": 3,
                             "choices": "on validation rows of the training part"}
    assert all("original_scale" in f for f in m["folds"])


@pytest.mark.parametrize("stated,says", [
    ({"folds": "ten"}, "source.protocols.hafusion.folds"),
    ({"shuffle": 1}, "source.protocols.hafusion.shuffle"),
    ({"fold": 5}, "unknown key 'fold'"),
], ids=["folds a word", "shuffle a number", "unknown key"])
def test_a_bad_stated_protocol_is_one_line(stated: dict, says: str, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    city = small_city(tmp_path / "city")
    meta = yaml.safe_load((city / "dataset.yaml").read_text())
    meta["source"] = {"protocols": {"hafusion": stated}}
    (city / "dataset.yaml").write_text(yaml.safe_dump(meta))
    code = main(["train", "--dataset", str(city), "--out", str(tmp_path / "r"), "--seed", "0",
                 "--config", str(CONFIG), *quick_sets(tmp_path), "--quiet", "--set",
                 "protocol.name=hafusion", "--set", "model.name=ridge"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and says in err[0] and "dataset.yaml" in err[0], err
    assert not (tmp_path / "r").exists()
