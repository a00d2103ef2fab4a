"""One training run (``urbanmoe train``): a model, a dataset, a seed -> a run folder.

The run folder holds ``metrics.json`` (R², RMSE, MAE per task and average on the log1p scale and
in original units, efficiency, provenance), ``predictions.parquet`` (test split), ``routing.npz``
(router weights, expert outputs and fused outputs on the test split: Figures 4-5),
``history.csv``, ``config.yaml`` (resolved) and ``model.pt`` (a state_dict that loads with
``torch.load(..., weights_only=True)``). The folder is written atomically.
"""

from __future__ import annotations

import logging
import platform
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from urbanmoe.config import config_hash
from urbanmoe.data.table import load_dataset
from urbanmoe.evaluation.efficiency import count_parameters, measure
from urbanmoe.evaluation.metrics import multitask_metrics
from urbanmoe.io import atomic_path, sha256_file, write_json, write_yaml
from urbanmoe.models.baselines.linear import CLOSED_FORM, fit_predict
from urbanmoe.models.factory import build_urbanmoe, build_urbanmoe_st
from urbanmoe.training.loop import FitResult, TrainData, fit, predict
from urbanmoe.training.prepare import Prepared, prepare
from urbanmoe.training.seeding import resolve_device, seed_everything
from urbanmoe.training.targets import inverse_transform

log = logging.getLogger(__name__)


def _fit_kwargs(cfg: dict[str, Any], tasks: list[str], gen: torch.Generator,
                progress: bool) -> dict[str, Any]:
    t = cfg["train"]
    unknown = sorted(set(t["loss_weights"]) - set(tasks))
    if unknown:
        raise ValueError(f"train.loss_weights: {unknown[0]!r} is not a task of this dataset "
                         f"({tasks})")
    weights = torch.tensor([float(t["loss_weights"].get(k, 1.0)) for k in tasks])
    return dict(lr=t["lr"], region_lr=t["region_lr"], weight_decay=t["weight_decay"],
                batch_size=t["batch_size"],
                max_epochs=t["max_epochs"], patience=t["patience"], loss_weights=weights,
                generator=gen, progress=progress)


def _column(data: TrainData, j: int) -> TrainData:
    return TrainData(data.inputs, data.y[:, j:j + 1], data.observed[:, j:j + 1])


def train_models(prep: Prepared, cfg: dict[str, Any], seed: int, device: torch.device,
                 progress: bool) -> tuple[dict[str, torch.nn.Module], dict[str, FitResult]]:
    """Build and fit the configured model; UrbanMoE (ST) fits one model per task.

    Returns models and fit results keyed by ``all`` (multi-task) or by task name (ST).
    """
    m, ds = cfg["model"], prep.ds
    gen = torch.Generator().manual_seed(seed)
    data = prep.data.to(device)
    train_idx, val_idx = prep.index("train"), prep.index("val")
    common = (prep.branch_dims, prep.n_poi)
    if m["name"] == "urbanmoe":
        jobs = {"all": (build_urbanmoe(m, *common, prep.tasks, len(ds), ds.coords, seed), data)}
    else:
        jobs = {task: (build_urbanmoe_st(m, *common, task, len(ds), ds.coords, seed),
                       _column(data, j)) for j, task in enumerate(prep.tasks)}
    models, fits = {}, {}
    for key, (model, task_data) in jobs.items():
        model.to(device)
        tasks = prep.tasks if key == "all" else [key]
        kwargs = _fit_kwargs(cfg, tasks, gen, progress)
        fits[key] = fit(model, task_data, train_idx, val_idx,
                        desc=f"{ds.name} {m['name']} {key} seed {seed}", **kwargs)
        models[key] = model
    return models, fits


