"""Identity keys of mirrored runs: what makes two run folders two different MLflow runs.

A child run is keyed by the dataset's identity (its name, tasks, folder and the checksum of
its region table, as ``metrics.json`` records them), by a hash of the resolved settings (the
run's saved ``config.yaml`` without its seed and dataset path, the same hash training records
as ``provenance.config_hash``), by the model or variant label, the split, the ``--settings``
label of ``urbanmoe track`` and the seed. Its parent drops the seed. A run folder that records
neither a table checksum nor its settings (a skipped run) is also keyed by its own resolved
path, so that such folders never merge either. Everything is read from the run folder, never
from the dataset folder (which may have changed since), so mirroring one folder again always
finds the same key.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from urbanmoe.config import config_hash
from urbanmoe.errors import RunError

_SAFE = " -._@=+,:;()[]"  # kept as written in the readable parts of a key


@dataclass(frozen=True)
class RunKeys:
    """The lookup keys of one run folder, with the readable labels they are made of."""

    parent: str
    run: str
    dataset: str
    model: str
    split: str
    seed: int
    data_id: str | None
    settings_id: str | None
    legacy_parent: str
    legacy_run: str


def _digest(obj: Any) -> str:
    blob = json.dumps(obj, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:12]


def data_identity(metrics: dict[str, Any], config: dict[str, Any]) -> str | None:
    """A short hash of the dataset a run used; None when the run records no table checksum."""
    prov = metrics.get("provenance") or {}
    if not prov.get("table_sha256"):
        return None
    return _digest({"name": metrics.get("dataset"), "tasks": metrics.get("tasks"),
                    "table_sha256": prov["table_sha256"],
                    "dataset_dir": prov.get("dataset_dir") or config.get("dataset"),
                    "transfer": metrics.get("transfer")})


def settings_identity(metrics: dict[str, Any], config: dict[str, Any]) -> str | None:
    """The hash of the run's resolved settings: ``config_hash`` of the saved configuration
    without ``seed`` and ``dataset`` (the recorded ``provenance.config_hash`` when the folder
    has no ``config.yaml``); None when neither is there."""
    if config:
        return config_hash({k: v for k, v in config.items() if k not in ("seed", "dataset")})
    recorded = (metrics.get("provenance") or {}).get("config_hash")
    return str(recorded) if recorded else None


def _field(metrics: dict[str, Any], path: Path, *names: str) -> Any:
    value: Any = metrics
    for name in names:
        if not isinstance(value, dict) or value.get(name) in (None, ""):
            raise RunError(f"{path}: field {'.'.join(names)!r} is missing")
        value = value[name]
    return value


def run_keys(run_dir: Path, metrics: dict[str, Any], config: dict[str, Any],
             settings: str = "default") -> RunKeys:
    """The parent and child keys of a run folder whose ``metrics.json`` and ``config.yaml``
    (``{}`` when absent) are given; ``settings`` is the label of ``urbanmoe track``.

    Raises:
        ValueError: ``metrics.json`` lacks ``dataset``, ``model``, ``seed`` or ``split.kind``,
            or its seed is not an integer.
    """
    path = Path(run_dir) / "metrics.json"
    dataset = str(_field(metrics, path, "dataset"))
    model = str(metrics.get("variant") or _field(metrics, path, "model"))
    split = str(_field(metrics, path, "split", "kind"))
    raw_seed = _field(metrics, path, "seed")
    if isinstance(raw_seed, bool) or not isinstance(raw_seed, int | str):
        raise RunError(f"{path}: field 'seed' is not an integer: {raw_seed!r}")
    try:
        seed = int(raw_seed)
    except ValueError:
        raise RunError(f"{path}: field 'seed' is not an integer: {raw_seed!r}") from None
    data_id, settings_id = data_identity(metrics, config), settings_identity(metrics, config)
    parts = [quote(p, safe=_SAFE) for p in (dataset, model, split, settings)]
    parts += [f"data-{data_id or 'unknown'}", f"cfg-{settings_id or 'unknown'}"]
    if data_id is None or settings_id is None:  # not enough recorded: the folder itself
        parts.append(f"dir-{_digest(str(Path(run_dir).resolve()))}")
    parent = "/".join(parts)
    legacy_parent = f"{dataset}/{model}/{split}/{settings}"
    return RunKeys(parent=parent, run=f"{parent}/seed-{seed}", dataset=dataset, model=model,
                   split=split, seed=seed, data_id=data_id, settings_id=settings_id,
                   legacy_parent=legacy_parent, legacy_run=f"{legacy_parent}/{seed}")
