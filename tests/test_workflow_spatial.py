"""`snakemake spatial` on the tiny configuration, end to end (a file of its own, so that it runs
beside the paper target's test in the other test worker)."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import run_tiny_workflow


def test_spatial_target_runs_and_then_has_nothing_to_do(tmp_path: Path) -> None:
    """The spatial-context comparison and a transfer across a city, from nothing."""
    run_tiny_workflow(tmp_path, "--cores", "2", "spatial")
    table = (tmp_path / "paper_figures/spatial/spatial_context.md").read_text()
    assert "reference" in table and "transductive" in table and "lag in z" in table
    assert (tmp_path / "paper_figures/spatial/spatial_context_tasks.png").is_file()
    transfer = (tmp_path / "paper_figures/spatial/transfer.md").read_text()
    assert "DC-west->DC-east" in transfer and "Ridge" in transfer
    knn = json.loads((tmp_path / "results/transfer/DC.west_to_DC.east/knn/seed0/metrics.json")
                     .read_text())
    assert "has none" in knn["skipped"]
    assert "Nothing to be done" in run_tiny_workflow(tmp_path, "--cores", "2", "spatial", "-n")
