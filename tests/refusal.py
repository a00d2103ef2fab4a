"""What every refusal test asserts, in one place: exit status 2, exactly one ``urbanmoe: error:``
line naming the culprit(s), every watched file byte-identical (nothing deleted, changed or
added), and no output written.

``small_city`` is the valid city the refusal tests spoil; it trains, so a case fails by its own
spoiling (``tests/test_bad_inputs.py`` holds the control)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from urbanmoe.cli import main

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / ".test/config/config.yaml"
N = 60
TASKS = ("carbon", "population", "light")


def small_city(root: Path, n: int = N) -> Path:
    """A valid city of ``n`` regions: lat/lon, three targets, text, POIs, an embedding table."""
    rng = np.random.default_rng(0)
    ids = [f"r{i:03d}" for i in range(n)]
    table = pd.DataFrame({
        "region_id": ids,
        "lat": 38.9 + 0.01 * (np.arange(n) // 8),
        "lon": -77.1 + 0.01 * (np.arange(n) % 8),
        "carbon": rng.gamma(2.0, 50.0, n),
        "population": rng.gamma(2.0, 500.0, n),
        "light": rng.gamma(2.0, 5.0, n),
        "text": [f"a region with {k} shops and {k % 4} schools" for k in range(n)],
        "poi_shopping": rng.poisson(5, n),
        "poi_education": rng.poisson(1, n),
    })
    root.mkdir(parents=True)
    table.to_csv(root / "regions.csv", index=False)
    emb = pd.DataFrame(rng.normal(size=(n, 4)), columns=[f"e{j}" for j in range(4)])
    emb.insert(0, "region_id", ids)
    emb.to_csv(root / "street_emb.csv", index=False)
    meta = {"name": "BAD", "table": "regions.csv",
            "targets": {t: {"transform": "log1p"} for t in TASKS},
            "embeddings": {"street": "street_emb.csv"}}
    (root / "dataset.yaml").write_text(yaml.safe_dump(meta, sort_keys=False))
    return root


@dataclass
class Case:
    """One refusal: its name, how it spoils the valid city (None: it does not), what the error
    line must name, and extra arguments of the verb."""
    name: str
    spoil: Callable[[Path], None] | None
    says: tuple[str, ...]
    args: tuple[str, ...] = ()


def edit_meta(city: Path, edit: Callable[[dict], None] | None = None, **changes: object) -> None:
    """Rewrite ``city/dataset.yaml``: ``edit`` changes the mapping in place, ``changes`` set
    top-level keys."""
    meta = yaml.safe_load((city / "dataset.yaml").read_text())
    if edit is not None:
        edit(meta)
    meta.update(changes)
    (city / "dataset.yaml").write_text(yaml.safe_dump(meta, sort_keys=False))


def raw_file(name: str, data: bytes) -> Callable[[Path], str]:
    """A spoiler that writes ``data`` as the file ``name`` of a folder and returns the name."""
    def write(folder: Path) -> str:
        (folder / name).write_bytes(data)
        return name
    return write


def quick_sets(work: Path) -> list[str]:
    """``--set`` items that keep a refusal test fast and its cache inside ``work``."""
    return ["--set", "train.max_epochs=2", "--set", f"features.cache_dir={work / 'cache'}"]


def checksums(paths: Iterable[Path], skip: Sequence[str] = ()) -> dict[str, str]:
    """sha256 of every file under (or at) each path, keyed by its path; a folder's own entry
    lists its files, so a deleted or added file shows. Paths whose parts include one of
    ``skip`` (e.g. a feature cache) are left out."""
    out: dict[str, str] = {}
    for root in map(Path, paths):
        if root.is_symlink():
            out[str(root)] = f"-> {os.readlink(root)}"
            continue
        if root.is_file():
            out[str(root)] = hashlib.sha256(root.read_bytes()).hexdigest()
            continue
        if not root.exists():
            out[str(root)] = "(absent)"
            continue
        files = [p for p in sorted(root.rglob("*"))
                 if not any(part in skip for part in p.relative_to(root).parts)]
        out[str(root)] = "\n".join(str(p.relative_to(root)) for p in files)
        for p in files:
            if p.is_file():
                out[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def expect_refusal(argv: Sequence[str], says: Sequence[str], capsys: pytest.CaptureFixture[str],
                   *, watch: Iterable[Path] = (), absent: Iterable[Path] = (),
                   skip: Sequence[str] = ("cache",)) -> str:
    """Run ``urbanmoe ARGV`` in-process and assert a clean refusal; return its error line.

    ``watch``: files and folders that must come out byte-identical (inputs, the victim folder);
    ``absent``: outputs that must not exist afterwards (or exist only as an empty folder)."""
    watch, absent = list(watch), list(absent)
    before = checksums(watch, skip)
    code = main(list(argv))
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.startswith("urbanmoe:")]
    assert code == 2, captured.err
    assert len(lines) == 1 and lines[0].startswith("urbanmoe: error: "), captured.err
    for culprit in says:
        assert culprit in lines[0], f"{culprit!r} not in {lines[0]!r}"
    assert checksums(watch, skip) == before, "a watched file changed, vanished or appeared"
    for path in absent:
        assert not path.exists() or (path.is_dir() and not any(path.iterdir())), path
    return lines[0]
