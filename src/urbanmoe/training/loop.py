"""The training loop: AdamW on Eq. 8, minibatches, early stopping on validation loss.

Model-agnostic: a model takes a batch (dict of tensors) and returns predictions (B, T), either
as a tensor or as an object with a ``pred`` attribute (UrbanMoE's output).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from tqdm.auto import tqdm

from urbanmoe.training.losses import multitask_mse
from urbanmoe.training.optim import adam

Batch = dict[str, torch.Tensor]


@dataclass
class TrainData:
    """Model inputs (dict of (N, ...) tensors) and standardised targets with their mask."""

    inputs: Batch
    y: torch.Tensor  # (N, T) standardised targets, 0 where missing
    observed: torch.Tensor  # (N, T) bool

    def batch(self, idx: torch.Tensor) -> Batch:
        return {k: v[idx] for k, v in self.inputs.items()}

    def to(self, device: torch.device) -> TrainData:
        return TrainData({k: v.to(device) for k, v in self.inputs.items()},
                         self.y.to(device), self.observed.to(device))


@dataclass
class FitResult:
    """What the loop did: per-epoch losses, the best epoch (whose weights the model keeps)."""

    best_epoch: int = -1
    best_val: float = float("inf")
    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)

    @property
    def epochs(self) -> int:
        return len(self.train_loss)


def predictions(out: object) -> torch.Tensor:
    """(B, T) predictions from a model output (a tensor or an object with ``pred``)."""
    return out if isinstance(out, torch.Tensor) else out.pred  # type: ignore[attr-defined]


@torch.no_grad()
def predict(model: torch.nn.Module, data: TrainData, idx: torch.Tensor,
            batch_size: int = 4096) -> torch.Tensor:
    """(len(idx), T) standardised predictions in eval mode."""
    model.eval()
    parts = [predictions(model(data.batch(idx[s:s + batch_size])))
             for s in range(0, len(idx), batch_size)]
    return torch.cat(parts) if parts else torch.empty(0, data.y.shape[1])


def parameter_groups(model: torch.nn.Module, region_lr: float | None) -> list[dict]:
    """AdamW groups: the region embedding (parameters under ``region.``) at ``region_lr``."""
    named = list(model.named_parameters())
    region = [p for n, p in named if n.startswith("region.")]
    if region_lr is None or not region:
        return [{"params": [p for _, p in named]}]
    rest = [p for n, p in named if not n.startswith("region.")]
    return [{"params": rest}, {"params": region, "lr": region_lr}]


def _val_loss(model: torch.nn.Module, data: TrainData, idx: torch.Tensor,
              weights: torch.Tensor) -> float:
    pred = predict(model, data, idx)
    return float(multitask_mse(pred, data.y[idx], data.observed[idx], weights))


def fit(
    model: torch.nn.Module,
    data: TrainData,
    train_idx: torch.Tensor,
    val_idx: torch.Tensor,
    *,
    lr: float,
    weight_decay: float,
    batch_size: int,
    max_epochs: int,
    patience: int,
    loss_weights: torch.Tensor,
    generator: torch.Generator,
    region_lr: float | None = None,
    progress: bool = True,
    desc: str = "train",
    on_epoch: Callable[[int, float, float], None] | None = None,
) -> FitResult:
    """Train with AdamW until validation loss stops improving for ``patience`` epochs.

    Shuffling draws from ``generator`` (seeded from config), so a seed fixes the run. The model
    ends with the weights of its best validation epoch. The region embedding learns at
    ``region_lr`` when given (see ``train.region_lr``).
    """
    opt = adam(parameter_groups(model, region_lr), lr=lr, weight_decay=weight_decay)
    device = data.y.device
    weights = loss_weights.to(device)
    result = FitResult()
    best_state = copy.deepcopy(model.state_dict())
    bar = tqdm(range(max_epochs), desc=desc, unit="epoch", disable=not progress, leave=False)
    for epoch in bar:
        model.train()
        order = train_idx[torch.randperm(len(train_idx), generator=generator)]
        total, seen = 0.0, 0
        for s in range(0, len(order), batch_size):
            idx = order[s:s + batch_size].to(device)
            pred = predictions(model(data.batch(idx)))
            loss = multitask_mse(pred, data.y[idx], data.observed[idx], weights)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
            seen += len(idx)
        val = _val_loss(model, data, val_idx.to(device), weights)
        result.train_loss.append(total / max(seen, 1))
        result.val_loss.append(val)
        if on_epoch is not None:
            on_epoch(epoch, result.train_loss[-1], val)
        if val < result.best_val - 1e-6:
            result.best_val, result.best_epoch = val, epoch
            best_state = copy.deepcopy(model.state_dict())
        bar.set_postfix(train=f"{result.train_loss[-1]:.4f}", val=f"{val:.4f}",
                        best=result.best_epoch)
        if epoch - result.best_epoch >= patience:
            break
    bar.close()
    model.load_state_dict(best_state)
    return result
