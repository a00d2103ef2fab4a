"""``paper_figures/claims.md``: each checkable claim of Sections 3.4-3.6 and Appendices C-D,
judged ``held``, ``not held`` or ``inconclusive`` on each dataset by one rule, with the
interval behind the verdict.

The rule (``evaluation/uncertainty.py``, docs/results.md "Verdicts"): the difference a claim is
about, paired over what the runs share (seed and fold), with a t interval; held when the
interval lies wholly on the claim's side, not held when wholly on the other, inconclusive
otherwise or with fewer than ``verdicts.min_pairs`` values. Beside it, where a seed's single
test part is all there is, the spatial block bootstrap interval over the test regions.

The checker reads only the drawn tables (``report/evidence.py``): ``table2.csv`` and
``table2_seeds.csv`` (Table 2), ``ablations_summary.csv`` and ``ablations_seeds.csv``
(Tables 3-4, Figure 3), the ``*_bootstrap.csv`` replicates where drawn, and
``figure5_weights.csv`` / ``sparsity.csv`` (Figure 5, Section 2.6: one run, so compared over
its experts, unpaired). A claim whose inputs are absent is "not checked" with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from urbanmoe.evaluation.uncertainty import (
    HELD,
    INCONCLUSIVE,
    NOT_CHECKED,
    NOT_HELD,
    VERDICTS,
    all_of,
    any_of,
    judge,
    unpaired,
)
from urbanmoe.io import write_text
from urbanmoe.paper_items import FULL_MODEL, ITEMS, rows_from
from urbanmoe.report.evidence import Evidence, Part, Rule, exact, read_optional
from urbanmoe.training.registry import URBANMOE_FAMILY


@dataclass
class Verdict:
    """One claim checked on one dataset."""

    claim: str
    source: str
    dataset: str
    verdict: str  # held, not held, inconclusive, not checked
    numbers: str  # the means the claim is about
    interval: str = ""  # the seeds' interval(s) that decided it, or why there is none
    regions: str = ""  # the block bootstrap interval(s) over the test regions, beside

    @property
    def held(self) -> bool | None:
        return {HELD: True, NOT_HELD: False}.get(self.verdict)


def _fmt(x: float) -> str:
    return f"{x:.4f}"


def _lowest(p: Part) -> float:
    return p.seeds.lo if np.isfinite(p.seeds.lo) else np.inf


def _verdict(claim: str, source: str, ds: str, parts: list[Part], combine, numbers: str,
             labels: list[str] | None = None, focus: int | None = None) -> Verdict:
    """A claim over ``parts`` combined by ``all_of`` / ``any_of``. The intervals shown: every
    part's when labelled; else part ``focus`` (the closest competitor) when its verdict is the
    claim's, else the decisive part (of the claim's verdict, the lowest interval)."""
    verdict = combine([p.verdict for p in parts]) if parts else INCONCLUSIVE
    if labels:
        shown = list(zip(labels, parts, strict=True))
    elif focus is not None and parts[focus].verdict == verdict:
        shown = [("", parts[focus])]
    else:
        decisive = [p for p in parts if p.verdict == verdict] or parts
        shown = [("", min(decisive, key=_lowest))] if decisive else []
    interval = "; ".join(f"{lab} {p.text()}".strip() for lab, p in shown)
    regions = "; ".join(f"{lab} {p.regions_text()}".strip() for lab, p in shown
                        if p.regions is not None)
    if len(parts) > 1 and not labels:
        counts = {v: sum(p.verdict == v for p in parts) for v in VERDICTS}
        numbers += f" ({counts[HELD]} of {len(parts)} comparisons held)"
    return Verdict(claim, source, ds, verdict, numbers, interval, regions)


def _tasks(df: pd.DataFrame) -> list[str]:
    return [c[: -len("_r2_mean")] for c in df.columns
            if c.endswith("_r2_mean") and not c.startswith("avg")]


def _row(t2: pd.DataFrame, ds: str, model: str) -> pd.Series | None:
    hit = t2[(t2["dataset"] == ds) & (t2["model"] == model)]
    hit = hit[hit["n_seeds"].fillna(0) > 0] if "n_seeds" in hit else hit
    return None if hit.empty else hit.iloc[0]


#: Table 2's baselines from the paper (its models but UrbanMoE's own rows).
PAPER_BASELINES = [m for m in ITEMS["table2"].models if not m.startswith(FULL_MODEL)]


def table2_claims(t2: pd.DataFrame, ev: Evidence) -> list[Verdict]:
    """Section 3.4's observations on Table 2, per dataset (first split listed)."""
    out: list[Verdict] = []
    split = str(t2["split"].iloc[0]) if "split" in t2 else "random"
    t2 = t2[t2["split"] == split] if "split" in t2 else t2
    tasks = _tasks(t2)
    for ds in dict.fromkeys(t2["dataset"]):
        mt, st = _row(t2, ds, "urbanmoe"), _row(t2, ds, "urbanmoe_st")

        def cmp(a: str, b: str, col: str, ds: str = ds) -> Part:
            return ev.compare(ev.side((ds, a, split), col), ev.side((ds, b, split), col))

        if mt is not None and st is not None:
            parts = [cmp("urbanmoe", "urbanmoe_st", f"{t}_r2") for t in tasks]
            out.append(_verdict(
                "UrbanMoE (MT) beats UrbanMoE (ST) on every task (R²)", "Sec. 3.4 (2)", ds,
                parts, all_of, ", ".join(f"{t} {mt[f'{t}_r2_mean'] - st[f'{t}_r2_mean']:+.4f}"
                                         for t in tasks), tasks))
        if mt is not None:
            others = t2[(t2["dataset"] == ds) & ~t2["model"].isin(URBANMOE_FAMILY)
                        & (t2["n_seeds"].fillna(0) > 0 if "n_seeds" in t2 else True)]
            paper = others[others["model"].isin(PAPER_BASELINES)]
            for label, pool in (("every baseline of the paper", paper),
                                ("every baseline, the stronger ones included", others)):
                if pool.empty:
                    continue
                best = pool.loc[pool["avg_r2_mean"].idxmax()]
                models = list(pool["model"])
                parts = [cmp("urbanmoe", m, "avg_r2") for m in models]
                out.append(_verdict(
                    f"UrbanMoE beats {label} (average R²)", "Sec. 3.4 (3)", ds, parts, all_of,
                    f"UrbanMoE {_fmt(mt['avg_r2_mean'])} vs best {best['model']} "
                    f"{_fmt(best['avg_r2_mean'])}", focus=models.index(best["model"])))
        for base in ("urbanclip", "remoteclip"):
            a, b = _row(t2, ds, f"{base}_mt"), _row(t2, ds, f"{base}_st")
            if a is not None and b is not None:
                parts = [cmp(f"{base}_mt", f"{base}_st", f"{t}_r2") for t in tasks]
                out.append(_verdict(
                    f"{base} (MT) outperforms its ST version on some task", "Sec. 3.4 (1)", ds,
                    parts, any_of, ", ".join(
                        f"{t} {a[f'{t}_r2_mean'] - b[f'{t}_r2_mean']:+.4f}" for t in tasks),
                    tasks))
        if mt is not None and (uc := _row(t2, ds, "urbanclip_st")) is not None:
            ratio = mt["params_m"] / uc["params_m"]
            out.append(_verdict(
                "UrbanMoE has over 99% fewer parameters than UrbanCLIP", "Sec. 3.4 (5)", ds,
                [exact(bool(ratio < 0.01))], all_of,
                f"{mt['params_m']:.2f}M vs {uc['params_m']:.2f}M (ratio {ratio:.2f}; our "
                "UrbanCLIP is a tiny open_clip model, the paper's 638M is not)"))
    return out


