"""The parameters the workflow hands its notebooks (papermill ``-p`` / ``-y`` / ``-r``), made
from the validated configuration: lists as YAML, Figure 3's grids, the verdicts' settings, and
the plain note on what data the runs used."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from urbanmoe.paper_items import ITEMS

Config = dict[str, Any]


def yaml_scalar(value: Any) -> str:
    """A value as YAML reads it back: strings double-quoted (JSON's quoting is valid YAML), so
    that a name holding a space, quote, comma or ``#`` stays one string; numbers as written."""
    return json.dumps(value) if isinstance(value, str) else str(value)


def yaml_list(values: Iterable[Any]) -> str:
    """A list as a YAML flow sequence, for papermill's -y parameters."""
    return "[" + ", ".join(yaml_scalar(v) for v in values) + "]"


def ablation_grids(cfg: Config) -> str:
    """Figure 3's grids for the ablations notebook (papermill -y)."""
    exp = cfg["experiments"]
    return "{" + ", ".join(f"{key}_values: {yaml_list(exp[key])}"
                           for key in ITEMS["figure3"].curves) + "}"


def bootstrap_params(cfg: Config) -> str:
    """The block bootstrap's settings as papermill parameters (``-p``)."""
    b = cfg["verdicts"]["bootstrap"]
    return (f"-p block_km {cfg['split']['block_km']} -p replicates {b['replicates']}"
            f" -p bootstrap_seed {b['seed']}")


def verdict_params(cfg: Config) -> str:
    """The verdicts' settings (``-p``) of Table 2's notebook: its marks and the bootstrap."""
    v = cfg["verdicts"]
    return (f"-p confidence {v['confidence']} -p min_pairs {v['min_pairs']} "
            + bootstrap_params(cfg))


def data_note(cfg: Config) -> str:
    """What the runs ran on, said plainly (none of it is the data of the paper)."""
    datasets, real = cfg["data"]["datasets"], cfg["data"]["urbanclip"]
    synth = [d for d in datasets if d in cfg["synth"]["cities"] and d not in real]
    ours = [d for d in datasets if d in real]
    other = [d for d in datasets if d not in synth and d not in ours]
    kinds = {"the embedded synthetic benchmark": synth, "UrbanCLIP-toolkit real cities": ours,
             "user datasets": other}
    parts = [f"{kind} ({', '.join(names)})" for kind, names in kinds.items() if names]
    return "; ".join(parts) + ", not the data of the paper"
