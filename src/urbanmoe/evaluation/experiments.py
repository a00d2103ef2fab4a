"""The paper's experiments as named run variants (Tables 3-5, Figure 3, Figures 4-5).

A *variant* is a run label: a model name, optionally followed by ``@key=value`` config
overrides, e.g. ``urbanmoe@model.d_r=4`` or ``urbanmoe@model.use_region=false``. It names the run
folder (``results/ablations/{dataset}/{split}/{variant}/seed{N}``), is recorded in the run's
``metrics.json`` and is parsed back into ``--set`` overrides by :func:`parse_variant`, so a
folder says exactly how it was made.

Which variants each experiment needs comes from the paper items (``paper_items.py``): every
row trained for an item (Table 3's seven allocations, Table 4's embedding ablations), and
Figure 3's curves over ``experiments.d_r`` and ``experiments.eps``; Figures 4-5 and the
sparsity table read the full model's run (``urbanmoe``).
"""

from __future__ import annotations

from typing import Any

from urbanmoe.errors import ConfigError
from urbanmoe.paper_items import FULL_MODEL, ITEMS, Row, rows_from

SEP = "@"
FULL = FULL_MODEL


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


def _value(cfg: dict[str, Any], key: str) -> Any:
    node: Any = cfg
    for part in key.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node


def row_variant(row: Row, cfg: dict[str, Any] | None = None) -> str:
    """The variant label of a paper row's runs: the full model when the row's settings are
    those of ``cfg`` already (a run shared between items), else the model with the overrides."""
    if cfg is not None and row.model == FULL and all(
            _value(cfg, k) == v for k, v in row.overrides.items()):
        return FULL
    return variant_label(row.model, dict(row.overrides))


def item_variants(item: str, cfg: dict[str, Any] | None = None) -> dict[str, str]:
    """Row key -> variant label of the rows of ``item`` trained for it (paper_items.py)."""
    return {r.key: row_variant(r, cfg) for r in rows_from(item, "ablations")}


def table3_variants(cfg: dict[str, Any]) -> dict[str, str]:
    """Table 3's rows (Table 5's allocations) -> variant label; the allocation of ``model.*``
    is the full model."""
    return item_variants("table3", cfg)


def table4_variants(cfg: dict[str, Any] | None = None) -> dict[str, str]:
    """Table 4's rows trained for it (UrbanMoE's part) -> variant label."""
    return {ITEMS["table4"].row(k).label: v for k, v in item_variants("table4", cfg).items()}


def figure3_variants(cfg: dict[str, Any]) -> dict[str, dict[float, str]]:
    """Figure 3's curves: ``d_r`` and ``eps`` value -> variant label (the default is the full
    model)."""
    m, e = cfg["model"], cfg["experiments"]
    out: dict[str, dict[float, str]] = {}
    for key in ITEMS["figure3"].curves:
        out[key] = {v: FULL if v == m[key] else variant_label(FULL, {f"model.{key}": v})
                    for v in e[key]}
    return out


def ablation_variants(cfg: dict[str, Any]) -> list[str]:
    """Every variant the ablation experiments need, each once, the full model first: the rows
    of every paper item trained for it, then Figure 3's curves."""
    labels = [FULL]
    for name in ITEMS:
        labels += item_variants(name, cfg).values()
    for curve in figure3_variants(cfg).values():
        labels += curve.values()
    return list(dict.fromkeys(labels))
