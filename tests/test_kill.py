"""kill -9 at the worst moment: each writer (train, features, aggregate) is killed when its
output is complete in the temporary folder but not yet renamed into place. Nothing half-written
is ever read as complete, and the next write of the same output cleans up after the dead one.

The kill is exact, not timed: the child process replaces ``os.replace``, ``os.rename`` and
``os.link`` (a cache entry is linked into place, never replaced) and the one-step folder exchange
of ``urbanmoe.io`` with versions that send it SIGKILL when asked to move anything onto a path
matching the given pattern."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

from refusal import CONFIG, small_city

from urbanmoe.cli import main

KILLER = """
import fnmatch, os, signal, sys
pattern = sys.argv[1]
def killing(real):
    def move(src, dst, *args, **kwargs):
        if fnmatch.fnmatch(os.path.abspath(dst), pattern):
            os.kill(os.getpid(), signal.SIGKILL)
        return real(src, dst, *args, **kwargs)
    return move
os.replace, os.rename, os.link = killing(os.replace), killing(os.rename), killing(os.link)
import urbanmoe.io as io
exchange = io._exchange
def swap(a, b):
    if fnmatch.fnmatch(os.path.abspath(b), pattern):
        os.kill(os.getpid(), signal.SIGKILL)
    return exchange(a, b)
io._exchange = swap
from urbanmoe.cli import main
sys.exit(main(sys.argv[2:]))
"""


def _killed(pattern: Path | str, *argv: str) -> None:
    """Run ``urbanmoe ARGV`` and check it died of SIGKILL at the rename onto ``pattern``."""
    done = subprocess.run([sys.executable, "-c", KILLER, str(pattern), *argv],
                          capture_output=True, text=True)
    assert done.returncode == -signal.SIGKILL, done.stderr[-3000:]


def _train_argv(work: Path, out: Path) -> list[str]:
    return ["train", "--config", str(CONFIG), "--quiet", "--dataset", str(work / "city"),
            "--seed", "0", "--out", str(out), "--set", "train.max_epochs=2",
            "--set", f"features.cache_dir={work / 'cache'}"]


def _hidden(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.name.startswith(".tmp-"))


def test_train_killed_before_the_rename(tmp_path: Path) -> None:
    small_city(tmp_path / "city")
    runs, run = tmp_path / "runs", tmp_path / "runs/seed0"
    _killed(run, *_train_argv(tmp_path, run))
    assert not run.exists()
    (left,) = _hidden(runs)
    assert (left / "seed0/metrics.json").is_file()  # killed with everything written
    # aggregation never reads the temporary: there is no finished run
    assert main(["aggregate", str(runs), "--out", str(tmp_path / "summary.csv")]) == 2
    assert not (tmp_path / "summary.csv").exists()

    assert main(_train_argv(tmp_path, run)) == 0
    assert _hidden(runs) == []  # the dead writer's temporary is gone
    first = (run / "metrics.json").read_bytes()
    # killed again while replacing a finished run: the finished one stays as it was
    _killed(run, *_train_argv(tmp_path, run))
    assert (run / "metrics.json").read_bytes() == first
    assert main(["aggregate", str(runs), "--out", str(tmp_path / "summary.csv")]) == 0
    summary = (tmp_path / "summary.csv").read_text().splitlines()
    assert len(summary) == 2  # header + the one finished run, never the temporary


def test_feature_cache_killed_before_the_rename(tmp_path: Path) -> None:
    small_city(tmp_path / "city")
    cache = tmp_path / "cache"
    _killed(f"{cache}/*.parquet", *_train_argv(tmp_path, tmp_path / "runs/seed0"))
    assert not list(cache.glob("*.parquet"))  # no cache file that looks complete
    assert _hidden(cache)

    out = tmp_path / "features"
    argv = ["features", "--config", str(CONFIG), "--quiet", "--dataset",
            str(tmp_path / "city"), "--out", str(out)]
    _killed(out, *argv)
    assert not out.exists() and _hidden(tmp_path)
    assert main(argv) == 0
    assert [p.name for p in _hidden(tmp_path)] == []
    assert main(_train_argv(tmp_path, tmp_path / "runs/seed0")) == 0
    assert _hidden(cache) == [] and list(cache.glob("*.parquet"))


def test_aggregate_killed_before_the_rename(tmp_path: Path) -> None:
    small_city(tmp_path / "city")
    assert main(_train_argv(tmp_path, tmp_path / "runs/seed0")) == 0
    summary = tmp_path / "summary.csv"
    argv = ["aggregate", str(tmp_path / "runs"), "--out", str(summary)]
    _killed(summary, *argv)
    assert not summary.exists() and _hidden(tmp_path)
    assert main(argv) == 0
    assert _hidden(tmp_path) == []
    assert len(summary.read_text().splitlines()) == 2


def test_metrics_are_strict_json_and_say_what_the_average_covers(tmp_path: Path) -> None:
    """A task whose test labels are all equal has no R²: ``null`` in metrics.json (never a bare
    NaN token), left out of the average, and the run says so."""
    import pandas as pd

    city = small_city(tmp_path / "city")
    df = pd.read_csv(city / "regions.csv", dtype={"region_id": str})
    df["light"] = 5.0
    df.to_csv(city / "regions.csv", index=False)
    run = tmp_path / "runs/seed0"
    assert main(_train_argv(tmp_path, run)) == 0

    def no_constants(token: str) -> float:
        raise AssertionError(f"metrics.json holds the non-JSON token {token}")

    m = json.loads((run / "metrics.json").read_text(), parse_constant=no_constants)
    assert m["log_scale"]["light"]["r2"] is None
    assert m["avg_over"] == ["carbon", "population"]
    r2 = [m["log_scale"][t]["r2"] for t in ("carbon", "population")]
    assert abs(m["log_scale"]["avg"]["r2"] - sum(r2) / 2) < 1e-12
    assert any("light" in note and "cover carbon, population" in note for note in m["notes"])
