"""The MLflow mirror: one run per key, re-mirroring in place, concurrent writers, the CLI verb."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from urbanmoe.cli import build_parser
from urbanmoe.config import config_hash
from urbanmoe.tracking import find_run, mirror_run, tracking_uri
from urbanmoe.tracking.mlflow_mirror import RUN_TAG, _retry
from urbanmoe.tracking.run_record import read_run

mlflow = pytest.importorskip("mlflow")
from mlflow import MlflowClient  # noqa: E402
from mlflow.entities import ViewType  # noqa: E402

TASKS = ["carbon", "population"]
REPO = Path(__file__).resolve().parents[1]


def make_run(root: Path, seed: int, model: str = "urbanmoe", dataset: str = "SH",
             r2: float = 0.5, routing: bool = True, eps: float = 0.02,
             table_sha256: str = "ab" * 32, dataset_dir: str | None = None,
             epochs: int = 3) -> Path:
    """A small but valid run folder as ``urbanmoe train`` writes it (``eps`` stands for any
    ``--set`` override; ``epochs`` rows of history per model key)."""
    out = root / f"{dataset}-{model}-{seed}"
    dataset_dir = dataset_dir or f"/data/{dataset}"
    cfg = {"model": {"name": model, "eps": eps, "experts": [4, 4, 4]},
           "train": {"lr": 0.001, "loss_weights": {}, "note": "x" * 7000}}
    out.mkdir(parents=True)
    stats = {t: {"r2": r2, "rmse": 1.0 + seed, "mae": 0.5} for t in [*TASKS, "avg"]}
    keys = ["all"] if model == "urbanmoe" else TASKS
    metrics = {
        "dataset": dataset, "model": model, "seed": seed, "tasks": TASKS,
        "split": {"kind": "random", "n_train": 60, "n_val": 20, "n_test": 20},
        "log_scale": stats, "original_scale": {t: {**s, "r2": r2 - 0.1} for t, s in stats.items()},
        "efficiency": {"params": 1234, "peak_memory_mb": 56.5, "memory_kind": "cpu_rss",
                       "train_seconds": 3.25, "total_seconds": 4.5,
                       "epochs": {k: 3 for k in keys}, "best_epoch": {k: 1 for k in keys}},
        "chosen_on_validation": {}, "noise_ceiling": {"carbon": 0.9, "population": 0.8},
        "provenance": {"config_hash": config_hash(cfg), "table_sha256": table_sha256,
                       "dataset_dir": dataset_dir, "device": "cpu", "torch": "2.14.1",
                       "python": "3.11.9"},
    }
    (out / "metrics.json").write_text(json.dumps(metrics))
    rows = [{"model": k, "epoch": e, "train_loss": 1.0 / (e + 1), "val_loss": 2.0 / (e + 1)}
            for k in keys for e in range(epochs)]
    pd.DataFrame(rows).to_csv(out / "history.csv", index=False)
    (out / "config.yaml").write_text(yaml.safe_dump({"dataset": dataset_dir, "seed": seed,
                                                     **cfg}))
    pd.DataFrame({"region_id": np.arange(20), "carbon_pred": np.zeros(20)}).to_parquet(
        out / "predictions.parquet", index=False)
    if routing:
        np.savez_compressed(out / "routing.npz", region_id=np.arange(20))
    return out


def _runs(client: MlflowClient, experiment: str) -> list:
    exp = client.get_experiment_by_name(experiment)
    return client.search_runs([exp.experiment_id], run_view_type=ViewType.ALL, max_results=1000)


def _children(runs: list) -> list:
    return [r for r in runs if RUN_TAG in r.data.tags]


def _parent_key(run_dir: Path, settings: str = "default") -> str:
    """The parent key a run folder made by :func:`make_run` should get: readable labels, the
    dataset identity and the settings hash training recorded (the key recomputes it from
    config.yaml)."""
    m = json.loads((run_dir / "metrics.json").read_text())
    data_id = read_run(run_dir, settings)["keys"].data_id
    assert data_id is not None and len(data_id) == 12
    model = m.get("variant") or m["model"]
    return (f"{m['dataset']}/{model}/{m['split']['kind']}/{settings}/data-{data_id}"
            f"/cfg-{m['provenance']['config_hash']}")


def test_tracking_uri_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert tracking_uri() == "sqlite:///mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:////x/y.db")
    assert tracking_uri() == "sqlite:////x/y.db"


def test_retry_on_locked_only() -> None:
    import sqlite3

    calls = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise sqlite3.OperationalError("database is locked")
        return "ok"

    assert _retry(flaky, delay=0.001) == "ok" and len(calls) == 3
    with pytest.raises(ValueError):
        _retry(lambda: (_ for _ in ()).throw(ValueError("other")), delay=0.001)


def test_two_seeds_one_parent(tmp_path: Path, uri: str) -> None:
    dirs = [make_run(tmp_path / "runs", s) for s in (0, 1)]
    ids = [mirror_run(d, "table2") for d in dirs]
    client = MlflowClient(uri)
    runs = _runs(client, "table2")
    assert len(runs) == 3
    parents = [r for r in runs if RUN_TAG not in r.data.tags]
    assert len(parents) == 1
    assert parents[0].data.tags["urbanmoe.parent_key"] == _parent_key(dirs[0])
    assert _parent_key(dirs[0]) == _parent_key(dirs[1])
    children = {r.info.run_id: r for r in _children(runs)}
    assert set(children) == set(ids)
    child = children[ids[1]]
    tags, params, metrics = child.data.tags, child.data.params, child.data.metrics
    assert tags["mlflow.parentRunId"] == parents[0].info.run_id
    assert tags[RUN_TAG] == f"{_parent_key(dirs[1])}/seed-1"
    cfg_hash = json.loads((dirs[1] / "metrics.json").read_text())["provenance"]["config_hash"]
    assert tags["urbanmoe.config_hash"] == cfg_hash == tags["urbanmoe.settings_id"]
    assert tags["urbanmoe.table_sha256"] == "ab" * 32
    assert tags["urbanmoe.dataset"] == "SH" and tags["urbanmoe.seed"] == "1"
    assert child.info.run_name == "seed 1" and child.info.status == "FINISHED"
    assert tags["urbanmoe.device"] == "cpu"
    assert tags["urbanmoe.run_dir"] == str(dirs[1].resolve())
    assert tags["urbanmoe.git_dirty"] in ("true", "false", "unknown")
    commit = tags["urbanmoe.git_commit"]
    assert commit == "unknown" or len(commit) == 40
    assert params["model.eps"] == "0.02" and params["model.experts"] == "[4, 4, 4]"
    assert params["seed"] == "1" and params["train.loss_weights"] == "{}"
    assert len(params["train.note"]) == 6000
    assert metrics["carbon_r2"] == 0.5 and metrics["orig_avg_r2"] == pytest.approx(0.4)
    assert metrics["avg_rmse"] == 2.0 and metrics["params"] == 1234
    assert metrics["peak_memory_mb"] == 56.5 and metrics["train_seconds"] == 3.25
    hist = client.get_metric_history(ids[1], "val_loss")
    assert sorted((m.step, m.value) for m in hist) == [(0, 2.0), (1, 1.0),
                                                       (2, pytest.approx(2 / 3))]
    arts = {a.path for a in client.list_artifacts(ids[1])}
    assert arts == {"metrics.json", "predictions.parquet", "routing.npz"}
    assert (tmp_path / "mlartifacts").is_dir()


def test_st_history_prefixed_and_no_routing(tmp_path: Path, uri: str) -> None:
    run_id = mirror_run(make_run(tmp_path, 0, model="urbanmoe_st", routing=False), "t",
                        settings="tab")
    client = MlflowClient(uri)
    run = client.get_run(run_id)
    assert "carbon_train_loss" in run.data.metrics and "train_loss" not in run.data.metrics
    assert len(client.get_metric_history(run_id, "population_val_loss")) == 3
    assert {a.path for a in client.list_artifacts(run_id)} == {"metrics.json",
                                                                "predictions.parquet"}
    run_dir = tmp_path / "SH-urbanmoe_st-0"
    assert run.data.tags[RUN_TAG] == f"{_parent_key(run_dir, 'tab')}/seed-0"
    assert run.data.tags[RUN_TAG].startswith("SH/urbanmoe_st/random/tab/data-")


def test_remirror_updates_without_duplicates(tmp_path: Path, uri: str) -> None:
    run = make_run(tmp_path / "a", 0, r2=0.5)
    mirror_run(run, "table2")
    mirror_run(make_run(tmp_path / "a", 1), "table2")
    shutil.rmtree(run)
    make_run(tmp_path / "a", 0, r2=0.7)  # a forced rerun rewrites the folder
    new_id = mirror_run(run, "table2")
    client = MlflowClient(uri)
    runs = _runs(client, "table2")
    keys = [r.data.tags.get(RUN_TAG, "parent") for r in runs]
    key = _parent_key(run)
    assert sorted(keys) == [f"{key}/seed-0", f"{key}/seed-1", "parent"]
    assert client.get_run(new_id).data.metrics["carbon_r2"] == 0.7
    assert find_run(run, "table2") == new_id
    assert len(client.get_metric_history(new_id, "train_loss")) == 3
    artifact_dirs = [p for p in (tmp_path / "mlartifacts").iterdir() if p.is_dir()]
    assert len(artifact_dirs) == 2  # the replaced run's artifacts are gone


def _env(uri: str) -> dict[str, str]:
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO / "src"),
                                                      env.get("PYTHONPATH")]))
    return env


def test_eight_concurrent_writers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    uri = f"sqlite:///{tmp_path}/fresh/mlflow.db"  # fresh: the writers race to create it too
    dirs = [make_run(tmp_path / "runs", s, dataset=["SH", "BJ"][s % 2]) for s in range(8)]
    procs = [subprocess.Popen([sys.executable, "-m", "urbanmoe.cli", "track", str(d),
                               "--experiment", "table2"], env=_env(uri), cwd=tmp_path,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for d in dirs]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0] * 8, [err for _, err in outs]
    assert not any("locked" in err for _, err in outs)
    runs = _runs(MlflowClient(uri), "table2")
    keys = sorted(r.data.tags[RUN_TAG] for r in _children(runs))
    assert keys == sorted(f"{_parent_key(d)}/seed-{s}" for s, d in enumerate(dirs))
    assert all(r.info.status == "FINISHED" for r in runs)
    assert len(runs) == 8 + 2  # one parent per dataset
    assert len(MlflowClient(uri).search_experiments()) == 2  # Default + table2


def test_cli_track(tmp_path: Path, uri: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert "track" in build_parser().format_help()
    with pytest.raises(SystemExit):
        build_parser().parse_args(["track", "--help"])
    assert "--experiment" in capsys.readouterr().out
    from urbanmoe.cli import main

    dirs = [make_run(tmp_path / "runs", s) for s in (0, 1)]
    assert main(["track", *map(str, dirs), "--experiment", "fig3", "--settings", "abl"]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 2
    runs = _runs(MlflowClient(uri), "fig3")
    assert sorted(r.data.tags.get(RUN_TAG, "p") for r in runs) == [
        f"{_parent_key(dirs[0], 'abl')}/seed-0", f"{_parent_key(dirs[0], 'abl')}/seed-1", "p"]
    assert main(["track", str(tmp_path / "nothing"), "--experiment", "fig3"]) == 2
