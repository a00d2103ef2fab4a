"""Output paths: a write replaces only what the project itself wrote there, as the same kind
(``urbanmoe.ownership``), and no output is, contains or lies inside an input. Every refusal
comes before any work, in one line naming the path, with every file of the victim (and of the
inputs) still there, byte for byte; every allowed rewrite works."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from refusal import CONFIG, expect_refusal, quick_sets, small_city

from urbanmoe.cli import main

TRAIN = ("--set", "model.name=ridge")


def _train(work: Path, out: Path | str, *extra: str) -> list[str]:
    return ["train", "--config", str(CONFIG), "--quiet", "--dataset", str(work / "city"),
            "--seed", "0", "--out", str(out), *quick_sets(work), *TRAIN, *extra]


def _user_folder(path: Path) -> Path:
    """A folder of the user's own: notes and a subfolder of results."""
    (path / "older").mkdir(parents=True)
    (path / "notes.txt").write_text("my notes\n")
    (path / "older/result.csv").write_text("a,b\n1,2\n")
    return path


def _a_run(work: Path) -> Path:
    run = work / "runs/seed0"
    assert main(_train(work, run)) == 0
    return run


def _a_dataset(work: Path) -> Path:
    """A dataset folder the project wrote (the tiny configuration's synthetic city)."""
    assert main(["synth", "--config", str(CONFIG), "--quiet", "--out", str(work / "bench")]) == 0
    return work / "bench/DC"


def _a_summary(work: Path) -> Path:
    _a_run(work)
    summary = work / "summary.csv"
    assert main(["aggregate", str(work / "runs"), "--out", str(summary)]) == 0
    return summary


@dataclass
class Case:
    """One refusal: how the scene is set (returns the paths to watch besides the city), the
    command, and what its one line must name."""

    name: str
    scene: Callable[[Path], list[Path]]
    argv: Callable[[Path], list[str]]
    says: tuple[str, ...]


def _nothing(work: Path) -> list[Path]:
    return []


