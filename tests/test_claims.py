"""claims.md: each claim judged held, not held or inconclusive from the drawn tables alone,
by its paired interval over seeds, with the counts of each verdict."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from urbanmoe.cli import main
from urbanmoe.report.claims import (
    ablation_claims,
    check_claims,
    routing_claims,
    table2_claims,
)
from urbanmoe.report.evidence import Evidence, Rule

TASKS = ["carbon", "population", "light"]
SEEDS = [0, 1, 2, 3, 4]
NOISE = np.array([0.012, -0.008, 0.003, -0.011, 0.004])  # per seed, shared by every row


def _seed_rows(key: dict, r2: dict[str, float], jitter: float, seed0: int = 0) -> list[dict]:
    """Per-seed rows around ``r2``: a shared seed effect plus ``jitter`` x a row-own wobble."""
    own = np.random.default_rng(seed0).normal(0, 1, (len(SEEDS), len(TASKS)))
    rows = []
    for k, s in enumerate(SEEDS):
        vals = {f"{t}_r2": r2[t] + NOISE[k] + jitter * own[k, j] for j, t in enumerate(TASKS)}
        rows.append({**key, "seed": s, "fold": 0, **vals,
                     "avg_r2": float(np.mean(list(vals.values())))})
    return rows


def _table2(rows: dict[str, tuple[dict[str, float], float]]) -> tuple[pd.DataFrame,
                                                                        pd.DataFrame]:
    """(table2.csv, table2_seeds.csv) of models given as ``name -> (R² per task, jitter)``."""
    seeds, t2 = [], []
    for i, (model, (r2, jitter)) in enumerate(rows.items()):
        key = {"dataset": "SH", "model": model, "split": "random"}
        mine = _seed_rows(key, r2, jitter, seed0=i)
        seeds += mine
        df = pd.DataFrame(mine)
        t2.append({**key, "n_seeds": len(SEEDS), "params_m": 1.0 + i,
                   **{f"{c}_mean": df[c].mean() for c in [*(f"{t}_r2" for t in TASKS), "avg_r2"]}})
    return pd.DataFrame(t2), pd.DataFrame(seeds)


def _verdict(verdicts: list, start: str):  # noqa: ANN202
    hits = [v for v in verdicts if v.claim.startswith(start)]
    assert len(hits) == 1, [v.claim for v in verdicts]
    return hits[0]


def _claims(rows: dict) -> list:
    t2, seeds = _table2(rows)
    return table2_claims(t2, Evidence(seeds, ("dataset", "model", "split")))


MT = {"carbon": 0.80, "population": 0.85, "light": 0.78}


def test_a_clear_difference_is_held_and_a_reversed_one_not_held() -> None:
    st = {t: v - 0.05 for t, v in MT.items()}
    held = _claims({"urbanmoe": (MT, 0.002), "urbanmoe_st": (st, 0.002),
                    "pca": (dict.fromkeys(TASKS, 0.6), 0.002)})
    v = _verdict(held, "UrbanMoE (MT) beats UrbanMoE (ST)")
    assert v.verdict == "held" and "paired t, n=5" in v.interval
    assert _verdict(held, "UrbanMoE beats every baseline of the paper").verdict == "held"
    reversed_ = _claims({"urbanmoe": (st, 0.002), "urbanmoe_st": (MT, 0.002)})
    assert _verdict(reversed_, "UrbanMoE (MT) beats UrbanMoE (ST)").verdict == "not held"


def test_a_difference_far_below_its_noise_is_inconclusive() -> None:
    """+0.001 on every task where each seed wobbles by 0.01: neither side is shown."""
    st = {t: v - 0.001 for t, v in MT.items()}
    v = _verdict(_claims({"urbanmoe": (MT, 0.01), "urbanmoe_st": (st, 0.01)}),
                 "UrbanMoE (MT) beats UrbanMoE (ST)")
    assert v.verdict == "inconclusive" and v.held is None
    lo, hi = (float(x) for x in v.interval.split("[")[1].split("]")[0].split(", "))
    assert lo < 0 < hi


def test_fewer_than_three_pairs_are_inconclusive_with_the_reason() -> None:
    t2, seeds = _table2({"urbanmoe": (MT, 0.002),
                         "urbanmoe_st": ({t: v - 0.05 for t, v in MT.items()}, 0.002)})
    seeds = seeds[seeds["seed"] < 2]
    v = _verdict(table2_claims(t2, Evidence(seeds, ("dataset", "model", "split"))),
                 "UrbanMoE (MT) beats UrbanMoE (ST)")
    assert v.verdict == "inconclusive" and "fewer than 3 paired values (n=2)" in v.interval


def test_only_shared_seeds_are_paired() -> None:
    """A seed one row lacks is left out of the pairs (here: 3 of 5 remain)."""
    t2, seeds = _table2({"urbanmoe": (MT, 0.002),
                         "urbanmoe_st": ({t: v - 0.05 for t, v in MT.items()}, 0.002)})
    seeds = seeds[~((seeds["model"] == "urbanmoe_st") & (seeds["seed"] >= 3))]
    v = _verdict(table2_claims(t2, Evidence(seeds, ("dataset", "model", "split"))),
                 "UrbanMoE (MT) beats UrbanMoE (ST)")
    assert v.verdict == "held" and "n=3" in v.interval


def test_every_baseline_is_not_held_when_one_beats_it_clearly() -> None:
    held = _claims({"urbanmoe": (MT, 0.002), "pca": (dict.fromkeys(TASKS, 0.6), 0.002),
                    "knn": (dict.fromkeys(TASKS, 0.9), 0.002)})
    v = _verdict(held, "UrbanMoE beats every baseline, the stronger")
    assert v.verdict == "not held" and "knn" in v.numbers and "1 of 2 comparisons held" in v.numbers


def _ablation_tables() -> tuple[pd.DataFrame, pd.DataFrame]:
    groups = {  # study, setting -> (n_specific, n_shared, n_dual, value, carbon, others)
        ("table3", "specific_only"): (16, 0, 0, np.nan, 0.70, 0.75),
        ("table3", "shared_only"): (0, 16, 0, np.nan, 0.72, 0.75),
        ("table3", "dual_only"): (0, 0, 8, np.nan, 0.80, 0.75),
        ("table3", "all_three"): (8, 4, 2, np.nan, 0.79, 0.75),
        ("figure3a", "d_r=2"): (8, 4, 2, 2.0, 0.70, 0.70),
        ("figure3a", "d_r=6"): (8, 4, 2, 6.0, 0.75, 0.75),
        ("figure3a", "d_r=10"): (8, 4, 2, 10.0, 0.72, 0.72),
        ("figure3b", "eps=0"): (8, 4, 2, 0.0, 0.745, 0.745),
        ("figure3b", "eps=0.01"): (8, 4, 2, 0.01, 0.75, 0.75),
        ("figure3b", "eps=0.04"): (8, 4, 2, 0.04, 0.70, 0.70),
        ("table4", "full"): (8, 4, 2, np.nan, 0.75, 0.75),
        ("table4", "no_region"): (8, 4, 2, np.nan, 0.72, 0.72),
        ("table4", "no_poi"): (8, 4, 2, np.nan, 0.76, 0.76),
        ("table4", "no_region_poi"): (8, 4, 2, np.nan, 0.70, 0.70),
        ("table4", "remoteclip_st"): (None, None, None, np.nan, 0.71, 0.71),
    }
    summary, seeds = [], []
    for i, ((study, setting), (sp, sh, du, value, carbon, rest)) in enumerate(groups.items()):
        r2 = {"carbon": carbon, "population": rest, "light": rest}
        mine = _seed_rows({"study": study, "setting": setting}, r2, 0.002, seed0=i)
        seeds += mine
        df = pd.DataFrame(mine)
        summary.append({"dataset": "SH", "study": study, "setting": setting, "value": value,
                        "n_specific": sp, "n_shared": sh, "n_dual": du, "n_seeds": 5,
                        **{f"{c}_mean": df[c].mean()
                           for c in [*(f"{t}_r2" for t in TASKS), "avg_r2"]}})
    summary.append({"dataset": "SH", "study": "table3", "setting": "shared_dual", "n_seeds": 0,
                    "n_specific": 0, "n_shared": 8, "n_dual": 4, "avg_r2_mean": 0.99})
    return pd.DataFrame(summary), pd.DataFrame(seeds)


def test_ablation_claims_follow_the_intervals() -> None:
    summary, seeds = _ablation_tables()
    verdicts = ablation_claims(summary, "SH", Evidence(seeds, ("study", "setting")))
    best = _verdict(verdicts, "All three expert types together are best")
    assert best.verdict == "not held" and "dual_only" in best.numbers  # the unrun 0.99 ignored
    assert _verdict(verdicts, "Configurations with dual experts do better on carbon").held
    assert _verdict(verdicts, "d_r = 6 is best").verdict == "held"
    assert _verdict(verdicts, "eps = 0.01 is best").verdict == "held"
    assert _verdict(verdicts, "eps = 0 (no thresholding) is still competitive").verdict == "held"
    assert _verdict(verdicts, "The full model beats w/o Region (").verdict == "held"
    assert _verdict(verdicts, "The full model beats w/o POI").verdict == "not held"
    assert _verdict(verdicts, "Even w/o Region & POI beats remoteclip_st").verdict == "not held"


def test_cli_reads_only_the_tables_and_prints_the_counts(tmp_path: Path, capsys) -> None:
    t2, seeds = _table2({"urbanmoe": (MT, 0.002), "urbanmoe_st": (MT, 0.01),
                         "pca": (dict.fromkeys(TASKS, 0.6), 0.002)})
    t2.to_csv(tmp_path / "table2.csv", index=False)
    seeds.to_csv(tmp_path / "table2_seeds.csv", index=False)
    summary, ab_seeds = _ablation_tables()
    summary.to_csv(tmp_path / "ablations_summary.csv", index=False)
    ab_seeds.to_csv(tmp_path / "ablations_seeds.csv", index=False)
    out = tmp_path / "claims.md"
    assert main(["claims", "--figures", str(tmp_path), "--out", str(out)]) == 0
    text = out.read_text()
    verdicts = check_claims(tmp_path)
    n = {v: sum(x.verdict == v for x in verdicts) for v in ("held", "not held", "inconclusive")}
    assert all(n.values())  # each kind occurs in this folder
    line = (f"{n['held']} held, {n['not held']} not held, {n['inconclusive']} inconclusive "
            f"(of {len(verdicts)} checks)")
    assert line in text and line in capsys.readouterr().out
    assert "| interval over seeds |" in text and "paired t, n=5" in text


def test_without_the_seeds_table_every_comparison_is_inconclusive(tmp_path: Path) -> None:
    t2, _ = _table2({"urbanmoe": (MT, 0.002), "urbanmoe_st": (MT, 0.002)})
    t2.to_csv(tmp_path / "table2.csv", index=False)
    v = _verdict(check_claims(tmp_path), "UrbanMoE (MT) beats UrbanMoE (ST)")
    assert v.verdict == "inconclusive" and "n=0" in v.interval


def test_routing_claims_compare_experts_unpaired_and_count_exactly() -> None:
    rows = []
    rng = np.random.default_rng(0)
    for task in TASKS:
        for kind, weight, share in (("specific", 0.05, 1.0), ("dual", 0.10, 1.0),
                                    ("shared", 0.04, 0.0 if task == "population" else 0.5)):
            rows += [{"task": task, "branch": "image", "kind": kind, "eligible": True,
                      "mean_weight": weight + rng.normal(0, 0.002), "share_active": share}
                     for _ in range(4)]
    rows.append({"task": "carbon", "branch": "image", "kind": "specific", "eligible": False,
                 "mean_weight": 0.0, "share_active": 0.0})
    sparsity = pd.DataFrame([{"branch": "image", "task": "carbon", "n_eligible": 16,
                              "mean_active": 13.2}])
    verdicts = routing_claims(pd.DataFrame(rows), sparsity, "SH", Rule())
    lean = _verdict(verdicts, "Carbon leans on dual-task experts")
    assert lean.verdict == "held" and "unpaired Welch t" in lean.interval
    off = _verdict(verdicts, "Population deactivates no expert")
    assert off.verdict == "not held" and "exact" in off.interval
    active = _verdict(verdicts, "Carbon keeps about 13")
    assert active.verdict == "held" and "13.2 of 16" in active.numbers
