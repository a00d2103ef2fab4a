"""Which paths a write may replace: only what the project itself wrote there, recognisably.

An output path is the user's before it is ours. ``io.atomic_path`` asks :func:`refusal` before
it starts and again before it moves its result into place, so every writer of the project (each
verb, each workflow rule, each report function) follows one rule:

- where nothing stands, anything may be written;
- an empty folder may be replaced;
- a folder may be replaced when it carries the marker :data:`MARKER` that the project writes
  into every folder it makes (its kind and the files it held), the kind is the one being
  written, and every file in it is one the project wrote (listed in the marker, or recorded in a
  ledger inside it);
- a file may be replaced when the ledger beside it (:data:`LEDGER`, one small record per file)
  says the project wrote it as the same kind, with these exact bytes (sha256);
- anything else (a folder or file the project did not write, one changed since, one of another
  kind, a symbolic link, a folder where a file goes) is refused with one line naming the path.

Caches (kind :data:`CACHE`) are keyed by what they hold: an entry is written where none stands
and never replaced, so it needs no ledger. :func:`overlap` refuses an output that is, contains
or lies inside an input.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from urbanmoe.errors import OutputError

MARKER = ".urbanmoe"  # inside a folder the project wrote: {"kind": ..., "files": [...]}
LEDGER = ".urbanmoe-written"  # beside files the project wrote: LEDGER/<name> per file
CACHE = "cache"
TMP_PREFIX = ".tmp-"  # io.atomic_path's temporaries (their own files are the project's)
OWNER = ".owner"  # inside a temporary: the host and process id of its writer
# the kinds of output that are folders; every other kind is a file
FOLDER_KINDS = frozenset({"run", "dataset", "features", "predictions"})


def sha256(path: Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def in_temporary(path: Path) -> bool:
    """Whether ``path`` lies inside a temporary of ``io.atomic_path`` (a part of a folder being
    written, which the folder's own marker will cover)."""
    return any(p.name.startswith(TMP_PREFIX) and (p / OWNER).is_file()
               for p in Path(path).parents)


def _read(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _write(path: Path, data: dict) -> None:
    """Write a small JSON record atomically (a temporary beside it, then a rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX, dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh, sort_keys=True)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _ledger(path: Path) -> Path:
    return path.parent / LEDGER / path.name


def _recorded(path: Path) -> dict | None:
    return _read(_ledger(path))


def mark_folder(work: Path, kind: str) -> None:
    """Write the marker into a folder about to be moved into place: its kind and its files."""
    files = sorted(p.relative_to(work).as_posix() for p in work.rglob("*")
                   if (p.is_file() or p.is_symlink()) and _ours_by_name(p.relative_to(work)))
    _write(work / MARKER, {"kind": kind, "files": files})


def _ours_by_name(rel: Path) -> bool:
    """False for the project's own bookkeeping (the marker, ledgers, temporaries)."""
    return not (rel.as_posix() == MARKER or LEDGER in rel.parts
                or any(part.startswith(TMP_PREFIX) for part in rel.parts))


def record_file(path: Path, kind: str, digest: str, previous: str | None = None) -> None:
    """Record in the ledger that the project wrote ``path`` as ``kind`` with bytes ``digest``
    (``previous`` too while the file is being replaced, so a writer killed between the two
    steps leaves a file the ledger still recognises)."""
    _write(_ledger(path), {"kind": kind, "sha256": [d for d in (digest, previous) if d]})


def forget_file(path: Path) -> None:
    """Drop the ledger record of ``path`` (the file was not written after all)."""
    with contextlib.suppress(OSError):
        _ledger(path).unlink()


def _foreign_file(folder: Path, listed: set[str]) -> str | None:
    """The first file under ``folder`` that the project did not write, or None."""
    for p in sorted(folder.rglob("*")):
        rel = p.relative_to(folder)
        if (p.is_dir() and not p.is_symlink()) or not _ours_by_name(rel):
            continue
        if rel.as_posix() in listed:
            continue
        rec = _recorded(p)
        if rec is None or not p.is_file() or sha256(p) not in rec.get("sha256", []):
            return rel.as_posix()
    return None


def refusal(target: Path, kind: str, folder: bool) -> str | None:
    """Why ``target`` may not be (re)written as ``kind`` (a folder when ``folder``), as the rest
    of a line that starts with the path; None when it may."""
    target = Path(target)
    if target.is_symlink():
        return "is a symbolic link, which urbanmoe did not make; remove it or choose another path"
    if not target.exists():
        return None
    if kind == CACHE:
        return None  # never replaced: the writer keeps the entry that stands (io.atomic_path)
    if target.is_dir():
        if not folder:
            return "is a folder, where a file is to be written; choose a file path"
        if not any(target.iterdir()):
            return None
        mark = _read(target / MARKER)
        if mark is None:
            first = sorted(p.name for p in target.iterdir())[0]
            return (f"is a folder that urbanmoe did not write (it holds {first!r} and no "
                    f"{MARKER} marker); remove it or choose another path")
        if mark.get("kind") != kind:
            return (f"is a folder urbanmoe wrote as {mark.get('kind')!r}, not {kind!r}; "
                    "choose another path")
        foreign = _foreign_file(target, set(mark.get("files") or []))
        if foreign is not None:
            return (f"holds {foreign!r}, which urbanmoe did not write; remove it or choose "
                    "another path")
        return None
    if folder:
        return "is a file, where a folder is to be written; choose another path"
    rec = _recorded(target)
    if rec is None:
        return "is a file that urbanmoe did not write; remove it or choose another path"
    if rec.get("kind") != kind:
        return (f"is a file urbanmoe wrote as {rec.get('kind')!r}, not {kind!r}; "
                "choose another path")
    if sha256(target) not in rec.get("sha256", []):
        return "was changed since urbanmoe wrote it; remove it or choose another path"
    return None


def check_output(target: Path, kind: str, folder: bool, flag: str | None = None) -> None:
    """Raise :class:`OutputError` unless ``target`` may be written as ``kind``."""
    why = refusal(target, kind, folder)
    if why is not None:
        raise OutputError(f"{flag + ' ' if flag else ''}{target}: {why}")


def _resolved(path: Path) -> Path:
    return Path(os.path.realpath(Path(path).expanduser()))


def overlap(target: Path, inputs: Iterable[Path], *, searched: Iterable[Path] = (),
            container: bool = False) -> str | None:
    """Why ``target`` may not be written beside these inputs, or None.

    An output may not be an input, contain one, or lie inside one (``inputs``: files and folders
    read whole, such as a dataset or a run folder). Folders that are only searched (``searched``,
    e.g. the folders ``aggregate`` walks) may hold an output, but not be or lie inside it.
    A ``container`` (a folder outputs are written into, never replaced) may hold inputs."""
    out = _resolved(target)
    for path in inputs:
        src = _resolved(path)
        if out == src:
            return f"is the input {path}"
        if src in out.parents:
            return f"lies inside the input {path}"
        if out in src.parents and not container:
            return f"contains the input {path}"
    for path in searched:
        src = _resolved(path)
        if out == src:
            return f"is the input {path}"
        if out in src.parents and not container:
            return f"contains the input {path}"
    return None
