"""Where a Snakemake run's wall time went: by rule, by model, the longest jobs, the critical path.

Reads what a run leaves in its working folder (default: the current one):
- ``.snakemake/metadata/``: one record per output file (Snakemake's own bookkeeping), with the
  job's rule, inputs, start and end times; outputs of one job share its ``job_hash``;
- ``results/benchmarks/**.tsv``: the ``benchmark:`` directive of every rule (peak memory, and
  CPU time as Snakemake samples it: every second for 30 s, then every 30 s, so up to 30 s of a
  job's last stretch goes uncounted), named after the job's log (``logs/X.log`` ->
  ``results/benchmarks/X.tsv``).

The records describe the jobs that made the outputs now on disk, so after a full
``make paper`` from a fresh clone they are that run. Prints Markdown; asserts nothing.

    python benchmarks/profile_workflow.py [--dir RUN_FOLDER] [--cores 2] [--top 12]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
from pathlib import Path

import pandas as pd

from urbanmoe.report.tables import to_markdown


def read_jobs(run: Path) -> pd.DataFrame:
    """One row per finished job: rule, label, start, end, seconds, inputs, outputs, log."""
    jobs: dict[int, dict] = {}
    for rec_file in (run / ".snakemake/metadata").iterdir():
        try:
            rec = json.loads(rec_file.read_text())
            out = base64.b64decode(rec_file.name).decode()
        except (ValueError, UnicodeDecodeError):
            continue
        if rec.get("incomplete") or rec.get("starttime") is None or rec.get("endtime") is None:
            continue
        job = jobs.setdefault(rec["job_hash"], {
            "rule": rec["rule"], "start": rec["starttime"], "end": rec["endtime"],
            "inputs": rec.get("input") or [], "log": (rec.get("log") or [None])[0],
            "outputs": []})
        job["outputs"].append(out)
        job["end"] = max(job["end"], rec["endtime"])
    if not jobs:
        raise SystemExit(f"{run}/.snakemake/metadata: no finished jobs recorded")
    df = pd.DataFrame(jobs.values())
    df["seconds"] = df["end"] - df["start"]
    df["label"] = [_label(r.rule, r.log, r.outputs) for r in df.itertuples()]
    return df.sort_values("start", ignore_index=True)


def _label(rule: str, log: str | None, outputs: list[str]) -> str:
    if log and log.startswith("logs/"):
        return log[len("logs/"):].removesuffix(".log")
    return f"{rule}: {outputs[0]}"


def attach_benchmarks(run: Path, jobs: pd.DataFrame) -> pd.DataFrame:
    """CPU seconds and peak RSS (MB) from each job's benchmark file, where it has one."""
    cpu, rss = [], []
    for log in jobs["log"]:
        tsv = run / "results/benchmarks" / (log[len("logs/"):-len(".log")] + ".tsv") \
            if isinstance(log, str) and log.startswith("logs/") else None
        if tsv is not None and tsv.is_file():
            b = pd.read_csv(tsv, sep="\t", na_values=["-"])
            cpu.append(float(b["cpu_time"].iloc[-1]))
            rss.append(float(b["max_rss"].iloc[-1]))
        else:
            cpu.append(float("nan"))
            rss.append(float("nan"))
    return jobs.assign(cpu_s=cpu, max_rss_mb=rss)


def critical_path(jobs: pd.DataFrame) -> tuple[float, list[int]]:
    """The longest chain of dependent jobs by duration: no number of cores finishes sooner."""
    producer: dict[str, int] = {}
    for i, outs in enumerate(jobs["outputs"]):
        for out in outs:
            producer[os.path.normpath(out)] = i
    preds = [sorted({producer[p] for p in map(os.path.normpath, ins) if p in producer} - {i})
             for i, ins in enumerate(jobs["inputs"])]
    best: dict[int, tuple[float, int | None]] = {}
    for i in jobs.sort_values("end").index:  # a job ends after all it depends on
        before = max(((best[p][0], p) for p in preds[i] if p in best), default=(0.0, None))
        best[i] = (before[0] + float(jobs.at[i, "seconds"]), before[1])
    end = max(best, key=lambda i: best[i][0])
    path, node = [], end
    while node is not None:
        path.append(node)
        node = best[node][1]
    return best[end][0], path[::-1]


def model_of(label: str) -> str | None:
    """``train/runs/SH/random/urbanclip_mt`` -> ``runs: urbanclip_mt``; others None."""
    parts = label.split("/")
    if parts[0] not in ("train", "transfer") or len(parts) < 3:
        return None
    if parts[0] == "transfer":
        return f"transfer: {parts[-1]}"
    variant = parts[-1]
    return f"{parts[1]}: {variant.split('@')[0]}"


def _fmt(seconds: float) -> str:
    m, s = divmod(round(seconds), 60)
    return f"{m} min {s:02d} s" if m else f"{seconds:.1f} s"


def report(jobs: pd.DataFrame, cores: int, top: int) -> str:
    wall = float(jobs["end"].max() - jobs["start"].min())
    busy = float(jobs["seconds"].sum())
    lines = [f"- jobs: {len(jobs)}; wall time: **{_fmt(wall)}** "
             f"({pd.Timestamp(jobs['start'].min(), unit='s'):%Y-%m-%d %H:%M} UTC start)",
             f"- job time summed: {_fmt(busy)}, {busy / wall:.2f} jobs running on average "
             f"on {cores} cores"]
    length, path = critical_path(jobs)
    lines.append(f"- critical path: {_fmt(length)} over {len(path)} jobs "
                 "(the least wall time any number of cores allows)")
    by_rule = jobs.groupby("rule").agg(jobs=("seconds", "size"), wall_s=("seconds", "sum"),
                                       cpu_s=("cpu_s", "sum"), max_rss_mb=("max_rss_mb", "max"))
    by_rule["share"] = by_rule["wall_s"] / busy
    lines += ["", "By rule (job seconds summed):", "",
              _table(by_rule.sort_values("wall_s", ascending=False))]
    models = jobs.assign(model=jobs["label"].map(model_of)).dropna(subset=["model"])
    if len(models):
        by_model = models.groupby("model").agg(jobs=("seconds", "size"),
                                               wall_s=("seconds", "sum"),
                                               mean_s=("seconds", "mean"),
                                               cpu_s=("cpu_s", "sum"))
        by_model["share"] = by_model["wall_s"] / busy
        lines += ["", "By model (training jobs; one job trains every seed):", "",
                  _table(by_model.sort_values("wall_s", ascending=False))]
    longest = jobs.nlargest(top, "seconds").set_index("label")[["seconds", "cpu_s", "max_rss_mb"]]
    lines += ["", f"The {top} longest jobs:", "", _table(longest)]
    chain = jobs.loc[path].set_index("label")[["seconds"]]
    lines += ["", "The critical path:", "", _table(chain)]
    return "\n".join(lines)


def _table(df: pd.DataFrame) -> str:
    out = df.copy()
    for col in out.columns:
        if col == "share":
            out[col] = out[col].map("{:.1%}".format)
        elif out[col].dtype.kind == "f":
            out[col] = out[col].map(lambda v: "" if pd.isna(v) else f"{v:,.1f}")
    return to_markdown(out.reset_index())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", type=Path, default=Path("."), help="the run's working folder")
    ap.add_argument("--cores", type=int, default=os.cpu_count(), help="cores the run had")
    ap.add_argument("--top", type=int, default=12, help="how many of the longest jobs to list")
    args = ap.parse_args()
    jobs = attach_benchmarks(args.dir, read_jobs(args.dir))
    print(report(jobs, args.cores, args.top))


if __name__ == "__main__":
    main()
