"""One reader for each binary file the project reads: torch checkpoints and numpy arrays.

A run's ``model.pt``, a RemoteCLIP or ImageNet checkpoint, a run's ``routing.npz`` and the
caches' ``.npz``/``.npy`` entries are read here, never with ``torch.load``/``np.load`` directly,
so that every damaged, truncated, empty or foreign file is the same one line (the file, what it
should be, and the reader's first words), of the caller's error kind, whichever verb reads it.
Checkpoints are loaded with ``weights_only`` (tensors and plain containers, no code), arrays
without pickles.
"""

from __future__ import annotations

import logging
import pickle
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from urbanmoe.errors import InputError

log = logging.getLogger(__name__)

# what torch.load and np.load raise on a file that is not what they read (truncated zip
# members, pickles they refuse, garbage headers, a folder)
_UNREADABLE = (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, OSError, KeyError,
               AttributeError, TypeError, IndexError, zipfile.BadZipFile, UnicodeDecodeError)


def _refuse(path: Path, what: str, exc: BaseException, error: type[InputError]) -> InputError:
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return error(f"{path}: cannot be read as {what}: {first[:200]}")


def read_checkpoint(path: Path, what: str = "a torch checkpoint", *,
                    error: type[InputError] = InputError) -> Any:
    """The object a torch checkpoint at ``path`` holds (``torch.load``, ``weights_only``, on
    the CPU); a missing or unreadable file is one line of kind ``error`` naming it."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise error(f"{path}: file not found ({what})")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except _UNREADABLE as exc:
        raise _refuse(path, f"{what} (torch.load, weights_only)", exc, error) from None


def read_cached(path: Path, reader: Callable[[Path], Any]) -> Any:
    """A cache entry read by ``reader``, or None where there is none. Caches are never
    replaced, with one exception: an entry that cannot be read (a damaged or truncated file)
    is removed with a warning and counts as a miss, so that it is computed and written again."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        return reader(path)
    except InputError as exc:
        log.warning("%s; removing the damaged cache entry and computing it again", exc)
        path.unlink(missing_ok=True)
        return None


def read_npz(path: Path, what: str, keys: Sequence[str] | None = None, *,
             error: type[InputError] = InputError) -> dict[str, np.ndarray]:
    """Every array of the ``.npz`` at ``path`` (or only ``keys``, each required), read into
    memory without pickles; a missing, unreadable or incomplete file is one line."""
    path = Path(path)
    if not path.is_file():
        raise error(f"{path}: file not found ({what})")
    try:
        with np.load(path, allow_pickle=False) as z:
            if not isinstance(z, np.lib.npyio.NpzFile):
                raise ValueError("a single array, not an .npz archive")
            missing = [k for k in keys or () if k not in z.files]
            if missing:
                raise error(f"{path}: {what} lacks {missing[0]!r} (holds {sorted(z.files)[:8]})")
            return {k: z[k] for k in (keys if keys is not None else z.files)}
    except InputError:
        raise
    except _UNREADABLE as exc:
        raise _refuse(path, what, exc, error) from None


def read_npy(path: Path, what: str, *, error: type[InputError] = InputError) -> np.ndarray:
    """The array in the ``.npy`` at ``path``, without pickles; an unreadable file is one line."""
    path = Path(path)
    if not path.is_file():
        raise error(f"{path}: file not found ({what})")
    try:
        array = np.load(path, allow_pickle=False)
    except _UNREADABLE as exc:
        raise _refuse(path, what, exc, error) from None
    if not isinstance(array, np.ndarray):
        raise error(f"{path}: cannot be read as {what}: not a single .npy array")
    return array
