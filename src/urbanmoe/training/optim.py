"""The optimizers of every training loop: torch's Adam and AdamW (Eq. 8 is minimised with
AdamW, Section 3.3), with the fused kernel where the device has one.

The fused kernel updates each parameter in one pass over memory; the default per-tensor loop
makes about ten. For UrbanMoE at the paper's sizes the optimizer step was about a quarter of a
CPU training step, and fused it is about a tenth of that (``benchmarks/bench_optimizer.py``).
The update is the same up to float rounding, and as deterministic.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

FUSED_DEVICES = ("cpu", "cuda")  # devices with a fused Adam/AdamW kernel in torch


def _device_type(params: list[Any]) -> str:
    first = params[0]["params"][0] if isinstance(params[0], dict) else params[0]
    return first.device.type


def adam(params: Iterable[Any], *, lr: float, weight_decay: float = 0.0,
         decoupled: bool = True) -> torch.optim.Optimizer:
    """AdamW (``decoupled``, weight decay as in Loshchilov & Hutter) or Adam over ``params``
    (tensors or parameter groups), fused where the parameters' device allows."""
    params = list(params)
    cls = torch.optim.AdamW if decoupled else torch.optim.Adam
    fused = bool(params) and _device_type(params) in FUSED_DEVICES
    return cls(params, lr=lr, weight_decay=weight_decay, fused=fused or None)
