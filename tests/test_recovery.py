"""Snakemake killed with kill -9 mid-run: a plain rerun refuses, and the one
documented command (scripts/resume.sh, `make resume`) stops the jobs left running, unlocks and
remakes what was cut short."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from conftest import snakemake_call

ROOT = Path(__file__).resolve().parents[1]
TARGET = "results/runs/DC/random/urbanmoe/seed1"
JOB_LOG = "logs/train/runs/DC/random/urbanmoe.log"


def _snakemake(work: Path, *args: str) -> subprocess.CompletedProcess[str]:
    cmd, env = snakemake_call(work, *args)
    return subprocess.run(cmd, env=env, capture_output=True, text=True)


def _job_processes(work: Path) -> list[int]:
    """Processes of the workflow's jobs (urbanmoe) running in ``work``."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cwd = os.readlink(proc / "cwd")
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if cwd == str(work) and "urbanmoe train" in cmd:
            found.append(int(proc.name))
    return found


def test_kill_9_mid_run_recovers_with_one_command(tmp_path: Path) -> None:
    work = tmp_path.resolve()
    shutil.copytree(ROOT / ".test/config", work / "config")
    cmd, env = snakemake_call(work, "--cores", "1", TARGET)
    run = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while not _job_processes(work):  # the training job has started
        assert run.poll() is None, "snakemake ended before its training job started"
        assert time.monotonic() < deadline, "the training job never started"
        time.sleep(0.05)
    run.send_signal(signal.SIGKILL)
    run.wait()
    assert _job_processes(work), "the job should outlive the killed snakemake (an orphan)"

    # a plain rerun refuses: at the lock while the orphan runs, or, when the orphan has written
    # its outputs before Snakemake reads the DAG, at the outputs it marked incomplete
    plain = _snakemake(work, "--cores", "1", TARGET)
    said = plain.stdout + plain.stderr
    assert plain.returncode != 0 and ("locked" in said or "Incomplete files" in said), said

    done = subprocess.run([str(ROOT / "scripts/resume.sh"), "-d", str(work), "--cores", "1",
                           TARGET], env=snakemake_call(work)[1], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert not _job_processes(work)
    assert (work / TARGET / "metrics.json").is_file()
    assert (work / JOB_LOG).is_file()
    assert not list((work / TARGET).parent.glob(".tmp-*"))
    assert "Nothing to be done" in _snakemake(work, "--cores", "1", "-n", TARGET).stdout


def test_resume_refuses_while_snakemake_still_runs(tmp_path: Path) -> None:
    work = tmp_path.resolve()
    shutil.copytree(ROOT / ".test/config", work / "config")
    # a stand-in for a live run: a process called snakemake whose working folder is `work`
    fake = work / "bin" / "snakemake"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\nexec sleep 30\n")
    fake.chmod(0o755)
    live = subprocess.Popen(["/bin/bash", "-c", f"exec -a '{fake} --cores 1' sleep 30"], cwd=work)
    try:
        done = subprocess.run([str(ROOT / "scripts/resume.sh"), "-d", str(work), "--cores", "1"],
                              env=snakemake_call(work)[1], capture_output=True, text=True)
    finally:
        live.kill()
        live.wait()
    assert done.returncode == 1
    assert "still running" in done.stderr and len(done.stderr.strip().splitlines()) == 1