KIND_COLUMN = {"specific": "n_specific", "shared": "n_shared", "dual": "n_dual"}


def _study(ab: pd.DataFrame, study: str) -> pd.DataFrame:
    """The groups of one study that have runs (``n_seeds`` > 0)."""
    return ab[(ab["study"] == study) & (ab["n_seeds"] > 0)]


def _get(ab: pd.DataFrame, study: str, setting: str) -> pd.Series | None:
    hit = _study(ab, study)
    hit = hit[hit["setting"].astype(str) == setting]
    return None if hit.empty else hit.iloc[0]


def _best_of(ab: pd.DataFrame, ev: Evidence, study: str, best: str, claim: str, src: str,
             ds: str, numbers: str) -> Verdict:
    """"``best`` beats every other group of ``study``" (average R²); shown against the
    strongest other group."""
    groups = _study(ab, study)
    others = groups[groups["setting"].astype(str) != best].sort_values("avg_r2_mean",
                                                                      ascending=False)
    parts = [ev.compare(ev.side((study, best), "avg_r2"), ev.side((study, s), "avg_r2"))
             for s in others["setting"].astype(str)]
    return _verdict(claim, src, ds, parts, all_of, numbers, focus=0 if parts else None)


def ablation_claims(ab: pd.DataFrame, ds: str, ev: Evidence) -> list[Verdict]:
    """Table 3 and 4 and Figure 3 claims (Section 3.5, Appendix C), from
    ``ablations_summary.csv`` and ``ablations_seeds.csv`` (``evaluation/ablations.py``)."""
    out: list[Verdict] = []
    t3 = _study(ab, "table3")
    if not t3.empty:
        top = t3.loc[t3["avg_r2_mean"].idxmax()]
        if "all_three" in set(t3["setting"].astype(str)):
            out.append(_best_of(ab, ev, "table3", "all_three",
                                "All three expert types together are best (Table 3, average "
                                "R²)", "Sec. 3.5 (1)", ds,
                                f"best {top['setting']} {_fmt(top['avg_r2_mean'])} of {len(t3)}"))
        for kind, task, src in (("dual", "carbon", "Sec. 3.5 (2)"),
                                ("specific", "light", "Sec. 3.5 (3)"),
                                ("shared", "population", "Sec. 3.5 (4)")):
            has = t3[t3[KIND_COLUMN[kind]].astype(float) > 0]
            hasnt = t3[t3[KIND_COLUMN[kind]].astype(float) == 0]
            if len(has) and len(hasnt):
                col = f"{task}_r2"
                part = ev.compare(ev.mean_side([("table3", s) for s in has["setting"]], col),
                                  ev.mean_side([("table3", s) for s in hasnt["setting"]], col))
                out.append(_verdict(
                    f"Configurations with {kind} experts do better on {task} (Table 3)", src,
                    ds, [part], all_of,
                    f"mean {task} R² with {_fmt(has[f'{col}_mean'].mean())}, without "
                    f"{_fmt(hasnt[f'{col}_mean'].mean())}"))
    full = _get(ab, "table4", "full")

    def vs(a: str, b: str) -> Part:
        return ev.compare(ev.side(("table4", a), "avg_r2"), ev.side(("table4", b), "avg_r2"))

    if full is not None:
        for r in (r for r in rows_from("table4", "ablations") if r.overrides):
            row = _get(ab, "table4", r.key)
            if row is not None:
                out.append(_verdict(
                    f"The full model beats {r.label} (Table 4, average R²)", "Sec. 3.5 Table 4",
                    ds, [vs("full", r.key)], all_of,
                    f"{_fmt(full['avg_r2_mean'])} vs {_fmt(row['avg_r2_mean'])}"))
    bare = _get(ab, "table4", "no_region_poi")
    for r in rows_from("table4", "table2"):
        base = _get(ab, "table4", r.key)
        if bare is not None and base is not None:
            out.append(_verdict(
                f"Even w/o Region & POI beats {r.key} (Table 4, average R²)",
                "Sec. 3.5 Table 4 (1)", ds, [vs("no_region_poi", r.key)], all_of,
                f"{_fmt(bare['avg_r2_mean'])} vs {_fmt(base['avg_r2_mean'])}"))
    for study, key, best_value, src in (("figure3a", "d_r", 6.0, "App. C, Fig. 3(a)"),
                                        ("figure3b", "eps", 0.01, "App. C, Fig. 3(b)")):
        curve = _study(ab, study).sort_values("value")
        if curve.empty:
            continue
        values, r2 = curve["value"].astype(float).to_numpy(), curve["avg_r2_mean"].to_numpy()
        settings = curve["setting"].astype(str).to_numpy()
        shown = ", ".join(f"{v:g}: {_fmt(r)}" for v, r in zip(values, r2, strict=True))
        at = np.isclose(values, best_value)
        if at.any():
            out.append(_best_of(ab, ev, study, settings[at][0],
                                f"{key} = {best_value:g} is best (average R²)", src, ds, shown))
        if key == "eps" and np.isclose(values, 0.0).any():
            at0 = np.isclose(values, 0.0)
            top, zero = settings[int(np.argmax(r2))], settings[at0][0]
            part = ev.compare(ev.side((study, top), "avg_r2"), ev.side((study, zero), "avg_r2"),
                              margin=0.01, below=True)
            out.append(_verdict("eps = 0 (no thresholding) is still competitive (within 0.01 "
                                "average R² of the best)", src, ds, [part], all_of,
                                f"best {top}, gap {float(r2.max() - r2[at0][0]):.4f}"))
    return out