CASES = [
    Case("train into a folder of the user's",
         lambda w: [_user_folder(w / "mine")], lambda w: _train(w, w / "mine"),
         ("--out", "mine", "did not write", "notes.txt")),
    Case("train into the dataset folder", _nothing, lambda w: _train(w, w / "city"),
         ("--out", "is the input")),
    Case("train inside the dataset folder", _nothing, lambda w: _train(w, w / "city/runs/s0"),
         ("--out", "lies inside the input")),
    Case("train onto the dataset's parent", _nothing, lambda w: _train(w, w),
         ("--out", "contains the input")),
    Case("train into a run folder holding a file of the user's",
         lambda w: [_user_file(_a_run(w) / "mine.txt"), w / "runs"],
         lambda w: _train(w, w / "runs/seed0"), ("--out", "holds 'mine.txt'")),
    Case("train onto a dataset folder the project wrote",
         lambda w: [_a_dataset(w)], lambda w: _train(w, w / "bench/DC"),
         ("--out", "as 'dataset', not 'run'")),
    Case("train onto a file", lambda w: [_user_file(w / "run.txt")],
         lambda w: _train(w, w / "run.txt"), ("--out", "is a file, where a folder")),
    Case("train through a symbolic link to a folder of the user's",
         lambda w: [_user_folder(w / "mine"), _link(w / "link", w / "mine")],
         lambda w: _train(w, w / "link"), ("--out", "symbolic link")),
    Case("a feature cache inside the dataset folder", _nothing,
         lambda w: [*_train(w, w / "runs/seed0"), "--set", f"features.cache_dir={w / 'city/c'}"],
         ("features.cache_dir", "lies inside the input")),
    Case("aggregate onto the folder it reads", lambda w: [_a_run(w), w / "runs"],
         lambda w: ["aggregate", str(w / "runs"), "--out", str(w / "runs")],
         ("--out", "is the input")),
    Case("aggregate onto a folder", lambda w: [_user_folder(w / "mine")],
         lambda w: ["aggregate", str(w / "city"), "--out", str(w / "mine")],
         ("--out", "is a folder, where a file")),
    Case("aggregate onto a file of the user's", lambda w: [_user_file(w / "notes.csv")],
         lambda w: ["aggregate", str(w / "city"), "--out", str(w / "notes.csv")],
         ("--out", "a file that urbanmoe did not write")),
    Case("aggregate onto a summary the user edited",
         lambda w: [_edited(_a_summary(w))],
         lambda w: ["aggregate", str(w / "runs"), "--out", str(w / "summary.csv")],
         ("--out", "changed since urbanmoe wrote it")),
    Case("describe onto the dataset's parent", _nothing,
         lambda w: ["describe", "--quiet", "--dataset", str(w / "city"), "--out", str(w),
                    "--cache", str(w / "cache/llm")], ("--out", "contains the input")),
    Case("describe with its cache inside the dataset", _nothing,
         lambda w: ["describe", "--quiet", "--dataset", str(w / "city"), "--out",
                    str(w / "described"), "--cache", str(w / "city/llm")],
         ("--cache", "lies inside the input")),
    Case("features into a folder of the user's", lambda w: [_user_folder(w / "mine")],
         lambda w: ["features", "--config", str(CONFIG), "--quiet", "--dataset",
                    str(w / "city"), "--out", str(w / "mine")], ("--out", "did not write")),
    Case("report over a file of the user's", lambda w: [_user_file(w / "rep.md")],
         lambda w: ["report", "--dataset", str(w / "city"), "--out", str(w / "rep")],
         ("--out", "rep.md", "did not write")),
    Case("claims over a file of the user's", lambda w: [_user_file(w / "figs/README.md")],
         lambda w: ["claims", "--figures", str(w / "figs"), "--out", str(w / "figs/README.md")],
         ("--out", "did not write")),
    Case("provenance over the configuration", _nothing,
         lambda w: ["provenance", "--config", str(CONFIG), "--out", str(CONFIG), "--artifact",
                    str(w / "city/regions.csv"), "--runs", str(w / "city")],
         ("--out", "is the input")),
    Case("track's record inside the run it reads", lambda w: [_a_run(w), w / "runs"],
         lambda w: ["track", str(w / "runs/seed0"), "--experiment", "x", "--record",
                    str(w / "runs/seed0/metrics.json")], ("--record", "lies inside the input")),
    Case("predict into a folder of the user's",
         lambda w: [_a_run(w), w / "runs", _user_folder(w / "mine")],
         lambda w: ["predict", "--quiet", "--runs", str(w / "runs"), "--out", str(w / "mine"),
                    *quick_sets(w)], ("--out", "did not write")),
    Case("predict's maps into the dataset folder", lambda w: [_a_run(w), w / "runs"],
         lambda w: ["predict", "--quiet", "--runs", str(w / "runs"), "--out", str(w / "pred"),
                    "--maps", str(w / "city"), *quick_sets(w)], ("--maps", "is the input")),
    Case("predict's maps over a figure of the user's",
         lambda w: [_a_run(w), w / "runs", _user_file(w / "maps/BAD-ridge-residuals.pdf")],
         lambda w: ["predict", "--quiet", "--runs", str(w / "runs"), "--out", str(w / "pred"),
                    "--maps", str(w / "maps"), *quick_sets(w)],
         ("BAD-ridge-residuals.pdf", "did not write")),
    Case("synth beside a folder of the user's", lambda w: [_user_folder(w / "bench/DC")],
         lambda w: ["synth", "--config", str(CONFIG), "--quiet", "--out", str(w / "bench")],
         ("bench/DC", "did not write")),
    Case("import-urbanclip inside the city it reads", _nothing,
         lambda w: ["import-urbanclip", "--city-dir", str(w / "city"), "--out",
                    str(w / "city/out")], ("--out", "lies inside the input")),
    Case("build onto its own imagery", lambda w: [_user_file(w / "s2.tif")],
         lambda w: ["build", "--city", "DC", "--imagery", str(w / "s2.tif"), "--pois",
                    str(w / "p.csv"), "--label", f"carbon={w / 'c.tif'}:sum:t", "--out",
                    str(w / "s2.tif")], ("--out", "is the input")),
]


