"""The workflow through a real SLURM scheduler (opt-in: URBANMOE_CLUSTER_TESTS=1): the tiny
configuration with `--profile profiles/slurm` on the one-node cluster that
scripts/slurm-local.sh starts. Every job goes through sbatch (sacct lists it), each job's request
carries its rule's threads, memory and runtime, and the outputs equal the local run's."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest
from conftest import run_tiny_workflow, same_outputs

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(
    os.environ.get("URBANMOE_CLUSTER_TESTS") != "1",
    reason="opt-in (URBANMOE_CLUSTER_TESTS=1): needs a SLURM cluster (make cluster: root, "
    "Debian's slurm-wlm, slurmdbd, munge, mariadb-server), the executor plugin "
    "(pip install -e '.[cluster]') and about 15 minutes")

SACCT = "JobIDRaw,JobName%40,Comment%200,Partition,ReqCPUS,ReqMem,Timelimit,State"


def _planned(work: Path) -> list[tuple[str, int, int, int]]:
    """(rule, threads, mem_mb, runtime) of every job a dry run plans, but the target rule
    `all`, which runs no command (Snakemake finishes it without submitting a job)."""
    out = run_tiny_workflow(work, "--profile", str(ROOT / "profiles/slurm"), "-n")
    jobs = []
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", out):
        head = re.match(r"(local)?rule (\w+):", block)
        if not head or "jobid:" not in block or head.group(2) == "all":
            continue
        threads = re.search(r"\n\s+threads: (\d+)", block)
        mem = re.search(r"mem_mb=(\d+)", block)
        runtime = re.search(r"runtime=(\d+)", block)
        jobs.append((head.group(2), int(threads.group(1)) if threads else 1,
                     int(mem.group(1)), int(runtime.group(1))))
    return jobs


def _minutes(limit: str) -> int:
    """sacct's Timelimit ([D-]HH:MM:SS) in minutes."""
    days, _, clock = limit.rpartition("-")
    h, m, s = (int(x) for x in clock.split(":"))
    return int(days or 0) * 1440 + h * 60 + m + (s > 0)


def test_tiny_workflow_through_slurm_matches_the_local_run(
        tmp_path: Path, tiny_reference: Path) -> None:
    assert shutil.which("sbatch") and subprocess.run(["sinfo"]).returncode == 0, \
        "no SLURM cluster answers: make cluster"
    work = tmp_path / "work"
    work.mkdir()
    planned = _planned(work)
    assert planned, "the dry run planned no job"
    since = time.strftime("%Y-%m-%dT%H:%M:%S")
    start = time.monotonic()
    run_tiny_workflow(work, "--profile", str(ROOT / "profiles/slurm"))
    print(f"\nthe tiny workflow through SLURM: {time.monotonic() - start:.0f} s")

    rows = subprocess.run(["sacct", "-X", "-P", "-n", "-S", since, f"--format={SACCT}"],
                          capture_output=True, text=True, check=True).stdout.splitlines()
    jobs = [dict(zip(SACCT.replace("%40", "").replace("%200", "").split(","), r.split("|"),
                     strict=True)) for r in rows]
    names = {j["JobName"] for j in jobs if j["Comment"].startswith("rule_")}
    ours = [j for j in jobs if j["JobName"] in names]  # this run's jobs: one run id as name
    print(f"\n{len(ours)} SLURM jobs; sacct -X -S {since} --format={SACCT}:")
    print("\n".join(rows))
    assert all(j["State"] == "COMPLETED" for j in ours), [j for j in ours
                                                          if j["State"] != "COMPLETED"]
    # every planned job went through sbatch, with its rule's request
    requested = Counter((j["Comment"].removeprefix("rule_").split("_wildcards_")[0],
                         int(j["ReqCPUS"]), int(j["ReqMem"].rstrip("M")),
                         _minutes(j["Timelimit"])) for j in ours)
    assert requested == Counter(planned)
    same_outputs(work, tiny_reference)
