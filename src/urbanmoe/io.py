"""Atomic output: a file or folder appears complete or not at all; inputs are never touched."""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import math
import os
import re
import shutil
import socket
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from urbanmoe import ownership
from urbanmoe.errors import InputError, OutputError
from urbanmoe.ownership import OWNER, TMP_PREFIX
from urbanmoe.ownership import sha256 as sha256_file
from urbanmoe.readers import dump_yaml

__all__ = ["OWNER", "TMP_PREFIX", "atomic_path", "check_writable", "claim",
           "remove_stale_temporaries", "safe_name", "sha256_file", "strict_json", "visible_files",
           "write_json", "write_text", "write_yaml"]

OLD = ".old"  # where a replaced folder waits when it cannot be exchanged in one step
STALE_UNOWNED_SECONDS = 60.0  # a temporary without an owner file: killed before writing it
# errno values of a write that ran out of room: a full disk or quota, a file-size limit
_NO_ROOM = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
_LOW_ROOM_BYTES = 1 << 20


@contextlib.contextmanager
def atomic_path(target: Path, kind: str = "file") -> Iterator[Path]:
    """Yield a temporary path beside ``target``; on success move it onto ``target``.

    Works for files and folders: write into the yielded path, and it replaces ``target`` only
    when the block finishes without error. On error the temporary is removed and any previous
    ``target`` is left as it was. The temporary is a hidden folder ``.tmp-<name>-*`` holding an
    owner file (host and process id); a writer killed with ``kill -9`` leaves it behind, and the
    next write of the same ``target`` removes it once its owner is gone. Readers of run folders
    never enter hidden folders (``visible_files``).

    ``kind`` names what is written (``ownership.FOLDER_KINDS`` are folders): ``target`` is
    replaced only where the project wrote the same kind before (``ownership.refusal``), checked
    before the block runs and again before the move; a folder gets the project's marker, a file
    a ledger record. A ``cache`` entry is never replaced: where one already stands, the new one
    is dropped. A write inside another one's temporary is part of that output and not checked.
    A write that runs out of room raises ``OutputError`` naming ``target``.
    """
    target = Path(target)
    folder = kind in ownership.FOLDER_KINDS
    guarded = not ownership.in_temporary(target)
    if guarded:
        ownership.check_output(target, kind, folder)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(target)
    tmp = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{target.name}-", dir=target.parent))
    (tmp / OWNER).write_text(f"{socket.gethostname()} {os.getpid()}\n")
    work = tmp / target.name
    try:
        yield work
        if guarded:
            _commit(work, target, kind, tmp)
        else:
            _move(work, target, tmp)
    except InputError:
        raise
    except Exception as exc:  # torch hides the errno ("unexpected pos"), pyarrow sometimes
        if _out_of_room(exc) or _device_full(tmp):
            raise OutputError(f"{target}: no room left on the device to write it "
                              f"({_reason(exc)}); nothing was written") from exc
        raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _move(work: Path, target: Path, tmp: Path) -> None:
    """Move the finished ``work`` onto ``target``; an old folder there ends up inside ``tmp``."""
    if not (target.is_dir() and not target.is_symlink()):
        os.replace(work, target)
    elif not _exchange(work, target):  # the old folder is now at work, removed below
        os.replace(target, tmp / OLD)  # no atomic exchange here: two renames
        os.replace(work, target)


def _commit(work: Path, target: Path, kind: str, tmp: Path) -> None:
    """Mark ``work`` as the project's (folder marker or ledger record), check ``target`` again
    (another writer may have put something there meanwhile) and move ``work`` onto it."""
    if kind == ownership.CACHE:
        if not target.exists():
            with contextlib.suppress(FileExistsError, IsADirectoryError):
                _move_new(work, target)
        return
    folder = work.is_dir()
    ownership.check_output(target, kind, folder)
    if folder:
        ownership.mark_folder(work, kind)
        _move(work, target, tmp)
        return
    digest = ownership.sha256(work)
    old = ownership.sha256(target) if target.is_file() else None
    ownership.record_file(target, kind, digest, previous=old)
    try:
        _move(work, target, tmp)
    except BaseException:
        if old is None:
            ownership.forget_file(target)
        else:
            ownership.record_file(target, kind, old)
        raise
    ownership.record_file(target, kind, digest)


def _move_new(work: Path, target: Path) -> None:
    """Move ``work`` to ``target`` only if nothing stands there (a cache's first writer wins)."""
    if work.is_dir():
        try:
            os.rename(work, target)  # fails on a folder that is not empty
        except OSError as exc:
            if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
        return
    try:
        os.link(work, target)  # fails where a file stands
    except FileExistsError:
        return
    except OSError:  # no hard links here (some network file systems): a plain rename
        os.replace(work, target)


