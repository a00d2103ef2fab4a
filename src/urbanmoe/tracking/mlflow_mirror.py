"""Mirror run folders into MLflow for browsing; the run folders stay the source of truth.

One experiment per paper artifact (``table2``, ...), one parent run per (dataset, model,
settings) and one nested child run per seed. Key tags (``urbanmoe.parent_key``,
``urbanmoe.run_key``; :mod:`urbanmoe.tracking.run_keys`) hold the identity of the dataset and
of the resolved settings, so that different runs never share a key, and make mirroring again
replace a child run, never add one: the new copy is logged into a new run and the earlier ones
are deleted only once it has finished. Writers serialise on an ``fcntl`` lock file beside the
sqlite database and retry when it reports itself locked.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import random
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import unquote, urlparse

from urbanmoe.redact import install_log_filter, redact
from urbanmoe.tracking.run_keys import RunKeys
from urbanmoe.tracking.run_record import (
    MAX_PARAM,
    MAX_TAG,
    final_metrics,
    flatten,
    mlflow_key,
    read_run,
)
from urbanmoe.tracking.store import check_store, store_errors
from urbanmoe.tracking.store import sqlite_path as _sqlite_path

DEFAULT_URI = "sqlite:///mlflow.db"
ARTIFACT_DIR = "mlartifacts"
RUN_TAG = "urbanmoe.run_key"
PARENT_TAG = "urbanmoe.parent_key"
BATCH = 100  # MAX_PARAMS_TAGS_PER_BATCH; metrics go by up to 1000
T = TypeVar("T")


def tracking_uri() -> str:
    """``MLFLOW_TRACKING_URI`` when set, else ``sqlite:///mlflow.db`` (relative to the cwd)."""
    return os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_URI


_env_uri = tracking_uri  # mirror_run's argument shadows the name


def shown_uri(uri: str | None = None) -> str:
    """The tracking URI (default :func:`tracking_uri`) as it may be printed or recorded:
    credentials masked (:func:`urbanmoe.redact.redact`)."""
    return redact(uri or tracking_uri())


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


def _quiet() -> None:
    for name in ("mlflow", "alembic", "sqlalchemy"):
        logging.getLogger(name).setLevel(logging.WARNING)
        install_log_filter(logging.getLogger(name))  # MLflow's own handler: redacted too


def _search(client: Any, exp_id: str, tag: str, value: str, active: bool = False) -> list[Any]:
    """Every run of the experiment (active or deleted; only active ones with ``active``) whose
    ``tag`` equals ``value``, oldest first."""
    from mlflow.entities import ViewType

    quote = "'" if "'" not in value else '"'
    view = ViewType.ACTIVE_ONLY if active else ViewType.ALL
    return client.search_runs([exp_id], filter_string=f"tags.`{tag}` = {quote}{value}{quote}",
                              run_view_type=view, max_results=1000,
                              order_by=["attributes.start_time ASC"])


def _complete(run: Any) -> bool:
    """Finished and not deleted: a run whose logging ran to its end and that still counts."""
    return run.info.status == "FINISHED" and run.info.lifecycle_stage != "deleted"


def _newest_complete(runs: list[Any]) -> Any | None:
    done = [r for r in runs if _complete(r)]
    return max(done, key=lambda r: (r.info.start_time or 0, r.info.end_time or 0),
               default=None)


def _delete(client: Any, run: Any) -> None:
    """Delete a run for good: soft delete first (so that a kill midway leaves a run that
    lookups skip and the next mirror finishes deleting), then its local artifacts, then its
    rows (hard delete where the store allows)."""
    run_id = run.info.run_id
    if run.info.lifecycle_stage != "deleted":
        client.delete_run(run_id)
    uri = urlparse(run.info.artifact_uri or "")
    if uri.scheme in ("", "file"):
        folder = Path(unquote(uri.path)).parent
        if folder.name == run_id:
            shutil.rmtree(folder, ignore_errors=True)
    hard = getattr(getattr(client._tracking_client, "store", None), "_hard_delete_run", None)
    if hard is not None:
        hard(run_id)


def _has_children(client: Any, exp_id: str, run_id: str) -> bool:
    """Whether a run that is not deleted names ``run_id`` as its parent."""
    return bool(_search(client, exp_id, "mlflow.parentRunId", run_id, active=True))


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
    """Find or create the parent run of ``key``.

    A finished parent is reused (restored when deleted); one that never finished is not. Other
    runs with the key are deleted when no child run points at them. A parent carries nothing
    but the tags it is created with, in one transaction, so reusing one is always safe.
    """
    runs = _search(client, exp_id, PARENT_TAG, key)
    done = [r for r in runs if r.info.status == "FINISHED"]
    keep = next((r for r in done if r.info.lifecycle_stage != "deleted"), None)
    keep = keep or (done[0] if done else None)
    if keep is None:
        run_id = client.create_run(exp_id, run_name=name, tags=tags).info.run_id
    else:
        run_id = keep.info.run_id
        if keep.info.lifecycle_stage == "deleted":
            client.restore_run(run_id)
    client.set_terminated(run_id, "FINISHED")
    for extra in runs:
        if extra.info.run_id != run_id and not _has_children(client, exp_id, extra.info.run_id):
            _delete(client, extra)
    return run_id


def _legacy_copies(client: Any, exp_id: str, keys: RunKeys, run_dir: str) -> list[Any]:
    """Runs mirrored from ``run_dir`` under the earlier key format (dataset name, model, split,
    label and seed only), to replace like any earlier copy of this folder."""
    return [r for r in _search(client, exp_id, RUN_TAG, keys.legacy_run)
            if r.data.tags.get("urbanmoe.run_dir") == run_dir]


