"""The project's set-up files stay in step; every CLI verb answers --help."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from urbanmoe.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]


def test_environment_yml_pins_exactly_what_pyproject_pins() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = {*project["dependencies"], *project["optional-dependencies"]["dev"]}
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert {p for p in pip if not p.startswith("-e")} == wanted
    assert all("==" in p for p in wanted)


def test_top_level_layout_the_users_asked_for() -> None:
    for name in ("Snakefile", "dvc.yaml", "environment.yml", "Dockerfile", "README.md",
                 "workflow", "src", "notebooks", "results", "paper_figures", ".ci/run"):
        assert (ROOT / name).exists(), name


@pytest.mark.parametrize("verb", sorted(build_parser()._subparsers._group_actions[0].choices))
def test_every_verb_has_help(verb: str) -> None:
    out = subprocess.run([sys.executable, "-m", "urbanmoe.cli", verb, "--help"],
                         capture_output=True, text=True, check=True).stdout
    assert f"usage: urbanmoe {verb}" in out and "--set" in out


def test_container_image_is_pinned_non_root_and_named_by_the_workflow() -> None:
    docker = (ROOT / "Dockerfile").read_text()
    base = next(line.split("=", 1)[1] for line in docker.splitlines()
                if line.startswith("ARG BASE_IMAGE="))  # the default base; FROM ${BASE_IMAGE}
    assert ":" in base and not base.endswith(":latest")
    assert "FROM ${BASE_IMAGE}" in docker
    users = [line.split()[1] for line in docker.splitlines() if line.startswith("USER ")]
    assert users and users[-1] not in ("root", "0")
    assert "pip install" in docker and "COPY src" in docker
    image = yaml.safe_load((ROOT / "config/config.yaml").read_text())["workflow"]["container"]
    assert image.startswith("docker://") and image.rsplit(":", 1)[1][0].isdigit()
    assert 'container: config["workflow"]["container"]' in (ROOT / "workflow/Snakefile").read_text()


def _profile(name: str) -> dict:
    return yaml.safe_load((ROOT / "profiles" / name / "config.yaml").read_text())


def test_profiles_for_apptainer_gpu_and_slurm() -> None:
    load = _profile
    assert load("apptainer")["software-deployment-method"] == "apptainer"
    assert "--nv" in load("gpu")["apptainer-args"]
    slurm = load("slurm")
    assert slurm["executor"] == "slurm" and slurm["default-resources"]["slurm_partition"]
    # jobs run where snakemake runs (add --sdm apptainer for the image); a crash is recoverable
    assert "software-deployment-method" not in slurm
    for name in ("apptainer", "gpu", "slurm"):
        assert load(name)["rerun-incomplete"] is True and load(name)["retries"] >= 1
