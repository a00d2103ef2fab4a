"""The project's image, for real (opt-in: URBANMOE_CONTAINER_TESTS=1): it builds with docker or
podman, and the tiny workflow run inside it (uid 1000, no network) makes every artifact that the
run outside makes, with the same Table 2."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from conftest import same_outputs

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(
    os.environ.get("URBANMOE_CONTAINER_TESTS") != "1",
    reason="opt-in (URBANMOE_CONTAINER_TESTS=1): needs docker or podman, a built image "
    "(make image) and about 15 minutes; too heavy for every CI run")


def _script(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(ROOT / "scripts" / args[0]), *args[1:]],
                          capture_output=True, text=True)


def test_image_is_tagged_as_the_workflow_names_it() -> None:
    tag = _script("image.sh", "tag")
    assert tag.returncode == 0, tag.stderr
    engine = _script("image-engine.sh").stdout.strip()
    inspect = subprocess.run([engine, "image", "inspect", tag.stdout.strip()],
                             capture_output=True, text=True)
    assert inspect.returncode == 0, f"{tag.stdout.strip()} is not built: make image"


def test_tiny_workflow_in_the_image_matches_the_run_outside(
        tmp_path: Path, tiny_reference: Path) -> None:
    done = _script("image-workflow.sh", str(tmp_path))
    assert done.returncode == 0, done.stdout[-5000:] + done.stderr[-5000:]
    print("\n" + done.stdout.strip().splitlines()[-1])  # the wall time
    same_outputs(tmp_path / "work", tiny_reference)
