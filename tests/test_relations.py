"""Region x region relations (``dataset.yaml: relations``, ``data/relations.py``): each bad
matrix or edge table is one line naming the file and the value, exit 2, nothing written; a good
one reaches the models as a row-profile branch (``features/relations.py``)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from refusal import CONFIG, Case, N, edit_meta, expect_refusal, quick_sets, small_city

from urbanmoe.cli import main
from urbanmoe.data.table import load_dataset
from urbanmoe.features.plan import plan_inputs
from urbanmoe.features.relations import relation_profile


def _flows(n: int = N, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).poisson(3.0, (n, n)).astype(np.float64)


def _with_matrix(matrix: np.ndarray, name: str = "flows.npy",
                 entry: object = None) -> Callable[[Path], None]:
    def spoil(city: Path) -> None:
        np.save(city / name, matrix)
        edit_meta(city, relations={"mobility": entry if entry is not None else name})
    return spoil


def _with_edges(rows: list[tuple[str, str, object]], **entry: str) -> Callable[[Path], None]:
    def spoil(city: Path) -> None:
        cols = [entry.get("source", "source"), entry.get("target", "target"),
                entry.get("weight", "weight")]
        pd.DataFrame(rows, columns=cols).to_csv(city / "trips.csv", index=False)
        edit_meta(city, relations={"trips": {"path": "trips.csv", **entry}})
    return spoil


def _junk(city: Path) -> None:
    (city / "flows.npy").write_bytes(b"junk")
    edit_meta(city, relations={"m": "flows.npy"})


def _no_source(city: Path) -> None:
    pd.DataFrame({"a": ["r000"], "target": ["r001"]}).to_csv(city / "t.csv", index=False)
    edit_meta(city, relations={"t": "t.csv"})


def _bad(value: float, at: tuple[int, int] = (3, 5)) -> np.ndarray:
    m = _flows()
    m[at] = value
    return m


CASES = [
    Case("a matrix of the wrong shape", _with_matrix(_flows(N - 1)), ("flows.npy", "shape",
                                                                      f"({N}, {N})")),
    Case("a matrix not square", _with_matrix(np.ones((N, 3))), ("flows.npy", "(60, 3)")),
    Case("a matrix with NaN", _with_matrix(_bad(np.nan)), ("flows.npy", "nan", "row 3",
                                                           "column 5")),
    Case("a matrix with a negative weight", _with_matrix(_bad(-2.0)), ("flows.npy", "-2.0")),
    Case("a matrix with inf", _with_matrix(_bad(np.inf, (0, 1))), ("flows.npy", "inf")),
    Case("a matrix of strings", _with_matrix(np.array([["a"] * N] * N)), ("flows.npy", "<U1")),
    Case("a file that is not an array", _junk, ("flows.npy", "cannot be read")),
    Case("a missing matrix", lambda c: edit_meta(c, relations={"m": "absent.npy"}),
         ("absent.npy", "not found")),
    Case("a path outside the folder", lambda c: edit_meta(c, relations={"m": "../flows.npy"}),
         ("relations.m", "outside")),
    Case("an unknown suffix", lambda c: edit_meta(c, relations={"m": "flows.txt"}),
         ("relations.m.path", ".npy")),
    Case("an unknown key", lambda c: edit_meta(c, relations={"m": {"path": "a.npy", "x": 1}}),
         ("relations.m", "'x'")),
    Case("a name taken by a feature group",
         lambda c: edit_meta(c, relations={"pois": "flows.npy"}), ("relations.pois",)),
    Case("profile not a boolean",
         lambda c: edit_meta(c, relations={"m": {"path": "a.npy", "profile": "yes"}}),
         ("dataset.yaml", "profile")),
    Case("an edge to an unknown region", _with_edges([("r000", "r001", 2), ("r000", "zz", 1)]),
         ("trips.csv", "'target'", "'zz'")),
    Case("a negative edge weight", _with_edges([("r000", "r001", -1)]),
         ("trips.csv", "'weight'", "-1")),
    Case("a non-numeric edge weight", _with_edges([("r000", "r001", "many")]),
         ("trips.csv", "'weight'", "'many'")),
    Case("a pair listed twice", _with_edges([("r000", "r001", 1), ("r000", "r001", 2)]),
         ("trips.csv", "'r000' -> 'r001'", "more than once")),
    Case("an edge table without its source column", _no_source, ("t.csv", "'source'",
                                                                  "missing")),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_a_bad_relation_is_one_line(case: Case, tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    city = small_city(tmp_path / "city")
    case.spoil(city)
    out = tmp_path / "run"
    argv = ["train", "--dataset", str(city), "--out", str(out), "--seed", "0",
            "--config", str(CONFIG), *quick_sets(tmp_path), "--quiet"]
    expect_refusal(argv, case.says, capsys, watch=[city], absent=[out])


def test_an_edge_table_equals_its_matrix(tmp_path: Path) -> None:
    """The two forms of one relation load to the same matrix; unlisted pairs weigh 0, and
    custom column names are read."""
    city = small_city(tmp_path / "city")
    m = _flows()
    m[m < 4] = 0
    i, j = np.nonzero(m)
    ids = np.array([f"r{k:03d}" for k in range(N)])
    pd.DataFrame({"from": ids[i], "to": ids[j], "n": m[i, j]}).to_csv(city / "t.csv",
                                                                      index=False)
    np.save(city / "m.npy", m)
    edit_meta(city, relations={"dense": "m.npy", "edges": {"path": "t.csv", "source": "from",
                                                           "target": "to", "weight": "n"}})
    ds = load_dataset(city)
    np.testing.assert_array_equal(ds.relation("dense"), m)
    np.testing.assert_array_equal(ds.relation("edges"), m)


def test_profiles_are_branches_unless_switched_off(tmp_path: Path) -> None:
    city = small_city(tmp_path / "city")
    np.save(city / "m.npy", _flows())
    sym = _flows(seed=1)
    np.save(city / "s.npy", sym + sym.T)
    edit_meta(city, relations={"mobility": "m.npy", "similar": "s.npy",
                               "quiet": {"path": "s.npy", "profile": False}})
    ds = load_dataset(city)
    m = {"branches": "auto", "context": "auto", "context_max_columns": 4}
    branches = plan_inputs(ds, m).branches
    assert "mobility" in branches and "similar" in branches and "quiet" not in branches
    settings = {"max_dim": 512, "seed": 0}
    assert relation_profile(ds, "mobility", settings).shape == (N, 2 * N)  # out and in
    assert relation_profile(ds, "similar", settings).shape == (N, N)  # symmetric: rows
    np.testing.assert_allclose(relation_profile(ds, "similar", settings),
                               np.log1p(sym + sym.T), rtol=1e-6)
    small = relation_profile(ds, "mobility", {"max_dim": 16, "seed": 0})
    assert small.shape == (N, 16)
    np.testing.assert_array_equal(small, relation_profile(ds, "mobility",
                                                          {"max_dim": 16, "seed": 0}))


def test_a_city_with_a_relation_trains_on_its_profile(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """A user's own city with a mobility matrix: ridge takes the profile as inputs, and it
    changes the predictions (so it is really read)."""
    city = small_city(tmp_path / "city")
    preds = {}
    for name, rel in (("without", None), ("with", {"mobility": "m.npy"})):
        if rel:
            np.save(city / "m.npy", _flows())
            edit_meta(city, relations=rel)
        out = tmp_path / name
        code = main(["train", "--dataset", str(city), "--out", str(out), "--seed", "0",
                     "--config", str(CONFIG), *quick_sets(tmp_path), "--quiet",
                     "--set", "model.name=ridge"])
        assert code == 0, capsys.readouterr().err
        preds[name] = pd.read_parquet(out / "predictions.parquet")["carbon_pred"].to_numpy()
    assert not np.allclose(preds["with"], preds["without"])
