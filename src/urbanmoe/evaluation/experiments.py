"""The paper's experiments as named run variants (Tables 3-5, Figure 3, Figures 4-5).

A *variant* is a run label: a model name, optionally followed by ``@key=value`` config
overrides, e.g. ``urbanmoe@model.d_r=4`` or ``urbanmoe@model.use_region=false``. It names the run
folder (``results/ablations/{dataset}/{split}/{variant}/seed{N}``), is recorded in the run's
``metrics.json`` and is parsed back into ``--set`` overrides by :func:`parse_variant`, so a
folder says exactly how it was made.

Which variants each experiment needs comes from ``experiments.*`` in the configuration:

* Table 3 (with Table 5's allocations): the seven expert-type presets, 16 experts per task;
* Table 4: the full model without the region embedding, without POIs, without both;
* Figure 3: ``experiments.d_r`` and ``experiments.eps``;
* Figures 4-5 and the sparsity table read the full model's run (``urbanmoe``).
"""

from __future__ import annotations

from typing import Any

from urbanmoe.errors import ConfigError
from urbanmoe.models.layout import TABLE5_PRESETS

SEP = "@"
FULL = "urbanmoe"


def variant_label(model: str, overrides: dict[str, Any] | None = None) -> str:
    """``model@key=value@...`` with keys in the given order; YAML-style lowercase booleans."""
    parts = [model]
    for key, value in (overrides or {}).items():
        shown = str(value).lower() if isinstance(value, bool) else str(value)
        parts.append(f"{key}={shown}")
    return SEP.join(parts)


def parse_variant(label: str) -> tuple[str, list[str]]:
    """(model name, ``key=value`` overrides) of a variant label; a one-line error if malformed."""
    model, *items = label.split(SEP)
    if not model:
        raise ConfigError(f"variant {label!r}: no model name before {SEP!r}")
    for item in items:
        key, eq, _ = item.partition("=")
        if not eq or not key:
            raise ConfigError(f"variant {label!r}: {item!r} is not key=value")
        if key == "model.name":
            raise ConfigError(f"variant {label!r}: the model name comes first, not as model.name")
    return model, items


def table3_variants(cfg: dict[str, Any]) -> dict[str, str]:
    """Table 5 preset name -> variant label (``all_three`` at the paper's 8/2/4 is the full model
    when ``model.*`` holds those counts)."""
    m = cfg["model"]
    out = {}
    for name, (n_specific, n_shared, n_dual) in TABLE5_PRESETS.items():
        if (m["n_specific"], m["n_shared"], m["n_dual"]) == (n_specific, n_shared, n_dual):
            out[name] = FULL
        else:
            out[name] = variant_label(FULL, {"model.n_specific": n_specific,
                                             "model.n_dual": n_dual,
                                             "model.n_shared": n_shared})
    return out


def table4_variants() -> dict[str, str]:
    """Table 4's rows (UrbanMoE's part): the full model and its embedding ablations."""
    return {"UrbanMoE": FULL,
            "w/o Region": variant_label(FULL, {"model.use_region": False}),
            "w/o POI": variant_label(FULL, {"model.use_poi": False}),
            "w/o Region & POI": variant_label(FULL, {"model.use_region": False,
                                                     "model.use_poi": False})}


def figure3_variants(cfg: dict[str, Any]) -> dict[str, dict[float, str]]:
    """Figure 3's curves: ``d_r`` and ``eps`` value -> variant label (the default is the full
    model)."""
    m, e = cfg["model"], cfg["experiments"]
    out: dict[str, dict[float, str]] = {}
    for key in ("d_r", "eps"):
        out[key] = {v: FULL if v == m[key] else variant_label(FULL, {f"model.{key}": v})
                    for v in e[key]}
    return out


def ablation_variants(cfg: dict[str, Any]) -> list[str]:
    """Every variant the ablation experiments need, each once, the full model first."""
    labels = [FULL, *table3_variants(cfg).values(), *table4_variants().values()]
    for curve in figure3_variants(cfg).values():
        labels += curve.values()
    return list(dict.fromkeys(labels))
