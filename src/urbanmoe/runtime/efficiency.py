"""Efficiency columns of Table 2: parameters, peak memory and total time, measured one way."""

from __future__ import annotations

import resource
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch


def count_parameters(module: torch.nn.Module, trainable_only: bool = False) -> int:
    """Parameters of a module (shared tensors counted once), optionally trainable ones only."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


@dataclass
class Meter:
    """Wall time and peak memory of a block: CUDA max allocated on GPU, process peak RSS on CPU."""

    device: torch.device
    seconds: float = 0.0
    peak_mb: float = 0.0
    memory_kind: str = field(default="")


@contextmanager
def measure(device: torch.device) -> Iterator[Meter]:
    """Measure the enclosed block; fills the yielded :class:`Meter` when the block ends."""
    meter = Meter(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    try:
        yield meter
    finally:
        meter.seconds = time.perf_counter() - start
        if device.type == "cuda":
            meter.peak_mb = torch.cuda.max_memory_allocated(device) / 2**20
            meter.memory_kind = "cuda_max_allocated"
        else:
            meter.peak_mb = peak_rss_mb()
            meter.memory_kind = "process_peak_rss"
