"""provenance.json: what made each generated table and figure (after showyourwork, and more).

For every artifact: its checksum and maker; for the set: the git commit and dirty flag, the
configuration hash, the checksum of every dataset table, the seeds, and the MLflow run ids of
the runs behind it.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from urbanmoe.config import config_hash
from urbanmoe.errors import InputError
from urbanmoe.io import sha256_file
from urbanmoe.readers import read_json, read_metrics


def git_state(cwd: Path | None = None) -> dict[str, Any]:
    """Commit and dirty flag of the checkout (``unknown`` outside one)."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True,
                                text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=cwd, capture_output=True,
                               text=True, check=True).stdout.strip() != ""
    except (OSError, subprocess.CalledProcessError):
        return {"commit": "unknown", "dirty": None}
    return {"commit": commit, "dirty": dirty}


#: artifact name prefix -> what draws it (when the caller does not say)
MADE_BY = {"table2": "notebooks/table2.ipynb", "published_vs_reproduced.": "notebooks/table2.ipynb",
           "published_vs_reproduced_table1": "notebooks/dataset.ipynb",
           "table1": "notebooks/dataset.ipynb", "figure6": "notebooks/dataset.ipynb",
           "table3": "notebooks/ablations.ipynb", "table4": "notebooks/ablations.ipynb",
           "table5": "notebooks/ablations.ipynb", "figure3": "notebooks/ablations.ipynb",
           "published_vs_reproduced_table": "notebooks/ablations.ipynb",
           "ablations_summary": "notebooks/ablations.ipynb",
           "figure4": "notebooks/experts.ipynb", "figure5": "notebooks/experts.ipynb",
           "sparsity": "notebooks/experts.ipynb", "claims": "urbanmoe claims"}


#: A ``urbanmoe track --record`` file: one entry per mirrored run folder.
RECORDS_SCHEMA = {"type": "array", "items": {
    "type": "object", "required": ["run_dir", "run_id"],
    "properties": {"run_dir": {"type": "string"}, "run_id": {"type": "string"}}}}


def made_by_of(artifact: Path | str) -> str | None:
    """The notebook or command that draws an artifact, by its file name (longest prefix)."""
    name = Path(artifact).name
    hits = [k for k in MADE_BY if name.startswith(k)]
    return MADE_BY[max(hits, key=len)] if hits else None


def provenance(artifacts: Iterable[Path], runs: Iterable[Path], records: Iterable[Path],
               cfg: dict[str, Any], made_by: str | None = None) -> dict[str, Any]:
    """The provenance record of some artifacts drawn from some run folders."""
    run_ids: dict[str, str] = {}
    for record in records:
        for rec in read_json(Path(record), error=InputError, schema=RECORDS_SCHEMA):
            run_ids[str(Path(rec["run_dir"]))] = rec["run_id"]
    run_rows = []
    for run in runs:
        m = read_metrics(Path(run) / "metrics.json")
        run_rows.append({
            "run_dir": str(run), "dataset": m["dataset"], "model": m["model"], "seed": m["seed"],
            "config_hash": (m.get("provenance") or {}).get("config_hash"),
            "table_sha256": (m.get("provenance") or {}).get("table_sha256"),
            **({"skipped": m["skipped"]} if "skipped" in m else {}),
            "mlflow_run_id": run_ids.get(str(Path(run))),
        })
    datasets = {r["dataset"]: r["table_sha256"] for r in run_rows if r["table_sha256"]}
    return {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "git": git_state(),
        "config_hash": config_hash(cfg),
        "artifacts": {str(a): {"sha256": sha256_file(Path(a)), "made_by": made_by or made_by_of(a)}
                      for a in artifacts},
        "data_sha256": dict(sorted(datasets.items())),
        "seeds": sorted({r["seed"] for r in run_rows}),
        "runs": run_rows,
    }
