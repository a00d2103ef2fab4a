"""Mirror run folders into MLflow for browsing; the run folders stay the source of truth.

One experiment per paper artifact (``table2``, ...), one parent run per (dataset, model,
settings label) and one nested child run per seed. Key tags (``urbanmoe.parent_key``,
``urbanmoe.run_key``) make mirroring again replace a child run, never add one. Writers serialise
on an ``fcntl`` lock file beside the sqlite database and retry when it reports itself locked.
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import hashlib
import json
import logging
import os
import random
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import unquote, urlparse

import yaml

DEFAULT_URI = "sqlite:///mlflow.db"
ARTIFACT_DIR = "mlartifacts"
RUN_TAG = "urbanmoe.run_key"
PARENT_TAG = "urbanmoe.parent_key"
MAX_KEY, MAX_PARAM, MAX_TAG = 250, 6000, 8000  # mlflow.utils.validation limits
BATCH = 100  # MAX_PARAMS_TAGS_PER_BATCH; metrics go by up to 1000
_UNSAFE = re.compile(r"[^\w\-. /]")
T = TypeVar("T")


def tracking_uri() -> str:
    """``MLFLOW_TRACKING_URI`` when set, else ``sqlite:///mlflow.db`` (relative to the cwd)."""
    return os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_URI


_env_uri = tracking_uri  # mirror_run's argument shadows the name


