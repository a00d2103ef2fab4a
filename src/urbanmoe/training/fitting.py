"""Fit any registered model (``training/registry.py``) on a prepared dataset.

One entry point, :func:`fit_model`, for the three families: ``neural`` modules go through the
training loop (one module per task for single-task models), ``closed_form`` models fit in one
call, and ``representation`` models learn features that the shared MLP head
(``models/baselines/heads.py``, Appendix A's "same regression head") is then trained on.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch

from urbanmoe.errors import ConfigError, RunError
from urbanmoe.features.spatial_lag import TRANSDUCTIVE_NOTE
from urbanmoe.models.baselines.heads import FeatureHead
from urbanmoe.runtime.efficiency import count_parameters
from urbanmoe.training import ensemble, representations
from urbanmoe.training.baselines.spatial import knn_choices, knn_everywhere, tuned_knn
from urbanmoe.training.loop import FitResult, TrainData, fit, predict
from urbanmoe.training.prepare import FEATURE_CLIP, Prepared, group_out_blocks
from urbanmoe.training.registry import ModelSpec, Representation
from urbanmoe.training.targets import Standardizer


@dataclass
class Fitted:
    """A fitted model's test predictions (standardised scale) and what it took."""

    pred_std: np.ndarray  # (n_test, T)
    n_params: int
    models: dict[str, torch.nn.Module] = field(default_factory=dict)  # "all" or task name
    fits: dict[str, FitResult] = field(default_factory=dict)
    chosen: dict[str, Any] = field(default_factory=dict)  # choices made on validation
    notes: list[str] = field(default_factory=list)  # said in the tables
    objective: list[float] = field(default_factory=list)  # representation objective per epoch
    data: TrainData | None = None  # the inputs the torch models saw
    val_pred_std: np.ndarray | None = None  # (n_val, T) models trained by the loop only
    candidates: dict[str, np.ndarray] = field(default_factory=dict)  # auto: each one's test


def fit_kwargs(cfg: dict[str, Any], tasks: list[str], gen: torch.Generator,
               progress: bool) -> dict[str, Any]:
    """Keyword arguments of :func:`fit` from ``train.*``, with Eq. 8's lambda per task."""
    t = cfg["train"]
    unknown = sorted(set(t["loss_weights"]) - set(tasks))
    if unknown:
        raise ConfigError(f"train.loss_weights: {unknown[0]!r} is not a task of this dataset "
                         f"({tasks})")
    weights = torch.tensor([float(t["loss_weights"].get(k, 1.0)) for k in tasks])
    return dict(lr=t["lr"], region_lr=t["region_lr"], weight_decay=t["weight_decay"],
                batch_size=t["batch_size"], max_epochs=t["max_epochs"], patience=t["patience"],
                loss_weights=weights, generator=gen, progress=progress)


def column(data: TrainData, j: int) -> TrainData:
    """The inputs with task ``j``'s targets only (for a single-task model)."""
    return TrainData(data.inputs, data.y[:, j:j + 1], data.observed[:, j:j + 1])


def sub_state(state: dict[str, torch.Tensor] | None, prefix: str
              ) -> dict[str, torch.Tensor] | None:
    """The tensors of ``state`` under ``prefix.`` with the prefix taken off (a fold's of a
    ``kfold`` run, a candidate's of ``auto``); None stays None."""
    if state is None:
        return None
    head = f"{prefix}."
    return {k[len(head):]: v for k, v in state.items() if k.startswith(head)}


def load_weights(model: torch.nn.Module, state: dict[str, torch.Tensor], key: str) -> None:
    """Load module ``key``'s weights from a run's ``model.pt`` state (keys ``KEY.param``); a
    checkpoint that does not fit these inputs is a one-line error naming the first tensor."""
    prefix = f"{key}."
    mine = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    expected = model.state_dict()
    for name, tensor in expected.items():
        if name not in mine:
            raise RunError(f"model.pt: no tensor {prefix + name!r} (a checkpoint of another "
                             "model or configuration)")
        if tuple(mine[name].shape) != tuple(tensor.shape):
            raise RunError(f"model.pt: {prefix + name} has shape {tuple(mine[name].shape)}; "
                             f"these inputs need {tuple(tensor.shape)} (features of another "
                             "dataset or configuration)")
    extra = sorted(set(mine) - set(expected))
    if extra:
        raise RunError(f"model.pt: unexpected tensor {prefix + extra[0]!r} (a checkpoint of "
                         "another model or configuration)")
    model.load_state_dict(mine)