def routing_claims(weights: pd.DataFrame, sparsity: pd.DataFrame | None, ds: str,
                   rule: Rule) -> list[Verdict]:
    """Figure 5 and Section 2.6 claims from one run's router weights and sparsity: the
    weights compared over experts (unpaired), the counts exact."""
    out: list[Verdict] = []
    w = weights[weights["eligible"].astype(bool)]
    for branch, grp in w[w["task"] == "carbon"].groupby("branch", sort=False):
        per_kind = grp.groupby("kind")["mean_weight"]
        if "dual" not in per_kind.groups:
            continue
        parts = []
        for kind in (k for k in per_kind.groups if k != "dual"):
            iv = unpaired(per_kind.get_group("dual"), per_kind.get_group(kind), rule.confidence)
            verdict, reason = judge(iv, min_pairs=rule.min_pairs)
            parts.append(Part(verdict, iv, None, reason))
        out.append(_verdict(
            f"Carbon leans on dual-task experts ({branch} branch, mean weight per expert)",
            "App. D.2 (1)", ds, parts, all_of,
            ", ".join(f"{k} {v:.4f}" for k, v in per_kind.mean().items())))
    pop = w[w["task"] == "population"]
    if not pop.empty and "share_active" in pop.columns:
        off = pop[pop["share_active"] <= 0]
        out.append(_verdict("Population deactivates no expert", "App. D.2 (2)", ds,
                            [exact(off.empty)], all_of,
                            f"{len(off)} of {len(pop)} eligible expert slots never active"))
    if sparsity is not None and not sparsity.empty:
        rows = sparsity[sparsity["task"] == "carbon"]
        shown = "; ".join(f"{r.branch}: {r.mean_active:.1f} of {r.n_eligible} active per region"
                          for r in rows.itertuples())
        if len(rows):
            ok = bool(((rows["n_eligible"] - rows["mean_active"]) >= 0.5).any())
            out.append(_verdict("Carbon keeps about 13 of its 16 experts active (some "
                                "deactivated)", "Sec. 2.6", ds, [exact(ok)], all_of, shown))
    return out


