"""Seeding and devices: same seed, same numbers on CPU."""

from __future__ import annotations

import random

import numpy as np
import torch


def seed_everything(seed: int, threads: int = 0) -> torch.Generator:
    """Seed Python, NumPy and torch, make torch deterministic, return a seeded CPU generator."""
    random.seed(seed)
    np.random.seed(seed % (2**32))  # noqa: NPY002  (legacy global state some libraries read)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    if threads > 0:
        torch.set_num_threads(threads)
    gen = torch.Generator()
    gen.manual_seed(seed)
    return gen


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when present, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("train.device: 'cuda' requested but no CUDA device is available")
    return torch.device(name)