def _user_file(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("the user's own\n")
    return path


def _link(link: Path, target: Path) -> Path:
    link.symlink_to(target)
    return link


def _edited(path: Path) -> Path:
    with open(path, "a") as fh:
        fh.write("my own line\n")
    return path


def test_there_are_enough_cases() -> None:
    assert len(CASES) >= 25 and len({c.name for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_refused_before_any_work_and_nothing_lost(case: Case, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    city = small_city(tmp_path / "city")
    victims = case.scene(tmp_path)
    capsys.readouterr()
    expect_refusal(case.argv(tmp_path), case.says, capsys,
                   watch=[city, CONFIG, *victims], skip=("cache", "llm"))
    for victim in victims:  # every file of the victim is still there
        assert victim.exists() or victim.is_symlink()
    assert not (tmp_path / "pred").exists() and not (tmp_path / "bench/SH").exists()


def test_what_the_project_wrote_is_rewritten(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    """Rerunning a verb onto its own output replaces it (run folder, summary, predictions,
    maps, data report); an empty folder is fair game too."""
    small_city(tmp_path / "city")
    (tmp_path / "runs/seed0").mkdir(parents=True)  # empty: nothing to lose
    for _ in range(2):
        assert main(_train(tmp_path, tmp_path / "runs/seed0")) == 0
        assert main(["aggregate", str(tmp_path / "runs"), "--out",
                     str(tmp_path / "summary.csv")]) == 0
        assert main(["predict", "--quiet", "--runs", str(tmp_path / "runs"), "--out",
                     str(tmp_path / "pred"), "--maps", str(tmp_path / "maps"),
                     *quick_sets(tmp_path)]) == 0
        assert main(["report", "--dataset", str(tmp_path / "city"), "--out",
                     str(tmp_path / "rep")]) == 0
    marker = yaml.safe_load((tmp_path / "runs/seed0/.urbanmoe").read_text())
    assert marker["kind"] == "run" and "metrics.json" in marker["files"]
    assert sorted(p.name for p in (tmp_path / "maps").iterdir()) == [
        ".urbanmoe-written", "BAD-ridge-predicted.pdf", "BAD-ridge-predicted.png",
        "BAD-ridge-residuals.pdf", "BAD-ridge-residuals.png"]
    assert err_free(capsys)


def err_free(capsys: pytest.CaptureFixture[str]) -> bool:
    return "urbanmoe: error" not in capsys.readouterr().err


def test_a_cache_entry_is_never_replaced(tmp_path: Path) -> None:
    """A cache entry is keyed by what it holds: where one stands, a second writer keeps it."""
    from urbanmoe.io import atomic_path

    entry = tmp_path / "cache/entry.bin"
    for payload in (b"first", b"second"):
        with atomic_path(entry, "cache") as tmp:
            tmp.write_bytes(payload)
    assert entry.read_bytes() == b"first"
    assert not (tmp_path / "cache/.urbanmoe-written").exists()  # caches keep no ledger


def test_a_killed_replacement_leaves_a_file_the_ledger_still_knows(tmp_path: Path) -> None:
    """Between the ledger's record and the rename, both the old and the new bytes are
    recognised, so a writer killed there leaves nothing that blocks the next write."""
    from urbanmoe import ownership
    from urbanmoe.io import write_text

    path = tmp_path / "table.csv"
    write_text(path, "a\n1\n", "table")
    old = ownership.sha256(path)
    ownership.record_file(path, "table", "0" * 64, previous=old)  # as if killed after this
    assert ownership.refusal(path, "table", folder=False) is None
    write_text(path, "a\n2\n", "table")
    assert path.read_text() == "a\n2\n"


def test_a_full_device_is_one_line_and_leaves_nothing(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """A write that runs out of room (here a file-size limit, which fails the write exactly
    as a full disk does) names the output; its temporary is removed and nothing is left."""
    import subprocess
    import sys

    small_city(tmp_path / "city")
    code = (
        "import resource, signal, sys\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (60_000, 60_000))\n"
        "from urbanmoe.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n")
    argv = _train(tmp_path, tmp_path / "runs/seed0")
    argv[argv.index("model.name=ridge")] = "model.name=urbanmoe"  # a model.pt over the limit
    done = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True)
    lines = [x for x in done.stderr.splitlines() if x.startswith("urbanmoe:")]
    assert done.returncode == 2, done.stderr[-2000:]
    assert len(lines) == 1 and "seed0: no room left on the device" in lines[0], done.stderr
    assert not (tmp_path / "runs/seed0").exists()
    assert [p.name for p in (tmp_path / "runs").iterdir()] == []  # the temporary is gone


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root")
def test_a_really_full_disk(tmp_path: Path) -> None:
    """The same on a real full file system (a 2 MB tmpfs), where torch's writer hides the
    errno ("unexpected pos"): one line naming the output, nothing left."""
    import subprocess
    import sys

    small = tmp_path / "small"
    small.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(small)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        small_city(tmp_path / "city")
        argv = _train(tmp_path, small / "seed0")
        argv[argv.index("model.name=ridge")] = "model.name=urbanmoe"
        (small / "filler").write_bytes(b"\0" * (2 * 1024 * 1024 - 100_000))
        done = subprocess.run([sys.executable, "-c", "import sys; from urbanmoe.cli import main; "
                               "sys.exit(main(sys.argv[1:]))", *argv],
                              capture_output=True, text=True)
        lines = [x for x in done.stderr.splitlines() if x.startswith("urbanmoe:")]
        assert done.returncode == 2, done.stderr[-2000:]
        assert len(lines) == 1 and "no room left on the device" in lines[0], done.stderr
        assert sorted(p.name for p in small.iterdir()) == ["filler"]
    finally:
        subprocess.run(["umount", str(small)], check=False)