def _sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI, else None."""
    if not uri.startswith("sqlite:///"):
        return None
    path = uri[len("sqlite:///"):].split("?", 1)[0]
    return Path(path) if path and path != ":memory:" else None


def _lock_path(uri: str) -> Path:
    db = _sqlite_path(uri)
    if db is not None:
        return db.with_name(db.name + ".lock")
    digest = hashlib.sha1(uri.encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"urbanmoe-mlflow-{digest}.lock"


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created on demand) for the block."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _retry(fn: Callable[[], T], attempts: int = 8, delay: float = 0.2) -> T:
    """Call ``fn``; on a "database is locked" error retry with jittered exponential backoff."""
    for _ in range(attempts - 1):
        try:
            return fn()
        except Exception as exc:
            if "locked" not in f"{type(exc).__name__} {exc}".lower():
                raise
            time.sleep(delay * (1 + random.random()))
            delay = min(delay * 2, 5.0)
    return fn()


def _git_state() -> tuple[str, str]:
    """(commit, dirty flag) of the git checkout around the cwd; "unknown" outside one."""
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0"}  # never take the index lock of others
    try:
        def git(*args: str) -> str:
            return subprocess.run(["git", *args], capture_output=True, text=True, check=True,
                                  timeout=30, env=env).stdout.strip()
        commit = git("rev-parse", "HEAD")
        dirty = git("status", "--porcelain")
    except (OSError, subprocess.SubprocessError):
        return "unknown", "unknown"
    return commit, "true" if dirty else "false"


def _flatten(obj: Any, prefix: str = "") -> Iterator[tuple[str, str]]:
    """Dotted keys and stringified leaves of a nested mapping."""
    if isinstance(obj, dict) and obj:
        for key, value in obj.items():
            yield from _flatten(value, f"{prefix}{key}.")
    elif prefix:
        yield prefix[:-1], obj if isinstance(obj, str) else json.dumps(obj, default=str)


def _key(name: str) -> str:
    """An MLflow-safe entity key: odd characters become ``_``, long keys get a hash tail."""
    name = _UNSAFE.sub("_", name)
    if len(name) > MAX_KEY:
        name = name[:MAX_KEY - 13] + "-" + hashlib.sha1(name.encode()).hexdigest()[:12]
    return name


def final_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """Flat final metrics of a ``metrics.json``: ``carbon_r2``, ``orig_avg_mae``, ``params``..."""
    out: dict[str, float] = {}

    def put(name: str, value: Any) -> None:
        if isinstance(value, int | float) and not isinstance(value, bool):
            out[_key(name)] = float(value)

    for scale, prefix in (("log_scale", ""), ("original_scale", "orig_")):
        for task, stats in (metrics.get(scale) or {}).items():
            for stat, value in (stats or {}).items():
                put(f"{prefix}{task}_{stat}", value)
    for name, value in (metrics.get("efficiency") or {}).items():
        if isinstance(value, dict):
            for key, v in value.items():
                put(f"{name}_{key}", v)
        else:
            put(name, value)
    for name in ("n_train", "n_val", "n_test"):
        put(name, (metrics.get("split") or {}).get(name))
    for task, value in (metrics.get("noise_ceiling") or {}).items():
        put(f"noise_ceiling_{task}", value)
    return out


def history_metrics(path: Path) -> list[tuple[str, float, int]]:
    """(name, value, epoch) of ``history.csv``; ST runs prefix the name with the model key."""
    if not path.is_file():
        return []
    rows = []
    with open(path, newline="") as fh:
        for row in csv.DictReader(fh):
            prefix = "" if row["model"] in ("all", "") else f"{row['model']}_"
            for col in ("train_loss", "val_loss"):
                if row.get(col) not in (None, ""):
                    rows.append((_key(prefix + col), float(row[col]), int(row["epoch"])))
    return rows


def _quiet() -> None:
    for name in ("mlflow", "alembic", "sqlalchemy"):
        logging.getLogger(name).setLevel(logging.WARNING)


def _search(client: Any, exp_id: str, tag: str, value: str) -> list[Any]:
    """Every run of the experiment (active or deleted) whose ``tag`` equals ``value``."""
    from mlflow.entities import ViewType

    quote = "'" if "'" not in value else '"'
    return client.search_runs([exp_id], filter_string=f"tags.`{tag}` = {quote}{value}{quote}",
                              run_view_type=ViewType.ALL, max_results=1000,
                              order_by=["attributes.start_time ASC"])


def _delete(client: Any, run: Any) -> None:
    """Delete a run for good: rows (hard delete where the store allows) and local artifacts."""
    run_id = run.info.run_id
    if run.info.lifecycle_stage != "deleted":
        client.delete_run(run_id)
    hard = getattr(getattr(client._tracking_client, "store", None), "_hard_delete_run", None)
    if hard is not None:
        hard(run_id)
    uri = urlparse(run.info.artifact_uri or "")
    if uri.scheme in ("", "file"):
        folder = Path(unquote(uri.path)).parent
        if folder.name == run_id:
            shutil.rmtree(folder, ignore_errors=True)


def _experiment(client: Any, name: str, uri: str) -> str:
    """Find or create (or restore) the experiment; local artifacts go next to a sqlite db."""
    exp = client.get_experiment_by_name(name)
    if exp is None:
        location = None
        if (db := _sqlite_path(uri)) is not None:
            folder = (db.parent / ARTIFACT_DIR).resolve()
            folder.mkdir(parents=True, exist_ok=True)
            location = folder.as_uri()
        return client.create_experiment(name, artifact_location=location)
    if exp.lifecycle_stage == "deleted":
        client.restore_experiment(exp.experiment_id)
    return exp.experiment_id


def _parent(client: Any, exp_id: str, key: str, tags: dict[str, str], name: str) -> str:
    """Find (restoring if deleted) or create the parent run of ``key``; duplicates are removed."""
    runs = _search(client, exp_id, PARENT_TAG, key)
    for extra in runs[1:]:
        _delete(client, extra)
    if runs:
        run_id = runs[0].info.run_id
        if runs[0].info.lifecycle_stage == "deleted":
            client.restore_run(run_id)
    else:
        run_id = client.create_run(exp_id, run_name=name, tags=tags).info.run_id
    client.set_terminated(run_id, "FINISHED")
    return run_id


def _mirror(run_dir: Path, experiment: str, settings: str, uri: str, record: dict[str, Any],
            git: tuple[str, str]) -> str:
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param

    _quiet()
    client = MlflowClient(uri)
    _quiet()  # the store's first use may configure loggers again
    m = record["metrics"]
    dataset, seed = str(m["dataset"]), int(m["seed"])
    model = str(m.get("variant") or m["model"])  # a variant label names its overrides
    split = str(m["split"]["kind"])
    exp_id = _experiment(client, experiment, uri)
    base = {"urbanmoe.dataset": dataset, "urbanmoe.model": model, "urbanmoe.settings": settings,
            "urbanmoe.split": split}
    parent_key = f"{dataset}/{model}/{split}/{settings}"
    parent_id = _parent(client, exp_id, parent_key, {**base, PARENT_TAG: parent_key},
                        f"{model} {dataset} {split} {settings}")
    run_key = f"{parent_key}/{seed}"
    for old in _search(client, exp_id, RUN_TAG, run_key):
        _delete(client, old)
    prov = m.get("provenance") or {}
    commit, dirty = git
    tags = {**base, RUN_TAG: run_key, "urbanmoe.seed": str(seed), "mlflow.parentRunId": parent_id,
            "urbanmoe.run_dir": str(run_dir.resolve()), "urbanmoe.git_commit": commit,
            "urbanmoe.git_dirty": dirty, "urbanmoe.config_hash": str(prov.get("config_hash")),
            "urbanmoe.table_sha256": str(prov.get("table_sha256")),
            "urbanmoe.device": str(prov.get("device")), "urbanmoe.torch": str(prov.get("torch")),
            "urbanmoe.python": str(prov.get("python")),
            "urbanmoe.split_kind": str((m.get("split") or {}).get("kind"))}
    if commit != "unknown":
        tags["mlflow.source.git.commit"] = commit
    run_id = client.create_run(exp_id, run_name=f"seed {seed}",
                               tags={k: v[:MAX_TAG] for k, v in tags.items()}).info.run_id
    try:
        now = int(time.time() * 1000)
        metrics = [Metric(k, v, now, 0) for k, v in final_metrics(m).items()]
        metrics += [Metric(k, v, now, step) for k, v, step in record["history"]]
        params = [Param(k, v) for k, v in
                  {_key(k): v[:MAX_PARAM] for k, v in _flatten(record["config"])}.items()]
        for i in range(0, len(metrics), 1000):  # MAX_METRICS_PER_BATCH
            client.log_batch(run_id, metrics=metrics[i:i + 1000])
        for i in range(0, len(params), BATCH):
            client.log_batch(run_id, params=params[i:i + BATCH])
        for name in ("metrics.json", "predictions.parquet", "routing.npz"):
            if (run_dir / name).is_file():
                client.log_artifact(run_id, str(run_dir / name))
    except BaseException:
        with contextlib.suppress(Exception):
            client.set_terminated(run_id, "FAILED")
        raise
    client.set_terminated(run_id, "FINISHED")
    return run_id


def mirror_run(run_dir: Path, experiment: str, settings: str = "default",
               tracking_uri: str | None = None) -> str:
    """Mirror one run folder into ``experiment``; return the id of its (new) child run.

    The child run (one per dataset/model/settings/seed, tag ``urbanmoe.run_key``) is nested
    under a parent per dataset/model/settings. Mirroring the same folder again replaces the
    child, so there is never more than one run per key. Safe to call from many processes at
    once: the find-or-create section holds a file lock beside the sqlite database.

    Raises:
        FileNotFoundError: ``run_dir`` has no ``metrics.json``.
    """
    run_dir = Path(run_dir)
    if not (run_dir / "metrics.json").is_file():
        raise FileNotFoundError(f"{run_dir}: no metrics.json (not a run folder)")
    config_path = run_dir / "config.yaml"
    record = {
        "metrics": json.loads((run_dir / "metrics.json").read_text()),
        "config": yaml.safe_load(config_path.read_text()) if config_path.is_file() else {},
        "history": history_metrics(run_dir / "history.csv"),
    }
    uri = tracking_uri or _env_uri()
    git = _git_state()
    if _sqlite_path(uri) is not None:  # import the store outside the lock: most of its cost
        import mlflow.store.tracking.sqlalchemy_store  # noqa: F401
    with _locked(_lock_path(uri)):
        return _retry(lambda: _mirror(run_dir, experiment, settings, uri, record, git))