def _log_run(client: Any, exp_id: str, run_dir: Path, record: dict[str, Any],
             tags: dict[str, str]) -> str:
    """Create a child run, log the folder into it and mark it FINISHED (FAILED on an error)."""
    from mlflow.entities import Metric, Param

    m = record["metrics"]
    run_id = client.create_run(exp_id, run_name=f"seed {record['keys'].seed}",
                               tags={k: v[:MAX_TAG] for k, v in tags.items()}).info.run_id
    try:
        now = int(time.time() * 1000)
        metrics = [Metric(k, v, now, 0) for k, v in final_metrics(m).items()]
        metrics += [Metric(k, v, now, step) for k, v, step in record["history"]]
        params = [Param(k, v) for k, v in
                  {mlflow_key(k): v[:MAX_PARAM] for k, v in flatten(record["config"])}.items()]
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


def _mirror(run_dir: Path, experiment: str, settings: str, uri: str, record: dict[str, Any],
            git: tuple[str, str]) -> str:
    from mlflow import MlflowClient

    _quiet()
    client = MlflowClient(uri)
    _quiet()  # the store's first use may configure loggers again
    m, keys = record["metrics"], record["keys"]
    exp_id = _experiment(client, experiment, uri)
    base = {"urbanmoe.dataset": keys.dataset, "urbanmoe.model": keys.model,
            "urbanmoe.settings": settings, "urbanmoe.split": keys.split,
            "urbanmoe.data_id": str(keys.data_id), "urbanmoe.settings_id": str(keys.settings_id)}
    parent_id = _parent(client, exp_id, keys.parent, {**base, PARENT_TAG: keys.parent},
                        f"{keys.model} {keys.dataset} {keys.split} {settings}")
    folder = str(run_dir.resolve())
    # every earlier copy of this key, finished or not, goes once the new copy has finished
    stale = _search(client, exp_id, RUN_TAG, keys.run) + _legacy_copies(client, exp_id, keys,
                                                                        folder)
    prov = m.get("provenance") or {}
    commit, dirty = git
    tags = {**base, RUN_TAG: keys.run, "urbanmoe.seed": str(keys.seed),
            "mlflow.parentRunId": parent_id, "urbanmoe.run_dir": folder,
            "urbanmoe.git_commit": commit, "urbanmoe.git_dirty": dirty,
            "urbanmoe.config_hash": str(prov.get("config_hash")),
            "urbanmoe.table_sha256": str(prov.get("table_sha256")),
            "urbanmoe.dataset_dir": str(prov.get("dataset_dir") or record["config"].get("dataset")),
            "urbanmoe.device": str(prov.get("device")), "urbanmoe.torch": str(prov.get("torch")),
            "urbanmoe.python": str(prov.get("python")), "urbanmoe.split_kind": keys.split}
    if commit != "unknown":
        tags["mlflow.source.git.commit"] = commit
    run_id = _log_run(client, exp_id, run_dir, record, tags)
    for old in stale:
        _delete(client, old)
    for old_parent in _search(client, exp_id, PARENT_TAG, keys.legacy_parent):
        if not _has_children(client, exp_id, old_parent.info.run_id):
            _delete(client, old_parent)
    return run_id


def mirror_run(run_dir: Path, experiment: str, settings: str = "default",
               tracking_uri: str | None = None) -> str:
    """Mirror one run folder into ``experiment``; return the id of its (new) child run.

    The child run is keyed (tag ``urbanmoe.run_key``, :mod:`urbanmoe.tracking.run_keys`) by
    the dataset's identity, the hash of the run's settings, the model, split, ``settings``
    label and seed, and nested under a parent per key without the seed. Mirroring the same
    folder again logs a new run and deletes the earlier ones of its key only once the new one
    has finished, so there is never more than one finished run per key and a mirror killed
    midway leaves the earlier copy in place (:func:`find_run` skips unfinished runs; the next
    mirror removes them). Safe to call from many processes at once: the whole mirror holds a
    file lock beside the sqlite database.

    Raises:
        FileNotFoundError: ``run_dir`` has no ``metrics.json``.
        ValueError: ``metrics.json`` or ``config.yaml`` is malformed or lacks a key field.
        TrackingError: the store is not an MLflow store, is locked for longer than the wait,
            cannot be reached or refuses (:mod:`urbanmoe.tracking.store`); nothing is written
            into a store refused before MLflow opens it.
    """
    run_dir = Path(run_dir)
    record = read_run(run_dir, settings)
    uri = tracking_uri or _env_uri()
    check_store(uri)
    git = _git_state()
    if _sqlite_path(uri) is not None:  # import the store outside the lock: most of its cost
        import mlflow.store.tracking.sqlalchemy_store  # noqa: F401
    with store_errors(uri), _locked(_lock_path(uri)):
        return _retry(lambda: _mirror(run_dir, experiment, settings, uri, record, git))


def find_run(run_dir: Path, experiment: str, settings: str = "default",
             tracking_uri: str | None = None) -> str | None:
    """The id of the mirror of ``run_dir`` in ``experiment``: the newest finished, not deleted
    run with its key; None when there is none (runs a killed mirror left unfinished are never
    returned)."""
    from mlflow import MlflowClient

    keys = read_run(Path(run_dir), settings)["keys"]
    uri = tracking_uri or _env_uri()
    check_store(uri)
    _quiet()
    with store_errors(uri):
        client = MlflowClient(uri)
        exp = client.get_experiment_by_name(experiment)
        if exp is None:
            return None
        run = _newest_complete(_search(client, exp.experiment_id, RUN_TAG, keys.run))
    return None if run is None else run.info.run_id