def _out_of_room(exc: BaseException) -> bool:
    """Whether ``exc`` (or what caused it) says the write ran out of room."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in _NO_ROOM:
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _device_full(where: Path) -> bool:
    """Whether the device holding ``where`` is (nearly) full: what a write error from a library
    that hides its errno (torch's "unexpected pos") most likely means."""
    try:
        st = os.statvfs(where if where.exists() else where.parent)
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < _LOW_ROOM_BYTES


def _reason(exc: BaseException) -> str:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in _NO_ROOM:
            return os.strerror(seen.errno).lower()
        seen = seen.__cause__ or seen.__context__
    return "the device is full"


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step (Linux ``renameat2`` with ``RENAME_EXCHANGE``), so a folder
    is replaced without a moment when neither version is in place; False where unsupported."""
    fn = getattr(_LIBC, "renameat2", None) if _LIBC is not None else None
    if fn is None:
        return False
    if fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EPERM, errno.ENOTSUP):
        return False
    raise OSError(err, os.strerror(err), str(b))


try:
    _LIBC: ctypes.CDLL | None = ctypes.CDLL(None, use_errno=True)
except OSError:
    _LIBC = None


def remove_stale_temporaries(target: Path) -> list[Path]:
    """Remove the temporaries of ``target`` left by writers that no longer run; their paths.

    A folder that a killed writer had moved aside to replace it is put back first. A temporary
    is stale when its owner process (on this host) has ended, or when it has no
    owner file and is older than a minute. Temporaries of live writers, and of other hosts
    (a shared file system), are left alone.
    """
    removed = []
    target = Path(target)
    for tmp in target.parent.glob(f"{TMP_PREFIX}{target.name}-*"):
        if tmp.is_dir() and _is_stale(tmp):
            if (tmp / OLD).exists() and not target.exists():  # killed between two renames
                os.replace(tmp / OLD, target)
            shutil.rmtree(tmp, ignore_errors=True)
            removed.append(tmp)
    return removed


def _is_stale(tmp: Path) -> bool:
    try:
        host, pid = (tmp / OWNER).read_text().split()
    except (OSError, ValueError):
        try:
            return time.time() - tmp.stat().st_mtime > STALE_UNOWNED_SECONDS
        except OSError:
            return False
    if host != socket.gethostname():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, ValueError):
        return False
    return False


def visible_files(root: Path, name: str) -> list[Path]:
    """Every file called ``name`` under ``root`` outside hidden folders (temporaries included),
    sorted: the finished outputs, never a half-written one."""
    root = Path(root)
    return sorted(p for p in root.rglob(name)
                  if not any(part.startswith(".") for part in p.relative_to(root).parts[:-1]))


def check_writable(path: Path, flag: str) -> None:
    """Fail now, in one line naming ``flag``, if ``path`` cannot be written (before any work).

    Probes the nearest existing folder on the way to ``path`` by creating and removing a hidden
    folder there, which catches read-only and immutable folders, read-only file systems, ``/proc``
    and a regular file where a folder is needed.
    """
    path = Path(path)
    base = path.parent
    while not base.exists() and base != base.parent:
        base = base.parent
    if not base.is_dir():
        raise InputError(f"{flag} {path}: {base} is a file, not a folder")
    if path.is_dir() and not os.access(path, os.W_OK):
        raise InputError(f"{flag} {path}: the folder is not writable")
    try:
        probe = tempfile.mkdtemp(prefix=".urbanmoe-probe-", dir=base)
        os.rmdir(probe)
    except OSError as exc:
        raise InputError(f"{flag} {path}: cannot write under {base} "
                         f"({(exc.strerror or str(exc)).lower()})") from None


def claim(paths: Iterable[Path], kind: str) -> None:
    """Check, before any is written, that every one of ``paths`` may be written as ``kind``
    (``ownership.refusal``), so that a refused one never leaves a partial set behind."""
    for path in paths:
        if not ownership.in_temporary(Path(path)):
            ownership.check_output(Path(path), kind, kind in ownership.FOLDER_KINDS)


def safe_name(text: str) -> str:
    """``text`` as one file name: runs of characters other than letters, digits, ``_``, ``.``
    and ``-`` become ``_``, and no leading dot (so no path separator, ``..`` or hidden name)."""
    name = re.sub(r"[^\w.-]+", "_", str(text)).lstrip(".")
    return name or "_"


def write_text(path: Path, text: str, kind: str = "file") -> None:
    """Write a text file atomically (the one writer of tables, notes and captions)."""
    with atomic_path(Path(path), kind) as tmp:
        tmp.write_text(text)


def write_json(path: Path, obj: Any, kind: str = "file") -> None:
    """Write strict JSON atomically (sorted keys, indented): NaN and infinities become ``null``,
    which every JSON parser reads, never the bare ``NaN`` token that strict ones reject."""
    text = json.dumps(strict_json(obj), indent=2, sort_keys=True, allow_nan=False)
    with atomic_path(Path(path), kind) as tmp:
        tmp.write_text(text + "\n")


def strict_json(obj: Any) -> Any:
    """``obj`` with numpy scalars and arrays as Python values, paths as strings, and every
    non-finite float as None."""
    if isinstance(obj, dict):
        return {str(k): strict_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [strict_json(v) for v in obj]
    if hasattr(obj, "tolist") and not isinstance(obj, (str, bytes)):
        return strict_json(obj.tolist())
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def write_yaml(path: Path, obj: Any, kind: str = "file") -> None:
    """Write YAML atomically."""
    with atomic_path(Path(path), kind) as tmp:
        tmp.write_text(dump_yaml(obj))
