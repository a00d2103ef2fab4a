"""One training run (``urbanmoe train``): a model, a dataset, a seed -> a run folder.

The run folder holds ``metrics.json`` (R², RMSE, MAE per task and average on the log1p scale and
in original units, efficiency, provenance), ``predictions.parquet`` (test split), ``routing.npz``
(router weights, expert outputs and fused outputs on the test split: Figures 4-5),
``history.csv``, ``config.yaml`` (resolved) and ``model.pt`` (a state_dict that loads with
``torch.load(..., weights_only=True)``). The folder is written atomically. The splits are
fitted by ``training/folds.py``; here they are scored and written.
"""

from __future__ import annotations

import io
import logging
import platform
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from urbanmoe.config import config_hash
from urbanmoe.data.splits import Split
from urbanmoe.data.table import RegionDataset, load_dataset
from urbanmoe.evaluation import protocols
from urbanmoe.evaluation.metrics import covered_tasks, multitask_metrics
from urbanmoe.io import atomic_path, sha256_file, write_json, write_yaml
from urbanmoe.runtime.efficiency import measure
from urbanmoe.runtime.seeding import resolve_device, seed_everything
from urbanmoe.training import registry, representations
from urbanmoe.training.folds import FoldRun, fit_folds
from urbanmoe.training.prepare import prepare
from urbanmoe.training.targets import forward_transform, inverse_transform

log = logging.getLogger(__name__)


def _predictions_table(ds: RegionDataset, test: np.ndarray, y_log: np.ndarray,
                       pred_log: np.ndarray, pred_raw: np.ndarray,
                       fold: np.ndarray | None) -> pd.DataFrame:
    cols: dict[str, Any] = {"region_id": ds.ids[test]}
    if fold is not None:
        cols["fold"] = fold
    y_raw = ds.targets()[test]
    for j, task in enumerate(ds.tasks):
        cols[f"{task}_true_log"] = y_log[test, j]
        cols[f"{task}_pred_log"] = pred_log[:, j]
        cols[f"{task}_true"] = y_raw[:, j]
        cols[f"{task}_pred"] = pred_raw[:, j]
    return pd.DataFrame(cols)


def _join(folds: list[FoldRun], what: str) -> dict[str, Any]:
    """Per-key dicts of the folds (models, fits) under ``foldK/`` prefixes when several."""
    if len(folds) == 1:
        return dict(getattr(folds[0].fitted, what))
    return {f"fold{k}/{key}": v for k, f in enumerate(folds)
            for key, v in getattr(f.fitted, what).items()}


def _candidate_metrics(ds: RegionDataset, folds: list[FoldRun],
                       y_test: np.ndarray) -> dict[str, Any]:
    """``model.name: auto``: each candidate's own log-scale metrics on the test part, beside
    what was chosen (reported only; the choice reads validation labels alone)."""
    out = {}
    for cid in folds[0].fitted.candidates:
        pred = np.concatenate([f.prep.to_log_scale(f.fitted.candidates[cid]) for f in folds])
        out[cid] = multitask_metrics(y_test, pred, ds.tasks)
    return out


def _fold_metrics(ds: RegionDataset, folds: list[FoldRun]) -> list[dict[str, Any]]:
    """Each fold's sizes and log-scale metrics (``split.kind: kfold``)."""
    transforms = [ds.transforms[t] for t in ds.tasks]
    return [{"fold": k, "n_train": len(f.prep.split.train), "n_val": len(f.prep.split.val),
             "n_test": len(f.prep.split.test),
             "log_scale": multitask_metrics(f.prep.y_log[f.prep.split.test], f.pred_log,
                                            ds.tasks),
             "original_scale": multitask_metrics(ds.targets()[f.prep.split.test],
                                                 inverse_transform(f.pred_log, transforms),
                                                 ds.tasks)} for k, f in enumerate(folds)]


def _write_skipped(out_dir: Path, ds_name: str, cfg: dict[str, Any], seed: int,
                   tasks: list[str], reason: str, variant: str) -> dict[str, Any]:
    """A run folder that says why this model cannot run on this dataset (not a crash)."""
    metrics = {"dataset": ds_name, "model": cfg["model"]["name"], "variant": variant,
               "seed": seed, "tasks": tasks, "split": {"kind": cfg["split"]["kind"]},
               "skipped": reason}
    with atomic_path(Path(out_dir), "run") as tmp:
        tmp.mkdir(parents=True)
        write_json(tmp / "metrics.json", metrics)
    log.warning("%s %s seed %d skipped: %s", ds_name, cfg["model"]["name"], seed, reason)
    return metrics


def train_run(dataset_dir: Path, seed: int, out_dir: Path, cfg: dict[str, Any],
              progress: bool = True, variant: str | None = None) -> dict[str, Any]:
    """Train and evaluate the configured model on one dataset and seed; write the run folder.

    ``variant`` labels the run (``metrics.json``: ``variant``; default ``model.name``), e.g.
    ``urbanmoe@model.d_r=4`` for an ablation (``evaluation/experiments.py``).

    A model the dataset cannot serve (e.g. an image baseline on a text-only city) writes a run
    folder whose ``metrics.json`` says ``skipped`` and why.
    """
    ds = load_dataset(Path(dataset_dir))
    return run_on(ds, seed, out_dir, cfg, progress, variant,
                  cache=Path(cfg["features"]["cache_dir"]), dataset_dir=dataset_dir)


