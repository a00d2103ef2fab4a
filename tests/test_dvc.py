"""DVC versions the data products: push, clone afresh, pull, and Snakemake has nothing to redo."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _tiny_config() -> dict:
    """The project's configuration, cut down to one small synthetic city."""
    cfg = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    cfg["data"]["datasets"] = ["DC"]
    cfg["synth"].update(cities=["DC"], tile_size=8)
    return cfg


def _sh(cmd: list[str], cwd: Path) -> str:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    assert done.returncode == 0, f"{' '.join(cmd)}\n{done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


@pytest.mark.skipif(shutil.which("git") is None, reason="git is needed")
def test_push_clone_pull_then_nothing_to_rebuild(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    for name in ("dvc.yaml", "Snakefile", ".dvcignore"):
        shutil.copy(ROOT / name, repo / name)
    for name in ("workflow", "src", ".dvc"):
        shutil.copytree(ROOT / name, repo / name, symlinks=True,
                        ignore=shutil.ignore_patterns("__pycache__", "tmp", "cache"))
    (repo / "config").mkdir()
    (repo / "config/config.yaml").write_text(yaml.safe_dump(_tiny_config()))
    (repo / ".gitignore").write_text("/data/\n.snakemake/\nlogs/\n")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    _sh(["git", "init", "-q"], repo)
    _sh([*git, "add", "-A"], repo)
    _sh([*git, "commit", "-qm", "project"], repo)

    _sh(["dvc", "repro", "-q"], repo)
    _sh(["dvc", "push", "-q"], repo)
    remote = tmp_path / "urbanmoe-dvc-remote"  # ../../ from .dvc/config: outside the repo
    assert remote.is_dir() and any(remote.rglob("*"))
    _sh([*git, "add", "dvc.lock"], repo)
    _sh([*git, "commit", "-qm", "data products"], repo)

    clone = tmp_path / "clone"
    _sh(["git", "clone", "-q", str(repo), str(clone)], tmp_path)
    assert not (clone / "data").exists()
    _sh(["dvc", "pull", "-q"], clone)
    assert (clone / "data/synthetic/DC/regions.parquet").is_file()
    assert any((clone / "data/features/DC").glob("DC-image-*.parquet"))
    assert "up to date" in _sh(["dvc", "status"], clone)
    dry = _sh(["snakemake", "-n", "--cores", "1", "data/synthetic/DC", "data/features/DC"], clone)
    assert "Nothing to be done" in dry, dry