#: the columns of a block bootstrap table beside its keys (evaluation/bootstrap.py)
REPLICATE = ("seeds", "blocks", "replicate")


def check_claims(figures: Path, rule: Rule | None = None) -> list[Verdict]:
    """Every claim that the tables in ``figures`` allow checking."""
    figures, rule = Path(figures), rule or Rule()
    verdicts: list[Verdict] = []
    t2 = read_optional(figures / "table2.csv", ("dataset", "model", "avg_r2_mean"))
    if t2 is not None:
        keys = ("dataset", "model", "split")
        ev = Evidence(read_optional(figures / "table2_seeds.csv", (*keys, "seed")), keys,
                      read_optional(figures / "table2_bootstrap.csv", (*keys, *REPLICATE)),
                      rule)
        verdicts += table2_claims(t2, ev)
    ab = read_optional(figures / "ablations_summary.csv",
                       ("dataset", "study", "setting", "n_seeds", "avg_r2_mean"))
    ds = str(ab["dataset"].iloc[0]) if ab is not None and len(ab) else "?"
    if ab is not None:
        keys = ("study", "setting")
        ev = Evidence(read_optional(figures / "ablations_seeds.csv", (*keys, "seed")), keys,
                      read_optional(figures / "ablations_bootstrap.csv", (*keys, *REPLICATE)),
                      rule)
        verdicts += ablation_claims(ab, ds, ev)
    weights = read_optional(figures / "figure5_weights.csv",
                            ("task", "branch", "kind", "eligible", "mean_weight"))
    if weights is not None:
        sparsity = read_optional(figures / "sparsity.csv",
                                 ("task", "branch", "n_eligible", "mean_active"))
        verdicts += routing_claims(weights, sparsity, ds, rule)
    return verdicts