def run_on(ds: RegionDataset, seed: int, out_dir: Path, cfg: dict[str, Any],
           progress: bool = True, variant: str | None = None, *, cache: Path | None = None,
           split: Split | None = None, dataset_dir: Path | str | None = None,
           skip: str | None = None, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """:func:`train_run` on a loaded dataset: ``split`` overrides ``split.*`` (cross-city
    transfer), ``skip`` is a reason to skip beside the registry's, ``extra`` joins
    ``metrics.json``. Features are cached under ``cache`` (None: not cached)."""
    t = cfg["train"]
    spec = registry.get(cfg["model"]["name"])
    cfg = registry.configured(spec, cfg)
    seed_everything(seed, t["threads"])
    device = resolve_device(t["device"])
    reason = skip or registry.skip_reason(spec, ds, cfg["model"])
    if reason is not None:
        return _write_skipped(out_dir, ds.name, cfg, seed, ds.tasks, reason,
                              variant or spec.name)
    proto = protocols.settings(cfg, ds)
    theirs = proto["name"] == "hafusion"
    if theirs:
        ds = protocols.without_zeros(ds, proto)
        if spec.family == "representation":
            return _probe_run(ds, spec, cfg, proto, seed, device, cache, progress, out_dir,
                              variant, dataset_dir, extra)
        split = protocols.splits(ds, cfg, proto, seed)
    with measure(device) as total:
        folds = fit_folds(ds, spec, cfg, seed, device, cache, progress, split)
    first, several = folds[0], len(folds) > 1
    test = np.concatenate([f.prep.split.test for f in folds])
    transforms = [ds.transforms[k] for k in ds.tasks]
    pred_log = np.concatenate([f.pred_log for f in folds])
    pred_raw = inverse_transform(pred_log, transforms)
    if theirs and proto["clip_at_zero"]:
        pred_raw = np.maximum(pred_raw, 0.0)
        pred_log = forward_transform(pred_raw, transforms)
    models, fits = _join(folds, "models"), _join(folds, "fits")
    fitted = first.fitted
    routing = {k: np.concatenate([f.routing[k] for f in folds])
               if not k.endswith("expert_labels") else v for k, v in first.routing.items()}
    y_log = first.prep.y_log
    split_info: dict[str, Any] = {"kind": cfg["split"]["kind"],
                                  "n_train": len(first.prep.split.train),
                                  "n_val": len(first.prep.split.val), "n_test": len(test)}
    if several:
        split_info["folds"] = len(folds)
    metrics = {
        "dataset": ds.name,
        "model": cfg["model"]["name"],
        "variant": variant or cfg["model"]["name"],
        "seed": seed,
        "tasks": ds.tasks,
        "split": split_info,
        "protocol": proto,
        "log_scale": multitask_metrics(y_log[test], pred_log, ds.tasks),
        "original_scale": multitask_metrics(ds.targets()[test], pred_raw, ds.tasks),
        # under their protocol the metrics are pooled over the folds: the tables read those
        **({"per_fold" if theirs else "folds": _fold_metrics(ds, folds)} if several else {}),
        **({"candidates_test": _candidate_metrics(ds, folds, y_log[test])}
           if fitted.candidates else {}),
        "efficiency": {
            "params": fitted.n_params,
            "peak_memory_mb": max(f.meter.peak_mb for f in folds),
            "memory_kind": first.meter.memory_kind,
            "train_seconds": sum(f.meter.seconds for f in folds),
            "total_seconds": total.seconds,
            "epochs": {k: f.epochs for k, f in fits.items()},
            "best_epoch": {k: f.best_epoch for k, f in fits.items()},
        },
        "chosen_on_validation": {f"fold{k}": f.fitted.chosen for k, f in enumerate(folds)}
        if several else fitted.chosen,
        "notes": list(fitted.notes),
        "representation_objective": fitted.objective,
        "noise_ceiling": ds.meta.get("noise_ceiling"),
        **(extra or {}),
        "provenance": _provenance(cfg, ds, device),
    }
    _record_coverage(metrics)
    fold_of = np.concatenate([np.full(len(f.prep.split.test), k) for k, f in enumerate(folds)])
    history = pd.DataFrame(
        [{"model": k, "epoch": e, "train_loss": tl, "val_loss": vl}
         for k, f in fits.items() for e, (tl, vl) in enumerate(zip(f.train_loss, f.val_loss,
                                                                    strict=True))],
        columns=["model", "epoch", "train_loss", "val_loss"])
    state = {f"{k.replace('/', '.')}.{name}": v.detach().cpu() for k, mod in models.items()
             for name, v in mod.state_dict().items()}
    _write_folder(out_dir, ds, cfg, metrics,
                  _predictions_table(ds, test, y_log, pred_log, pred_raw,
                                     fold_of if several else None),
                  history, seed, dataset_dir, routing=routing, test=test, state=state)
    return metrics


def _write_folder(out_dir: Path, ds: RegionDataset, cfg: dict[str, Any],
                  metrics: dict[str, Any], predictions: pd.DataFrame, history: pd.DataFrame,
                  seed: int, dataset_dir: Path | str | None, *,
                  routing: dict[str, np.ndarray] | None = None, test: np.ndarray | None = None,
                  state: dict[str, torch.Tensor] | None = None) -> None:
    """Write the run folder atomically (``routing.npz`` and ``model.pt`` where there are)."""
    with atomic_path(Path(out_dir), "run") as tmp:
        tmp.mkdir(parents=True)
        write_json(tmp / "metrics.json", metrics)
        predictions.to_parquet(tmp / "predictions.parquet", index=False)
        if routing is not None and test is not None:
            np.savez_compressed(tmp / "routing.npz", region_id=ds.ids[test].astype(str),
                                tasks=np.array(ds.tasks), **routing)
        history.to_csv(tmp / "history.csv", index=False)
        write_yaml(tmp / "config.yaml", {"dataset": str(dataset_dir or ds.root), "seed": seed,
                                         **cfg})
        if state is not None:
            buffer = io.BytesIO()  # saved in memory, written by Python: a full disk keeps errno
            torch.save(state, buffer)
            (tmp / "model.pt").write_bytes(buffer.getbuffer())
    log.info("%s %s seed %d: avg R2 %.4f (log1p scale)", ds.name, cfg["model"]["name"], seed,
             metrics["log_scale"]["avg"]["r2"])


def _probe_run(ds: RegionDataset, spec: registry.ModelSpec, cfg: dict[str, Any],
               proto: dict[str, Any], seed: int, device: torch.device, cache: Path | None,
               progress: bool, out_dir: Path, variant: str | None,
               dataset_dir: Path | str | None, extra: dict[str, Any] | None) -> dict[str, Any]:
    """A representation model under the ``hafusion`` protocol: the representation of every
    region, learned once, scored by the protocol's Ridge probe (``evaluation/protocols.py``)."""
    first = protocols.splits(ds, cfg, proto, seed)[0]  # the learner's prepared inputs
    with measure(device) as total:
        prep = prepare(ds, cfg, seed, cache, progress, first)
        rep = representations.learned(spec, prep, cfg["baselines"], seed, device, progress)
        y_raw = ds.targets()
        pred_raw, chosen, notes = protocols.probe_representation(rep, y_raw, ds.tasks, proto)
    scored = np.isfinite(pred_raw).any(axis=1)
    rows = np.flatnonzero(scored)
    metrics = {
        "dataset": ds.name, "model": spec.name, "variant": variant or spec.name, "seed": seed,
        "tasks": ds.tasks, "split": {"kind": "kfold", "folds": proto["folds"],
                                     "n_train": 0, "n_val": 0, "n_test": len(rows)},
        "protocol": proto, **protocols.pooled(y_raw[rows], pred_raw[rows], ds),
        "efficiency": {"params": rep.n_params, "peak_memory_mb": total.peak_mb,
                       "memory_kind": total.memory_kind, "train_seconds": total.seconds,
                       "total_seconds": total.seconds, "epochs": {}, "best_epoch": {}},
        "chosen_on_test" if proto["select_epoch"] == "test_folds" else "chosen": {
            t: ("final" if e is None else e) for t, e in chosen.items()},
        "notes": [n for n in [rep.note, *notes] if n],
        "representation_objective": list(rep.loss_history),
        "noise_ceiling": ds.meta.get("noise_ceiling"), **(extra or {}),
        "provenance": _provenance(cfg, ds, device),
    }
    _record_coverage(metrics)
    y_log = forward_transform(y_raw, [ds.transforms[t] for t in ds.tasks])
    pred_log = forward_transform(np.maximum(pred_raw, 0.0), [ds.transforms[t] for t in ds.tasks])
    history = pd.DataFrame({"model": "representation", "epoch": range(len(rep.loss_history)),
                            "train_loss": rep.loss_history, "val_loss": np.nan})
    _write_folder(out_dir, ds, cfg, metrics,
                  _predictions_table(ds, rows, y_log, pred_log[rows], pred_raw[rows], None),
                  history, seed, dataset_dir)
    return metrics


def _provenance(cfg: dict[str, Any], ds: RegionDataset, device: torch.device) -> dict[str, Any]:
    return {"config_hash": config_hash(cfg), "table_sha256": sha256_file(ds.table_path),
            "dataset_dir": str(ds.root), "device": str(device), "torch": torch.__version__,
            "python": platform.python_version()}


def _record_coverage(metrics: dict[str, Any]) -> None:
    """``avg_over``: the tasks the log-scale R² average covers; a note when it is not all."""
    tasks = metrics["tasks"]
    metrics["avg_over"] = covered_tasks(metrics["log_scale"], tasks)
    undefined = [t for t in tasks if t not in metrics["avg_over"]]
    if undefined:
        metrics["notes"].append(
            f"R2 of {', '.join(undefined)} undefined (constant test labels); the averages "
            f"cover {', '.join(metrics['avg_over']) or 'no task'}")
