"""The shell tools around the workflow, where they need no engine, cluster or GPU: the image's
tag comes from workflow.container, what workflow.container may name, and the one-line refusals
of the tools whose engine is missing."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from urbanmoe.config import ConfigError, load_config

ROOT = Path(__file__).resolve().parents[1]


def _run(*cmd: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, **(env or {})})


def test_image_tag_is_what_the_workflow_names() -> None:
    ref = yaml.safe_load((ROOT / "config/config.yaml").read_text())["workflow"]["container"]
    tag = _run(str(ROOT / "scripts/image.sh"), "tag")
    assert tag.returncode == 0, tag.stderr
    assert f"docker://{tag.stdout.strip()}" == ref


@pytest.mark.parametrize("ref", ["docker://registry.example/urbanmoe:0.1.0", "urbanmoe.sif",
                                 "/shared/images/urbanmoe.sif", "docker-daemon://urbanmoe:0.1"])
def test_workflow_container_takes_a_reference_or_a_local_sif(ref: str) -> None:
    assert load_config(None, [f"workflow.container={ref}"])["workflow"]["container"] == ref


def test_workflow_container_refuses_a_bare_name() -> None:
    with pytest.raises(ConfigError, match="workflow.container"):
        load_config(None, ["workflow.container=urbanmoe/urbanmoe:0.1.0"])


@pytest.mark.skipif(bool(shutil.which("apptainer") or shutil.which("singularity")),
                    reason="apptainer is installed: make image-sif would build")
def test_image_sif_without_apptainer_says_so_in_one_line(tmp_path: Path) -> None:
    done = _run(str(ROOT / "scripts/image.sh"), "sif", str(tmp_path / "u.sif"))
    assert done.returncode == 1 and not (tmp_path / "u.sif").exists()
    assert done.stderr.count("\n") == 1 and "apptainer" in done.stderr


def test_gpu_check_without_cuda_refuses_in_one_line() -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA is here: the check would run for real")
    done = _run(str(ROOT / "benchmarks/gpu_check.sh"), env={"PYTHON": sys.executable})
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and "no CUDA device" in done.stderr


def test_resume_in_a_missing_folder_says_so_in_one_line(tmp_path: Path) -> None:
    done = _run(str(ROOT / "scripts/resume.sh"), "-d", str(tmp_path / "missing"), "-n")
    assert done.returncode == 1
    assert done.stderr == f"resume: {tmp_path / 'missing'}: no such folder\n"
