"""The rule behind every verdict: paired t intervals, the spatial block bootstrap over test
regions, Table 2's marks and the published-vs-reproduced judgement."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import tabular_city
from scipy import stats

from urbanmoe.evaluation.bootstrap import bootstrap_replicates
from urbanmoe.evaluation.uncertainty import (
    all_of,
    any_of,
    block_weights,
    judge,
    paired,
    placement,
    replicate_r2,
    t_interval,
    unpaired,
)
from urbanmoe.report.evidence import Rule
from urbanmoe.report.significance import significance_marks
from urbanmoe.training.scores import regression_metrics


def test_the_paired_interval_is_the_t_interval_of_the_differences() -> None:
    a = pd.Series([0.81, 0.82, 0.83, 0.79], index=[0, 1, 2, 3])
    b = pd.Series([0.78, 0.80, 0.80, 0.77, 0.5], index=[0, 1, 2, 3, 4])  # seed 4: a lacks it
    iv = paired(a, b, 0.95)
    d = np.array([0.03, 0.02, 0.03, 0.02])
    half = stats.t.ppf(0.975, 3) * d.std(ddof=1) / 2
    assert iv.n == 4 and iv.mean == pytest.approx(d.mean())
    assert (iv.lo, iv.hi) == pytest.approx((d.mean() - half, d.mean() + half))
    assert judge(iv) == ("held", "")
    assert judge(iv, margin=0.05) == ("not held", "")
    assert judge(iv, margin=0.02)[0] == "inconclusive"
    assert judge(iv, margin=0.05, below=True) == ("held", "")
    assert judge(iv, min_pairs=5) == ("inconclusive", "fewer than 5 paired values (n=4)")


def test_welch_interval_and_the_combinations() -> None:
    iv = unpaired([1.0, 1.1, 0.9], [0.5, 0.6, 0.4, 0.5], 0.95)
    assert iv.method == "unpaired Welch t" and iv.lo > 0 and iv.mean == pytest.approx(0.5)
    assert t_interval([1.0], 0.95).reason == "one value"
    assert all_of(["held", "held"]) == "held" and all_of(["held", "not held"]) == "not held"
    assert all_of(["held", "inconclusive"]) == "inconclusive"
    assert any_of(["not held", "held"]) == "held" and any_of(["not held"]) == "not held"
    assert any_of(["not held", "inconclusive"]) == "inconclusive"


def test_weighted_r2_is_the_r2_of_the_resampled_regions() -> None:
    rng = np.random.default_rng(0)
    y, p = rng.normal(size=40), rng.normal(size=40)
    y[3] = np.nan  # an unlabelled region is left out, as in the run's own metric
    blocks = np.repeat(np.arange(10), 4)
    w = block_weights(blocks, 5, np.random.default_rng(1))
    assert w.shape == (5, 40) and np.allclose(w.sum(axis=1), 40)  # 10 blocks of 4 drawn
    r2 = replicate_r2(y, p, w)
    for k in range(5):
        idx = np.repeat(np.arange(40), w[k].astype(int))
        assert r2[k] == pytest.approx(regression_metrics(y[idx], p[idx])["r2"])
    assert replicate_r2(y, p, np.ones((1, 40)))[0] == pytest.approx(
        regression_metrics(y, p)["r2"])


def _run(root: Path, name: str, ids: list[str], y: np.ndarray, pred: np.ndarray,
         dataset_dir: str, seed: int, split: str = "random") -> dict:
    folder = root / name
    folder.mkdir(parents=True)
    cols = {"region_id": ids}
    for t in ("carbon", "light"):
        cols[f"{t}_true_log"], cols[f"{t}_pred_log"] = y, pred
    pd.DataFrame(cols).to_parquet(folder / "predictions.parquet")
    (folder / "metrics.json").write_text(json.dumps({}))
    return {"model": name.split("_")[0], "dataset": "TAB", "split": split, "seed": seed,
            "fold": 0, "run": str(folder), "dataset_dir": dataset_dir}


def test_the_bootstrap_pairs_models_and_groups_by_blocks(tmp_path: Path) -> None:
    city = tabular_city(tmp_path / "city", n=100, coords=True)
    ids = [f"c{i:03d}" for i in range(0, 100, 2)]  # 50 test regions
    rng = np.random.default_rng(0)
    y = rng.normal(size=50)
    good, bad = y + rng.normal(0, 0.3, 50), y + rng.normal(0, 0.9, 50)
    rows = []
    for s in (0, 1):
        rows += [_run(tmp_path, f"good_{s}", ids, y, good, str(city), s),
                 _run(tmp_path, f"twin_{s}", ids, y, good, str(city), s),
                 _run(tmp_path, f"bad_{s}", ids, y, bad, str(city), s)]
    runs = pd.DataFrame(rows)
    boot = bootstrap_replicates(runs, ["model"], ["carbon", "light"], 2.0, 200, seed=0)
    assert set(boot["blocks"]) == {"blocks of 2 km"} and set(boot["seeds"]) == {"0,1"}
    per = {m: g.sort_values("replicate")["avg_r2"].to_numpy() for m, g in boot.groupby("model")}
    assert np.array_equal(per["good"], per["twin"])  # same weights for every model: paired
    assert (per["good"] > per["bad"]).mean() > 0.95
    again = bootstrap_replicates(runs, ["model"], ["carbon", "light"], 2.0, 200, seed=0)
    pd.testing.assert_frame_equal(boot, again)  # seeded
    other = bootstrap_replicates(runs, ["model"], ["carbon", "light"], 2.0, 200, seed=1)
    assert not np.array_equal(other["avg_r2"], boot["avg_r2"])
    # a coarser block keeps more neighbours together: as many blocks, or fewer
    coarse = bootstrap_replicates(runs, ["model"], ["carbon"], 50.0, 50, seed=0)
    assert set(coarse["blocks"]) == {"blocks of 50 km"}


def test_no_coordinates_bootstraps_single_regions_and_kfold_is_left_out(tmp_path: Path) -> None:
    city = tabular_city(tmp_path / "city", n=60)  # no lat/lon
    ids = [f"c{i:03d}" for i in range(20)]
    y = np.linspace(0, 1, 20)
    runs = pd.DataFrame([_run(tmp_path, "a_0", ids, y, y + 0.1, str(city), 0),
                         _run(tmp_path, "k_0", ids, y, y, str(city), 0, split="kfold")])
    boot = bootstrap_replicates(runs, ["model"], ["carbon"], 2.0, 10, seed=0)
    assert set(boot["model"]) == {"a"} and set(boot["blocks"]) == {"single regions (no "
                                                                    "coordinates)"}


def test_table2_marks_ties_and_clear_differences() -> None:
    noise = [0.01, -0.01, 0.0, 0.005, -0.004]
    runs = []
    for model, level, wobble in (("urbanmoe", 0.80, 0.0), ("mlp_mt", 0.80, 0.003),
                                 ("pca", 0.60, 0.0), ("knn", 0.85, 0.001)):
        runs += [{"dataset": "SH", "model": model, "split": "random", "seed": s, "fold": 0,
                  "avg_r2": level + n + wobble * (-1) ** s} for s, n in enumerate(noise)]
    runs = pd.DataFrame(runs)
    out = pd.DataFrame({"dataset": "SH", "split": "random",
                        "model": ["urbanmoe", "mlp_mt", "pca", "knn"],
                        "avg_r2_mean": [0.80, 0.80, 0.60, 0.85],
                        "Average R²": ["0.80", "0.80", "0.60", "0.85"]})
    marked = significance_marks(out, runs, Rule()).set_index("model")
    assert set(marked["best_baseline"]) == {"knn"}
    assert marked.loc["mlp_mt", "Average R²"] == "0.80 †"  # tied with UrbanMoE, below kNN
    assert marked.loc["pca", "Average R²"] == "0.60 *†"
    assert marked.loc["urbanmoe", "Average R²"] == "0.80 †"
    assert marked.loc["knn", "Average R²"] == "0.85 *"
    assert marked.loc["mlp_mt", "avg_r2_vs_urbanmoe_lo"] < 0 < marked.loc[
        "mlp_mt", "avg_r2_vs_urbanmoe_hi"]
    assert "t interval" in marked.attrs["marks"]


def test_placement_is_within_the_summed_spread_or_names_the_side() -> None:
    assert placement(0.734, 0.72, 0.02, 0.015) == "within"  # 0.014 <= 2 x 0.035
    assert placement(0.844, 0.72, 0.02, 0.012) == "below"
    assert placement(0.5, 0.72, 0.02) == "above"
    assert placement(0.72, 0.72) == "within" and placement(0.72, 0.73) == "above"
    assert placement(float("nan"), 0.7) == ""


def _pvr(dataset_dir: str, note: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    from urbanmoe.report.tables import _pvr_display, published_vs_reproduced

    reproduced = pd.DataFrame([{"dataset": "SH", "model": "urbanmoe", "split": "random",
                                "n_seeds": 3, "dataset_dir": dataset_dir,
                                "carbon_r2_mean": 0.80, "carbon_r2_std": 0.01,
                                "avg_r2_mean": 0.80, "avg_r2_std": 0.01}])
    reproduced.attrs["tasks"] = ["carbon"]
    published = pd.DataFrame([{"dataset": "SH", "model": "UrbanMoE", "carbon_r2": 0.79,
                               "avg_r2": 0.70}])
    pvr = published_vs_reproduced(reproduced, published, note)
    return pvr, _pvr_display(pvr)


def test_table2s_comparison_is_judged_on_real_data_and_says_why_not_on_synthetic() -> None:
    pvr, shown = _pvr("data/real/SH", "a user's city")
    r2 = pvr.set_index("metric")
    assert r2.loc["carbon_r2", "judgement"] == "within"  # |0.80 - 0.79| <= 2 x 0.01
    assert r2.loc["avg_r2", "judgement"] == "above"
    assert "Judgement" in shown.columns and "Judgement: within when" in pvr.attrs["note"]
    fake, shown = _pvr("data/synthetic/SH", "the embedded synthetic benchmark (SH)")
    assert "Judgement" not in shown.columns and set(fake["judgement"]) == {""}
    assert "No cell of SH is judged" in fake.attrs["note"]
