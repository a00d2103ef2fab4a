"""What a run folder gives its MLflow mirror: flat params, final and per-epoch metrics, keys."""

from __future__ import annotations

import csv
import hashlib
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from urbanmoe.errors import RunError
from urbanmoe.readers import read_metrics, read_yaml
from urbanmoe.tracking.run_keys import run_keys

MAX_KEY, MAX_PARAM, MAX_TAG = 250, 6000, 8000  # mlflow.utils.validation limits
_UNSAFE = re.compile(r"[^\w\-. /]")


def flatten(obj: Any, prefix: str = "") -> Iterator[tuple[str, str]]:
    """Dotted keys and stringified leaves of a nested mapping."""
    if isinstance(obj, dict) and obj:
        for key, value in obj.items():
            yield from flatten(value, f"{prefix}{key}.")
    elif prefix:
        yield prefix[:-1], obj if isinstance(obj, str) else json.dumps(obj, default=str)


def mlflow_key(name: str) -> str:
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
            out[mlflow_key(name)] = float(value)

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
                    rows.append((mlflow_key(prefix + col), float(row[col]), int(row["epoch"])))
    return rows


def read_run(run_dir: Path, settings: str = "default") -> dict[str, Any]:
    """``metrics``, ``config`` (``{}`` without a ``config.yaml``), ``history`` and ``keys``
    (:class:`~urbanmoe.tracking.run_keys.RunKeys` under the ``settings`` label) of a run folder.

    Raises:
        FileNotFoundError: ``run_dir`` has no ``metrics.json``.
        ValueError: one of its files is malformed (the message names the file and field).
    """
    if not (run_dir / "metrics.json").is_file():
        raise RunError(f"{run_dir}: no metrics.json (not a run folder)")
    metrics_path, config_path = run_dir / "metrics.json", run_dir / "config.yaml"
    metrics = read_metrics(metrics_path)
    config = read_yaml(config_path, error=RunError) if config_path.is_file() else {}
    history_path = run_dir / "history.csv"
    try:
        history = history_metrics(history_path)
    except (KeyError, ValueError) as exc:
        raise RunError(f"{history_path}: unreadable row: {exc}") from None
    return {"metrics": metrics, "config": config, "history": history,
            "keys": run_keys(run_dir, metrics, config, settings)}