def _train_torch(spec: ModelSpec, build: Any, prep: Prepared, data: TrainData,
                 cfg: dict[str, Any], seed: int, device: torch.device,
                 progress: bool, state: dict[str, torch.Tensor] | None = None,
                 patience: int | None = None) -> Fitted:
    """Train ``build(tasks)`` modules (one for all tasks, or one per task) with the loop, or,
    given a run's ``state``, load their trained weights instead; ``patience`` replaces
    ``train.patience`` where given."""
    gen = torch.Generator().manual_seed(seed)
    data = data.to(device)
    train_idx, val_idx = prep.index("train"), prep.index("val")
    test = prep.index("test").to(device)
    val = val_idx.to(device)
    keys = list(prep.tasks) if spec.single_task else ["all"]
    models, fits, preds, val_preds = {}, {}, [], []
    for key in keys:
        tasks = prep.tasks if key == "all" else [key]
        task_data = data if key == "all" else column(data, prep.tasks.index(key))
        model = build(tasks).to(device)
        if state is None:
            kwargs = fit_kwargs(cfg, tasks, gen, progress)
            if patience is not None:
                kwargs["patience"] = patience
            fits[key] = fit(model, task_data, train_idx, val_idx,
                            desc=f"{prep.ds.name} {spec.name} {key} seed {seed}", **kwargs)
        else:
            load_weights(model, state, key)
            fits[key] = FitResult()
        models[key] = model
        preds.append(predict(model, task_data, test).cpu().numpy())
        val_preds.append(predict(model, task_data, val).cpu().numpy())
    n_params = sum(count_parameters(mod) for mod in models.values())
    return Fitted(np.concatenate(preds, axis=1), n_params, models, fits, data=data,
                  val_pred_std=np.concatenate(val_preds, axis=1))


def representation_inputs(prep: Prepared, rep: Representation) -> TrainData:
    """The learned features, standardised on the training rows, as the head's only input."""
    feats = Standardizer.fit(rep.features[prep.split.train], clip=FEATURE_CLIP)
    x = torch.from_numpy(feats.transform(rep.features).astype(np.float32))
    return TrainData({"repr": x}, prep.data.y, prep.data.observed)


def frozen_features_note(features: dict[str, Any], branches: list[str]) -> str:
    """What the "RemoteCLIP" rows' frozen features really are (the table says which)."""
    parts = []
    for branch in branches:
        enc = features[branch]["encoder"]
        if enc == "remoteclip":
            rc = features["remoteclip"]
            src = rc["checkpoint"] or "random init (smoke run)"
            parts.append(f"{branch}: RemoteCLIP {rc['arch']} ({src})")
        else:
            parts.append(f"{branch}: offline {enc} encoder (no RemoteCLIP checkpoint configured)")
    return "frozen features, " + "; ".join(parts)


def with_tuned_knn(out: Fitted, prep: Prepared, cfg: dict[str, Any]) -> Fitted:
    """``out`` combined with the tuned kNN (``spatial.ensemble``, ``training/ensemble.py``);
    the combination is fitted on the validation rows only."""
    kind = cfg["spatial"]["ensemble"]
    if out.val_pred_std is None:
        raise ConfigError(f"spatial.ensemble {kind}: model.name {cfg['model']['name']} has no "
                         "validation predictions (use a model trained by the loop)")
    knn_val, knn_test, knn_chosen, knn_params = tuned_knn(prep, cfg["baselines"])
    va = prep.split.val
    coefs = ensemble.choose_combination(kind, out.val_pred_std, knn_val,
                                        prep.data.y.numpy()[va], prep.data.observed.numpy()[va])
    out.pred_std = ensemble.combine(coefs, out.pred_std, knn_test)
    out.val_pred_std = ensemble.combine(coefs, out.val_pred_std, knn_val)
    out.n_params += knn_params
    out.chosen.update({**ensemble.as_chosen(prep.tasks, coefs),
                       **{f"knn_{t}": c for t, c in knn_chosen.items()}})
    out.notes.append(ensemble.describe(kind, prep.tasks, coefs))
    return out