def counts(verdicts: list[Verdict]) -> dict[str, int]:
    """How many verdicts of each kind (held, not held, inconclusive, not checked)."""
    return {v: sum(x.verdict == v for x in verdicts)
            for v in (*VERDICTS, NOT_CHECKED)}


def summary_line(verdicts: list[Verdict]) -> str:
    """``"9 held, 6 not held, 19 inconclusive (of 34 checks)"``."""
    c = counts(verdicts)
    return (f"{c[HELD]} held, {c[NOT_HELD]} not held, {c[INCONCLUSIVE]} inconclusive "
            f"(of {len(verdicts)} checks)")


def _mark(verdict: str) -> str:
    return f"**{verdict}**" if verdict == NOT_HELD else verdict


def claims_markdown(verdicts: list[Verdict], note: str = "", rule: Rule | None = None) -> str:
    """The claims as a Markdown document: the rule, the counts, one table row per check."""
    rule = rule or Rule()
    pct = f"{rule.confidence:.0%}"
    lines = ["# The paper's claims, checked on this run", "",
             note or "Generated by `urbanmoe claims` from the tables in this folder.", "",
             f"{summary_line(verdicts)}. A claim that does not hold is a result of this "
             "reproduction, not a defect.", "",
             f"The rule: the difference each claim is about, paired over the seeds (and folds) "
             f"the runs share, with its {pct} t interval: **held** when the interval lies "
             "wholly on the claim's side, **not held** when wholly on the other, "
             f"**inconclusive** when it straddles, or with fewer than {rule.min_pairs} paired "
             "values. A claim over several comparisons (every task, every baseline) is held "
             "when all are held and not held when one is not held. Each interval is "
             f"{pct} on its own (no correction for the number of claims). \"Test regions\": "
             "the spatial block bootstrap interval of the same difference over the test "
             "regions, beside, not part of the verdict (docs/results.md, \"Verdicts\").", "",
             "| claim | source | dataset | verdict | numbers | interval over seeds | "
             "test regions |", "|---|---|---|---|---|---|---|"]
    lines += [f"| {v.claim} | {v.source} | {v.dataset} | {_mark(v.verdict)} | "
              f"{v.numbers.replace('|', '/')} | {v.interval.replace('|', '/')} | "
              f"{v.regions.replace('|', '/')} |" for v in verdicts]
    return "\n".join(lines) + "\n"


def write_claims(figures: Path, out: Path, note: str = "",
                 rule: Rule | None = None) -> list[Verdict]:
    """Check the claims and write ``out`` (Markdown) atomically."""
    verdicts = check_claims(figures, rule)
    write_text(Path(out), claims_markdown(verdicts, note, rule), "claims")
    return verdicts
