"""MLflow run keys: different runs never share one, the same folder is replaced in place, and a
``track`` killed midway never leaves a half-logged run that a lookup would read as complete."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import tabular_city
from test_tracking import REPO, make_run

from urbanmoe.cli import main
from urbanmoe.tracking import find_run, mirror_run
from urbanmoe.tracking import mlflow_mirror as mirror_mod
from urbanmoe.tracking.mlflow_mirror import PARENT_TAG, RUN_TAG
from urbanmoe.tracking.run_record import read_run

mlflow = pytest.importorskip("mlflow")
from mlflow import MlflowClient  # noqa: E402
from mlflow.entities import ViewType  # noqa: E402

ARTIFACTS = {"metrics.json", "predictions.parquet", "routing.npz"}


def _all_runs(client: MlflowClient, experiment: str) -> list:
    exp = client.get_experiment_by_name(experiment)
    return client.search_runs([exp.experiment_id], run_view_type=ViewType.ALL, max_results=1000)


def _with_key(client: MlflowClient, experiment: str, key: str) -> list:
    return [r for r in _all_runs(client, experiment) if r.data.tags.get(RUN_TAG) == key]


def _assert_complete(client: MlflowClient, run_id: str, run_dir: Path, epochs: int = 3) -> None:
    """The run holds everything of its folder: finished, metrics, history, params, artifacts."""
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.info.lifecycle_stage == "active"
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert run.data.metrics["carbon_r2"] == metrics["log_scale"]["carbon"]["r2"]
    assert len(client.get_metric_history(run_id, "val_loss")) == epochs
    assert run.data.params["model.eps"] == "0.02" and run.data.params["seed"] == "0"
    assert {a.path for a in client.list_artifacts(run_id)} == ARTIFACTS
    assert run.data.tags["urbanmoe.run_dir"] == str(run_dir.resolve())


# --- different runs never share a key -------------------------------------------------------

OTHER = {  # how the second run folder differs from the first (seed 0, SH, eps 0.02)
    "same name, other table": {"table_sha256": "cd" * 32},
    "same name, other folder": {"dataset_dir": "/elsewhere/SH"},
    "other --set value, no variant": {"eps": 0.05},
    "other seed": {"seed": 1},
}


@pytest.mark.parametrize("change", list(OTHER))
def test_different_runs_never_collide(tmp_path: Path, uri: str, change: str) -> None:
    kw = dict(OTHER[change])
    seed = kw.pop("seed", 0)
    first = make_run(tmp_path / "a", 0, r2=0.5)
    second = make_run(tmp_path / "b", seed, r2=0.6, **kw)
    ids = [mirror_run(first, "table2"), mirror_run(second, "table2")]
    client = MlflowClient(uri)
    runs = _all_runs(client, "table2")
    children = [r for r in runs if RUN_TAG in r.data.tags]
    parents = [r for r in runs if PARENT_TAG in r.data.tags]
    assert sorted(r.info.run_id for r in children) == sorted(ids)  # the first id survives
    assert len({r.data.tags[RUN_TAG] for r in children}) == 2
    assert len(parents) == (1 if change == "other seed" else 2)
    assert all(r.info.status == "FINISHED" and r.info.lifecycle_stage == "active" for r in runs)
    assert [client.get_run(i).data.metrics["carbon_r2"] for i in ids] == [0.5, 0.6]
    assert [find_run(first, "table2"), find_run(second, "table2")] == ids
    for child in children:  # readable labels stay as they were
        assert child.data.tags["urbanmoe.dataset"] == "SH"
        assert child.data.tags["urbanmoe.model"] == "urbanmoe"


def test_real_runs_same_name_and_set_overrides(tmp_path: Path, uri: str,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """`urbanmoe train` run folders: two cities both named TAB, and a `--set` override without
    `--variant`, all seed 0: three keys, three parents; tracking all again replaces each."""
    cities = [tabular_city(tmp_path / part / "TAB", n=60, seed=s)
              for part, s in (("one", 0), ("two", 1))]
    runs = [tmp_path / "runs" / name for name in ("one", "two", "one-set")]
    common = ["--seed", "0", "--set", "model.name=mean",
              "--set", f"features.cache_dir={tmp_path / 'cache'}"]
    for city, out, extra in zip([*cities, cities[0]], runs, [[], [], ["train.lr=0.01"]],
                                strict=True):
        sets = [a for x in extra for a in ("--set", x)]
        assert main(["train", "--dataset", str(city), "--out", str(out), *common, *sets]) == 0
    names = {json.loads((r / "metrics.json").read_text())["dataset"] for r in runs}
    assert names == {"TAB"}
    capsys.readouterr()
    assert main(["track", *map(str, runs), "--experiment", "table2"]) == 0
    printed = [line.rsplit(" ", 1)[1] for line in capsys.readouterr().out.splitlines()]
    client = MlflowClient(uri)
    first = _all_runs(client, "table2")
    assert len(first) == 6 and len({r.data.tags[PARENT_TAG] for r in first
                                    if PARENT_TAG in r.data.tags}) == 3
    assert sorted(r.info.run_id for r in first if RUN_TAG in r.data.tags) == sorted(printed)
    assert main(["track", *map(str, runs), "--experiment", "table2"]) == 0
    again = [line.rsplit(" ", 1)[1] for line in capsys.readouterr().out.splitlines()]
    second = _all_runs(client, "table2")
    assert len(second) == 6 and not set(again) & set(printed)
    assert sorted(r.info.run_id for r in second if RUN_TAG in r.data.tags) == sorted(again)
    assert [find_run(r, "table2") for r in runs] == again


def test_malformed_metrics_is_one_clear_line(tmp_path: Path, uri: str,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    run = make_run(tmp_path, 0)
    metrics = json.loads((run / "metrics.json").read_text())
    for bad, field in ((dict(metrics, seed="x"), "'seed'"),
                       ({k: v for k, v in metrics.items() if k != "dataset"}, "'dataset'")):
        (run / "metrics.json").write_text(json.dumps(bad))
        assert main(["track", str(run), "--experiment", "t"]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and str(run / "metrics.json") in err and field in err


# --- replacing, and what an interrupted mirror leaves ---------------------------------------


def test_unfinished_copy_is_ignored_then_removed(tmp_path: Path, uri: str) -> None:
    run = make_run(tmp_path, 0)
    old = mirror_run(run, "table2")
    key = read_run(run)["keys"].run
    client = MlflowClient(uri)
    exp_id = client.get_experiment_by_name("table2").experiment_id
    half = client.create_run(exp_id, tags={RUN_TAG: key}).info.run_id  # a killed mirror's
    client.log_metric(half, "carbon_r2", 0.0)
    assert find_run(run, "table2") == old
    new = mirror_run(run, "table2")
    assert [r.info.run_id for r in _with_key(client, "table2", key)] == [new]
    _assert_complete(client, new, run)
    assert find_run(run, "table2") == new


def test_crash_between_finish_and_delete(tmp_path: Path, uri: str,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    run = make_run(tmp_path, 0)
    old = mirror_run(run, "table2")
    key = read_run(run)["keys"].run

    def die(client: object, stale: object) -> None:
        raise SystemExit("killed")

    with monkeypatch.context() as mp:
        mp.setattr(mirror_mod, "_delete", die)
        with pytest.raises(SystemExit):
            mirror_run(run, "table2")
    client = MlflowClient(uri)
    both = _with_key(client, "table2", key)
    assert len(both) == 2 and {r.info.status for r in both} == {"FINISHED"}
    found = find_run(run, "table2")
    assert found != old and found in {r.info.run_id for r in both}
    _assert_complete(client, found, run)
    final = mirror_run(run, "table2")
    assert [r.info.run_id for r in _with_key(client, "table2", key)] == [final]
    assert {p.name for p in (tmp_path / "mlartifacts").iterdir()} == {final}


def test_earlier_key_format_is_replaced(tmp_path: Path, uri: str) -> None:
    """Runs mirrored under the earlier key (dataset name/model/split/label/seed) from the same
    folder are replaced; their parent goes with its last child."""
    runs = [make_run(tmp_path / "runs", s) for s in (0, 1)]
    client = MlflowClient(uri)
    exp_id = client.create_experiment("table2")
    legacy = "SH/urbanmoe/random/default"
    parent = client.create_run(exp_id, tags={PARENT_TAG: legacy}).info.run_id
    olds = [client.create_run(exp_id, tags={RUN_TAG: f"{legacy}/{s}", "mlflow.parentRunId": parent,
                                            "urbanmoe.run_dir": str(r.resolve())}).info.run_id
            for s, r in enumerate(runs)]
    other = client.create_run(exp_id, tags={RUN_TAG: f"{legacy}/0", "mlflow.parentRunId": parent,
                                            "urbanmoe.run_dir": "/another/folder"}).info.run_id
    mirror_run(runs[0], "table2")
    left = {r.info.run_id for r in _all_runs(client, "table2")}
    assert olds[0] not in left and {olds[1], other, parent} <= left
    client.delete_run(other)
    mirror_run(runs[1], "table2")
    left = {r.info.run_id for r in _all_runs(client, "table2")}
    assert olds[1] not in left and parent not in left


# --- a track killed at the worst moments ----------------------------------------------------

ROWS = ("SELECT r.run_uuid, r.status, r.lifecycle_stage FROM runs r JOIN tags t "
        "ON t.run_uuid = r.run_uuid WHERE t.key = ? AND t.value = ?")
Rows = list[tuple[str, str, str]]


def _rows(con: sqlite3.Connection, key: str) -> Rows:
    return con.execute(ROWS, (RUN_TAG, key)).fetchall()


def _mirroring(lock: Path) -> bool:
    """Whether a writer holds the mirror's file lock (it is past its imports, mirroring)."""
    with open(lock, "a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(fh, fcntl.LOCK_UN)
        return False


def _kill_when(proc: subprocess.Popen, db: Path, key: str,
               moment: Callable[[Rows], bool]) -> Rows | None:
    """SIGKILL ``proc`` as soon as the store's runs of ``key`` show ``moment``; the check and
    the kill happen under an exclusive lock on the database, so the writer cannot move on in
    between. The rows seen at the kill, or None when ``proc`` ended first."""
    con = sqlite3.connect(db, timeout=60, isolation_level=None)
    lock = db.with_name(db.name + ".lock")
    try:
        while proc.poll() is None:
            if not _mirroring(lock):  # still starting: leave it the CPU
                time.sleep(0.01)
                continue
            try:
                if not moment(_rows(con, key)):
                    continue
                con.execute("BEGIN EXCLUSIVE")
            except sqlite3.OperationalError:  # busy: the writer is committing
                continue
            try:
                rows = _rows(con, key)
                if moment(rows):
                    proc.send_signal(signal.SIGKILL)
                    proc.wait()
                    return rows
            finally:
                con.execute("ROLLBACK")
        return None
    finally:
        con.close()


def test_track_killed_midway(tmp_path: Path, uri: str) -> None:
    epochs = 2000  # a history long enough that logging it takes many transactions
    run = make_run(tmp_path / "runs", 0, epochs=epochs)
    old = mirror_run(run, "table2")
    key = read_run(run)["keys"].run
    db = tmp_path / "mlflow.db"
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri,
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO / "src"),
                                                       os.environ.get("PYTHONPATH")]))}
    client = MlflowClient(uri)
    complete = {old}  # ids of runs known to hold everything

    def moment(name: str, before: dict[str, tuple[str, str]]) -> Callable[[Rows], bool]:
        """When to kill, from the rows of the key now and when the attempt started."""
        def new(rows: Rows, status: str) -> bool:
            return any(r[0] not in before and r[1] == status for r in rows)

        def was_active(rows: Rows, stage: str) -> bool:
            return any(before.get(r[0], ("", ""))[1] == "active" and r[2] == stage
                       and r[0] in complete for r in rows)

        return {"logging the new copy": lambda rows: new(rows, "RUNNING"),
                "new copy finished, old one not deleted yet":
                    lambda rows: new(rows, "FINISHED") and was_active(rows, "active"),
                "old copy soft-deleted": lambda rows: was_active(rows, "deleted")}[name]

    names = ["logging the new copy", "new copy finished, old one not deleted yet",
             "old copy soft-deleted"]
    hit = []
    for name in names:
        with contextlib.closing(sqlite3.connect(db, timeout=60)) as con:
            before = {r[0]: (r[1], r[2]) for r in _rows(con, key)}
        with open(tmp_path / "track.err", "w") as err:
            proc = subprocess.Popen([sys.executable, "-m", "urbanmoe.cli", "track", str(run),
                                     "--experiment", "table2"], env=env, cwd=tmp_path,
                                    stdout=subprocess.DEVNULL, stderr=err)
            seen = _kill_when(proc, db, key, moment(name, before))
        if seen is None:  # the writer finished first: a plain, successful track
            assert proc.returncode == 0, (tmp_path / "track.err").read_text()
        else:
            hit.append(name)
        found = find_run(run, "table2")
        assert found is not None  # a complete copy was there before, so one still is
        _assert_complete(client, found, run, epochs)
        if name == "logging the new copy" and seen is not None:
            assert found in complete  # the new copy did not finish: the old one is read
        for r in _with_key(client, "table2", key):  # whatever a lookup could read is complete
            if r.info.status == "FINISHED" and r.info.lifecycle_stage == "active":
                _assert_complete(client, r.info.run_id, run, epochs)
                complete.add(r.info.run_id)
    assert "logging the new copy" in hit, hit
    assert main(["track", str(run), "--experiment", "table2"]) == 0
    left = _with_key(client, "table2", key)
    assert len(left) == 1 and left[0].info.run_id == find_run(run, "table2")
    _assert_complete(client, left[0].info.run_id, run, epochs)
    assert {p.name for p in (tmp_path / "mlartifacts").iterdir()} == {left[0].info.run_id}
    parents = [r for r in _all_runs(client, "table2") if PARENT_TAG in r.data.tags]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
