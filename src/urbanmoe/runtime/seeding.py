"""Seeding and devices: same seed, same numbers on CPU."""

from __future__ import annotations

import random
import sys

import numpy as np
import torch

from urbanmoe.errors import ConfigError


def seed_everything(seed: int, threads: int = 0) -> torch.Generator:
    """Seed Python, NumPy and torch, make torch deterministic, return a seeded CPU generator."""
    random.seed(seed)
    np.random.seed(seed % (2**32))  # noqa: NPY002  (legacy global state some libraries read)
    torch.manual_seed(seed)
    _deterministic_algorithms()
    if threads > 0:
        torch.set_num_threads(threads)
    gen = torch.Generator()
    gen.manual_seed(seed)
    return gen


def _deterministic_algorithms() -> None:
    """``torch.use_deterministic_algorithms(True, warn_only=True)``, minus a 3 s import.

    The public call also sets ``torch._inductor.config.deterministic``, and importing that
    module pulls in TorchDynamo: about 3 s on 2 cores, which a closed-form run (ridge, kNN,
    LightGBM...) need not pay; a torch optimizer imports TorchDynamo anyway. This project
    never compiles with inductor, so when inductor is not loaded only the global flag is set;
    when it is, the public call runs as usual.
    """
    setter = getattr(torch._C, "_set_deterministic_algorithms", None)
    if setter is None or "torch._inductor" in sys.modules:
        torch.use_deterministic_algorithms(True, warn_only=True)
    else:
        setter(True, warn_only=True)


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when present, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("train.device: 'cuda' requested but no CUDA device is available")
    return torch.device(name)
