"""DVC versions the data products: push, clone afresh, pull, and Snakemake has nothing to redo.
A newcomer's pull (scripts/pull.py) on a fresh clone: one line per toolkit city, exit 0 offline."""

from __future__ import annotations

import functools
import hashlib
import http.server
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from urbanmoe.data.sources.urbanclip import CITIES, RAW_BASE

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
IMPORTS = Path("data/raw/urbanclip")
HAFUSION = Path("data/raw/hafusion")
HAFUSION_CITIES = ("data_Chi", "data_NY", "data_SF")
UNREACHABLE = "http://127.0.0.1:9"  # a proxy that refuses at once: no network, fast
GIT = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]


def _tiny_config() -> dict:
    """The project's configuration, cut down to one small synthetic city."""
    cfg = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    cfg["data"]["datasets"] = ["DC"]
    cfg["synth"].update(cities=["DC"], tile_size=8)
    return cfg


def _env(**extra: str) -> dict[str, str]:
    """This environment with the virtualenv's tools first on PATH, no proxy settings, and
    ``extra``."""
    env = {k: v for k, v in os.environ.items() if k.lower() not in
           ("http_proxy", "https_proxy", "all_proxy", "no_proxy")}
    return {**env, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", **extra}


def _run(cmd: list[str], cwd: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=cwd, env=_env(**extra), capture_output=True, text=True)


def _sh(cmd: list[str], cwd: Path, **extra: str) -> str:
    done = _run(cmd, cwd, **extra)
    assert done.returncode == 0, f"{' '.join(cmd)}\n{done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


def _pull(clone: Path, **extra: str) -> tuple[int, str]:
    """The newcomer's pull in ``clone``: exit status and output."""
    done = _run([sys.executable, "scripts/pull.py"], clone, **extra)
    return done.returncode, done.stdout + done.stderr


def _copy_project(repo: Path, imports: bool) -> None:
    """The files a clone needs for DVC and the workflow; with ``imports``, the committed toolkit
    import stages and the project's own .gitignore files too."""
    repo.mkdir()
    for name in ("dvc.yaml", "Snakefile", ".dvcignore"):
        shutil.copy(ROOT / name, repo / name)
    for name in ("workflow", "src", ".dvc"):
        shutil.copytree(ROOT / name, repo / name, symlinks=True,
                        ignore=shutil.ignore_patterns("__pycache__", "tmp", "cache"))
    (repo / "scripts").mkdir()
    shutil.copy(ROOT / "scripts/pull.py", repo / "scripts/pull.py")
    if imports:
        shutil.copy(ROOT / ".gitignore", repo / ".gitignore")
        for src in [*(ROOT / IMPORTS).glob("*/*"), *(ROOT / HAFUSION).glob("*/*")]:
            if src.suffix == ".dvc" or src.name == ".gitignore":
                (repo / src.relative_to(ROOT)).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(src, repo / src.relative_to(ROOT))


def _commit_and_clone(repo: Path, clone: Path) -> None:
    _sh(["git", "init", "-q"], repo)
    _sh([*GIT, "add", "-A"], repo)
    _sh([*GIT, "commit", "-qm", "project"], repo)
    _sh(["git", "clone", "-q", str(repo), str(clone)], repo.parent)


@pytest.mark.skipif(shutil.which("git") is None, reason="git is needed")
def test_push_clone_pull_then_nothing_to_rebuild(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    _copy_project(repo, imports=False)
    (repo / "config").mkdir()
    (repo / "config/config.yaml").write_text(yaml.safe_dump(_tiny_config()))
    (repo / ".gitignore").write_text("/data/\n.snakemake/\nlogs/\n")
    _sh(["git", "init", "-q"], repo)
    _sh([*GIT, "add", "-A"], repo)
    _sh([*GIT, "commit", "-qm", "project"], repo)

    _sh(["dvc", "repro", "-q"], repo)
    _sh(["dvc", "push", "-q"], repo)
    remote = tmp_path / "urbanmoe-dvc-remote"  # ../../ from .dvc/config: outside the repo
    assert remote.is_dir() and any(remote.rglob("*"))
    _sh([*GIT, "add", "dvc.lock"], repo)
    _sh([*GIT, "commit", "-qm", "data products"], repo)

    clone = tmp_path / "clone"
    _sh(["git", "clone", "-q", str(repo), str(clone)], tmp_path)
    assert not (clone / "data").exists()
    _sh(["dvc", "pull", "-q"], clone)
    assert (clone / "data/synthetic/DC/regions.parquet").is_file()
    shutil.rmtree(clone / "data")  # the newcomer's pull restores them the same way
    status, out = _pull(clone)
    assert status == 0 and "data products (dvc.yaml): restored from the DVC remote" in out, out
    assert (clone / "data/synthetic/DC/regions.parquet").is_file()
    assert any((clone / "data/features/DC").glob("DC-image-*.parquet"))
    assert "up to date" in _sh(["dvc", "status"], clone)
    dry = _sh(["snakemake", "-n", "--cores", "1", "data/synthetic/DC", "data/features/DC"], clone)
    assert "Nothing to be done" in dry, dry


def _city_lines(out: str) -> dict[str, str]:
    """Each real city's line of the pull's output (the toolkit's and HAFusion's)."""
    lines = {c: [ln for ln in out.splitlines() if ln.startswith(f"{c}: ")]
             for c in (*CITIES, *HAFUSION_CITIES)}
    assert all(len(v) == 1 for v in lines.values()), out
    return {c: v[0] for c, v in lines.items()}


@pytest.mark.skipif(shutil.which("git") is None, reason="git is needed")
def test_fresh_clone_pull_offline_one_line_per_city(tmp_path: Path) -> None:
    repo, clone = tmp_path / "repo", tmp_path / "clone"
    _copy_project(repo, imports=True)
    shutil.copytree(ROOT / "config", repo / "config")
    _commit_and_clone(repo, clone)
    assert not (clone / "dvc.lock").exists()
    # DVC sees the committed import stages (data/ is not git-ignored as a whole)
    listed = _sh(["dvc", "status", "-R", str(IMPORTS / "Beijing")], clone)
    assert "Beijing.csv" in listed, listed

    status, out = _pull(clone, HTTPS_PROXY=UNREACHABLE, HTTP_PROXY=UNREACHABLE)
    assert status == 0, out
    assert "ERROR" not in out and "Traceback" not in out, out
    assert "data products (dvc.yaml): no dvc.lock records them" in out, out
    for city, line in _city_lines(out).items():
        assert line.startswith(f"{city}: not fetched, raw.githubusercontent.com unreachable"), out
    assert len(out.strip().splitlines()) == 1 + len(CITIES) + len(HAFUSION_CITIES), out
    assert not _sh(["git", "status", "--porcelain"], clone).strip()  # nothing rewritten


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A local HTTP server standing in for the toolkit's host: its base URL and its folder."""
    root = tmp_path / "served"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a, **k: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", root
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.skipif(shutil.which("git") is None, reason="git is needed")
def test_pull_fetches_a_served_city_and_fails_on_a_missing_file(
        tmp_path: Path, served: tuple[str, Path]) -> None:
    base, folder = served
    repo, clone = tmp_path / "repo", tmp_path / "clone"
    _copy_project(repo, imports=True)
    shutil.copytree(ROOT / "config", repo / "config")
    for city in ("Beijing", "Shanghai"):  # their host is the local server
        for stage in (repo / IMPORTS / city).glob("*.dvc"):
            stage.write_text(stage.read_text().replace(RAW_BASE, base))
    served_files = {"integrate/output/Beijing/Beijing.csv": b"a,b\n1,2\n",
                    "caption/pairs/Beijing_captions.json": b"[]\n",
                    "integrate/output/Shanghai/Shanghai.csv": b"a,b\n3,4\n"}  # no captions
    for rel, data in served_files.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(data)
    _commit_and_clone(repo, clone)

    offline = {"HTTPS_PROXY": UNREACHABLE, "HTTP_PROXY": UNREACHABLE, "NO_PROXY": "127.0.0.1"}
    status, out = _pull(clone, **offline)
    lines = _city_lines(out)
    assert status == 1, out  # a file the host does not have is a real failure
    assert lines["Beijing"].startswith("Beijing: fetched Beijing.csv, Beijing_captions.json")
    assert lines["Shanghai"].startswith("Shanghai: FAILED to fetch"), out
    assert "Shanghai_captions.json' does not exist" in out, out
    for city in ("Guangzhou", "Shenzhen"):
        assert lines[city].startswith(f"{city}: not fetched, raw.githubusercontent.com"), out
    got = clone / IMPORTS / "Beijing/Beijing.csv"
    assert got.read_bytes() == served_files["integrate/output/Beijing/Beijing.csv"]
    stage = yaml.safe_load((clone / IMPORTS / "Beijing/Beijing.csv.dvc").read_text())
    assert stage["outs"][0]["md5"] == hashlib.md5(got.read_bytes()).hexdigest()

    (folder / "caption/pairs/Shanghai_captions.json").write_bytes(b"[]\n")
    status, out = _pull(clone, **offline)
    lines = _city_lines(out)
    assert status == 0 and "ERROR" not in out, out
    assert lines["Beijing"] == "Beijing: present (Beijing.csv, Beijing_captions.json)", out
    assert lines["Shanghai"].startswith("Shanghai: fetched"), out


@pytest.mark.skipif(shutil.which("git") is None, reason="git is needed")
def test_pull_fetches_a_hafusion_city_that_then_imports(
        tmp_path: Path, served: tuple[str, Path]) -> None:
    """HAFusion's committed stages fetch every file of a city from its host (here a local
    server holding a made-up city of the same files), and the fetched folder imports."""
    from test_hafusion import fake_city

    from urbanmoe.data.sources.hafusion import RAW_BASE as HAFUSION_BASE

    base, folder = served
    repo, clone = tmp_path / "repo", tmp_path / "clone"
    _copy_project(repo, imports=True)
    shutil.copytree(ROOT / "config", repo / "config")
    for stage in (repo / HAFUSION / "data_Chi").glob("*.dvc"):
        stage.write_text(stage.read_text().replace(HAFUSION_BASE, base))
    fake_city(folder / "data_Chi")
    _commit_and_clone(repo, clone)

    offline = {"HTTPS_PROXY": UNREACHABLE, "HTTP_PROXY": UNREACHABLE, "NO_PROXY": "127.0.0.1"}
    status, out = _pull(clone, **offline)
    line = _city_lines(out)["data_Chi"]
    assert status == 0 and line.startswith("data_Chi: fetched check_counts.npy"), out
    fetched = clone / HAFUSION / "data_Chi"
    for served_file in (folder / "data_Chi").iterdir():
        assert (fetched / served_file.name).read_bytes() == served_file.read_bytes()
    status_lines = _sh(["git", "status", "--porcelain", "--untracked-files=all"], clone)
    assert "??" not in status_lines, status_lines  # the data is git-ignored; .dvc files get md5s
    done = _run([str(BIN / "urbanmoe"), "import-hafusion", "--city-dir", str(fetched), "--out",
                 str(tmp_path / "Chi")], clone)
    assert done.returncode == 0, done.stderr