def on_knn_residuals(spec: ModelSpec, prep: Prepared, cfg: dict[str, Any], seed: int,
                     device: torch.device, progress: bool,
                     state: dict[str, torch.Tensor] | None = None) -> Fitted:
    """``spatial.ensemble: residual``: the model learns what the tuned kNN misses.

    The tuned kNN's (k, weighting) is chosen on validation; its prediction at every region comes
    from the other training regions (a training region never sees its own label, nor under a
    spatial-block split its own block), the model is fitted on ``y - kNN`` and predicts
    ``kNN + model``. Works for every family (the model only sees other targets).
    """
    groups = group_out_blocks(prep.ds, cfg["split"])
    choices = knn_choices(prep, cfg["baselines"])
    base = np.stack([knn_everywhere(prep, j, k, w, groups)
                     for j, (k, w) in enumerate(choices)], axis=1)  # (N, T) standardised
    observed = prep.data.observed.numpy()
    resid = np.where(observed, prep.data.y.numpy() - base, 0.0).astype(np.float32)
    data = TrainData(prep.data.inputs, torch.from_numpy(resid), prep.data.observed)
    out = _fit(spec, replace(prep, data=data), cfg, seed, device, progress, state)
    out.pred_std = out.pred_std + base[prep.split.test]
    if out.val_pred_std is not None:
        out.val_pred_std = out.val_pred_std + base[prep.split.val]
    per_task = list(zip(prep.tasks, choices, strict=True))
    shown = ", ".join(f"{t} k={k} {w}" for t, (k, w) in per_task)
    out.chosen.update({f"knn_{t}": f"k={k}, {w}" for t, (k, w) in per_task})
    out.notes.append(f"model of the residuals of the tuned kNN ({shown})")
    return out


def fit_model(spec: ModelSpec, prep: Prepared, cfg: dict[str, Any], seed: int,
              device: torch.device, progress: bool = True,
              state: dict[str, torch.Tensor] | None = None) -> Fitted:
    """Fit ``spec`` on ``prep`` and predict the test split; with ``spatial.ensemble`` on,
    combine it with the tuned kNN. Spatial context in use is said in the notes.

    ``state`` (a run's ``model.pt``) gives the torch modules their trained weights instead of
    training them; what has no torch weights (closed forms, representations, the kNN of an
    ensemble) is fitted again, deterministically from ``seed``."""
    s = cfg["spatial"]
    if s["ensemble"] == "residual":
        out = on_knn_residuals(spec, prep, cfg, seed, device, progress, state)
    else:
        out = _fit(spec, prep, cfg, seed, device, progress, state)
    if s["ensemble"] in ("average", "stack"):
        out = with_tuned_knn(out, prep, cfg)
    if s["lag"] != "none" or s["ensemble"] != "none":
        out.notes.append(TRANSDUCTIVE_NOTE)
    return out


def _fit(spec: ModelSpec, prep: Prepared, cfg: dict[str, Any], seed: int,
         device: torch.device, progress: bool,
         state: dict[str, torch.Tensor] | None = None) -> Fitted:
    m, b = cfg["model"], cfg["baselines"]
    if spec.family == "auto":
        from urbanmoe.training.auto import fit_auto  # (imports this module)

        return fit_auto(prep, cfg, seed, device, progress, state)
    func = spec.function()
    if spec.family == "closed_form":
        pred, n_params, chosen = func(prep, b, seed)
        return Fitted(np.asarray(pred, dtype=np.float64), int(n_params), chosen=chosen)
    if spec.family == "neural":
        out = _train_torch(spec, lambda tasks: func({**m, "name": spec.name}, b, prep, tasks,
                                                    seed),
                           prep, prep.data, cfg, seed, device, progress, state)
        if spec.name.startswith("remoteclip"):
            out.notes = [frozen_features_note(cfg["features"], list(prep.branch_dims))]
        return out
    rep = representations.learned(spec, prep, b, seed, device, progress)
    data = representation_inputs(prep, rep)

    def head(tasks: list[str]) -> torch.nn.Module:
        torch.manual_seed(seed)
        return FeatureHead({"repr": rep.features.shape[1]}, b["head_hidden"], len(tasks))

    out = _train_torch(spec, head, prep, data, cfg, seed, device, progress, state,
                       patience=b["head_patience"])
    out.n_params += rep.n_params
    out.notes = [rep.note] if rep.note else []
    out.objective = list(rep.loss_history)
    return out
