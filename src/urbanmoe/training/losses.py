"""The multi-task objective of Eq. 8, with missing targets masked out."""

from __future__ import annotations

import torch


def multitask_mse(
    pred: torch.Tensor, target: torch.Tensor, observed: torch.Tensor, weights: torch.Tensor
) -> torch.Tensor:
    """L = sum_tau lambda_tau * MSE_tau (Eq. 8), each task averaged over its observed rows.

    pred, target, observed: (B, T); weights: (T,). A region whose label is missing for a task
    adds nothing to that task's term (never imputed); a task with no observed row adds 0.
    """
    err = torch.where(observed, pred - target, torch.zeros_like(pred)) ** 2
    count = observed.sum(dim=0).clamp(min=1)
    return (weights * err.sum(dim=0) / count).sum()