def _test_outputs(prep: Prepared, models: dict[str, torch.nn.Module],
                  device: torch.device) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Standardised test predictions (n_test, T) and routing arrays of every model."""
    data, test = prep.data.to(device), prep.index("test").to(device)
    if "all" in models:
        pred = predict(models["all"], data, test).cpu().numpy()
    else:
        pred = np.concatenate([predict(models[t], _column(data, j), test).cpu().numpy()
                               for j, t in enumerate(prep.tasks)], axis=1)
    routing: dict[str, np.ndarray] = {}
    with torch.no_grad():
        for key, model in models.items():
            model.eval()
            out = model(data.batch(test))
            for branch in out.gates:
                routing[f"{key}/{branch}/gates"] = out.gates[branch].cpu().numpy()
                routing[f"{key}/{branch}/experts"] = out.expert_outputs[branch].cpu().numpy()
                routing[f"{key}/{branch}/fused"] = out.fused[branch].cpu().numpy()
            routing[f"{key}/expert_labels"] = np.array(
                model.layout.expert_labels(model.task_names))
    return pred, routing


def _predictions_table(prep: Prepared, pred_log: np.ndarray, pred_raw: np.ndarray) -> pd.DataFrame:
    test = prep.split.test
    cols: dict[str, Any] = {"region_id": prep.ds.ids[test]}
    y_raw = prep.ds.targets()[test]
    for j, task in enumerate(prep.tasks):
        cols[f"{task}_true_log"] = prep.y_log[test, j]
        cols[f"{task}_pred_log"] = pred_log[:, j]
        cols[f"{task}_true"] = y_raw[:, j]
        cols[f"{task}_pred"] = pred_raw[:, j]
    return pd.DataFrame(cols)


def train_run(dataset_dir: Path, seed: int, out_dir: Path, cfg: dict[str, Any],
              progress: bool = True) -> dict[str, Any]:
    """Train and evaluate the configured model on one dataset and seed; write the run folder."""
    t = cfg["train"]
    seed_everything(seed, t["threads"])
    device = resolve_device(t["device"])
    ds = load_dataset(Path(dataset_dir))
    with measure(device) as total:
        cache = Path(cfg["features"]["cache_dir"])
        prep = prepare(ds, cfg, seed, cache, progress)
        with measure(device) as train:
            if cfg["model"]["name"] in CLOSED_FORM:
                pred_std, n_params, chosen = fit_predict(prep, cfg["model"]["name"])
                models, fits, routing = {}, {}, {}
            else:
                models, fits = train_models(prep, cfg, seed, device, progress)
                pred_std, routing = _test_outputs(prep, models, device)
                n_params = sum(count_parameters(mod) for mod in models.values())
                chosen = {}
    test = prep.split.test
    transforms = [ds.transforms[k] for k in ds.tasks]
    pred_log = prep.to_log_scale(pred_std)
    pred_raw = inverse_transform(pred_log, transforms)
    metrics = {
        "dataset": ds.name,
        "model": cfg["model"]["name"],
        "seed": seed,
        "tasks": ds.tasks,
        "split": {"kind": cfg["split"]["kind"], "n_train": len(prep.split.train),
                  "n_val": len(prep.split.val), "n_test": len(test)},
        "log_scale": multitask_metrics(prep.y_log[test], pred_log, ds.tasks),
        "original_scale": multitask_metrics(ds.targets()[test], pred_raw, ds.tasks),
        "efficiency": {
            "params": n_params,
            "peak_memory_mb": train.peak_mb,
            "memory_kind": train.memory_kind,
            "train_seconds": train.seconds,
            "total_seconds": total.seconds,
            "epochs": {k: f.epochs for k, f in fits.items()},
            "best_epoch": {k: f.best_epoch for k, f in fits.items()},
        },
        "chosen_on_validation": chosen,
        "noise_ceiling": ds.meta.get("noise_ceiling"),
        "provenance": {
            "config_hash": config_hash(cfg),
            "table_sha256": sha256_file(ds.table_path),
            "dataset_dir": str(ds.root),
            "device": str(device),
            "torch": torch.__version__,
            "python": platform.python_version(),
        },
    }
    history = pd.DataFrame(
        [{"model": k, "epoch": e, "train_loss": tl, "val_loss": vl}
         for k, f in fits.items() for e, (tl, vl) in enumerate(zip(f.train_loss, f.val_loss,
                                                                    strict=True))],
        columns=["model", "epoch", "train_loss", "val_loss"])
    state = {f"{k}.{name}": v.detach().cpu() for k, mod in models.items()
             for name, v in mod.state_dict().items()}
    with atomic_path(Path(out_dir)) as tmp:
        tmp.mkdir(parents=True)
        write_json(tmp / "metrics.json", metrics)
        _predictions_table(prep, pred_log, pred_raw).to_parquet(tmp / "predictions.parquet",
                                                                index=False)
        np.savez_compressed(tmp / "routing.npz", region_id=ds.ids[test], tasks=np.array(ds.tasks),
                            **routing)
        history.to_csv(tmp / "history.csv", index=False)
        write_yaml(tmp / "config.yaml", {"dataset": str(dataset_dir), "seed": seed, **cfg})
        torch.save(state, tmp / "model.pt")
    log.info("%s %s seed %d: avg R2 %.4f (log1p scale)", ds.name, cfg["model"]["name"], seed,
             metrics["log_scale"]["avg"]["r2"])
    return metrics
