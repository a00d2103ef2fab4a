"""What a smaller early-stopping patience would change, replayed on finished runs.

A run's ``history.csv`` holds the validation loss of every epoch it trained. Training is
deterministic, so stopping with patience p replays exactly: the loop keeps the best epoch (an
improvement is ``val < best - 1e-6``, as in ``training/loop.py``) and stops p epochs after it.
For each p this prints, by model, how many fits would keep the same best epoch (so the same
weights and the same numbers) and how many epochs they would train. Asserts nothing.

    python benchmarks/bench_patience.py [RESULTS_FOLDER ...] [--patience 5 10 15 20]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from urbanmoe.report.tables import to_markdown


def replay(val: list[float], patience: int) -> tuple[int, int]:
    """(best epoch, epochs trained) of early stopping with ``patience`` on this curve."""
    best, best_epoch = float("inf"), -1
    for epoch, v in enumerate(val):
        if v < best - 1e-6:
            best, best_epoch = v, epoch
        if epoch - best_epoch >= patience:
            return best_epoch, epoch + 1
    return best_epoch, len(val)


def fits(folders: list[Path]) -> pd.DataFrame:
    """One row per fit (a run's model key): model, collection, validation curve."""
    rows = []
    for folder in folders:
        for hist in sorted(folder.rglob("history.csv")):
            df = pd.read_csv(hist)
            parts = hist.relative_to(folder).parts  # collection/dataset/split/variant/seed/...
            model = parts[-3].split("@")[0] if len(parts) >= 3 else "?"
            for key, g in df.groupby("model", sort=False):
                rows.append({"model": model, "run": str(hist.parent), "key": key,
                             "val": g.sort_values("epoch")["val_loss"].tolist()})
    return pd.DataFrame(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folders", type=Path, nargs="*", default=[Path("results")])
    ap.add_argument("--patience", type=int, nargs="+", default=[5, 10, 15, 20])
    ap.add_argument("--recorded", type=int, default=20, help="patience the runs trained with")
    args = ap.parse_args()
    df = fits(args.folders)
    if df.empty:
        raise SystemExit(f"no history.csv under {[str(f) for f in args.folders]}")
    ref = df["val"].map(lambda v: replay(v, args.recorded))
    out = []
    for p in args.patience:
        got = df["val"].map(lambda v, p=p: replay(v, p))
        same = [a[0] == b[0] for a, b in zip(got, ref, strict=True)]
        part = df.assign(same=same, epochs=[g[1] for g in got], full=[r[1] for r in ref])
        for model, g in part.groupby("model"):
            out.append({"Patience": p, "Model": model, "Fits": len(g),
                        "Same best epoch": int(g["same"].sum()),
                        "Epochs": int(g["epochs"].sum()),
                        "Epoch share": f"{g['epochs'].sum() / g['full'].sum():.0%}"})
    print(f"{len(df)} fits in {df['run'].nunique()} runs; recorded with patience "
          f"{args.recorded}\n")
    print(to_markdown(pd.DataFrame(out)))


if __name__ == "__main__":
    main()
