"""Which of a city's modalities a model takes, and how (``model.branches``, ``model.context``).

The paper's UrbanMoE has two branches, image and text, each with its own Sparse Multi-Expert
module (Section 2.4), and appends the POI vector p to each branch's z (Section 2.3.2). A city
may bring other modalities: precomputed embeddings and tabular feature groups
(``data/groups.py``). With ``auto`` (the default) the inputs follow the city:

* **branches**: image and text where the city has them, every other precomputed embedding, and
  every feature group wider than ``model.context_max_columns``; the ``pois`` group (the
  ``poi_`` columns) is p itself when there is such a branch (the paper's set-up), and a branch
  of its own otherwise;
* the row profile of every relation (``features/relations.py``) not declared
  ``profile: false``, each a branch of its own;
* with ``model.location`` true (not in the paper; ``auto`` is resolved per model by
  ``training/registry.configured``: true for UrbanMoE and its variants), the location encoding
  of the coordinates (``features/location.py``) when the city has coordinates, a branch of its
  own;
* **context**: the feature groups of at most ``model.context_max_columns`` columns, appended to
  z beside p, so that two mobility flows do not get a module of experts of their own (when
  nothing else forms a branch, they do).

A list names the branches, or the context groups, explicitly; a named modality the city lacks
is left out with a warning (``training/prepare.py``). Baselines take the same inputs
(concatenated).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from urbanmoe.data.groups import POI_GROUP
from urbanmoe.data.table import RegionDataset
from urbanmoe.errors import ConfigError
from urbanmoe.features.base import LOCATION, MODALITIES, has_modality

log = logging.getLogger(__name__)

AUTO = "auto"


@dataclass(frozen=True)
class InputPlan:
    """The modalities that form branches and the feature groups appended to z."""

    branches: tuple[str, ...]
    context: tuple[str, ...] = ()


def plan_inputs(ds: RegionDataset, m: Mapping[str, Any]) -> InputPlan:
    """The plan for ``ds`` under ``model.branches``, ``model.context`` and
    ``model.context_max_columns`` (``m`` = ``model.*``)."""
    groups = ds.feature_groups
    embedded = list(ds.meta.get("embeddings") or {})
    small = int(m.get("context_max_columns", 0))
    if m["branches"] != AUTO:
        branches = list(m["branches"])
        context = [] if m.get("context", AUTO) == AUTO else list(m["context"])
    else:
        primary = [x for x in MODALITIES if has_modality(ds, x)]
        primary += [x for x in embedded if x not in primary]
        tabular = [g for g in groups if not (g == POI_GROUP and primary)]
        profiled = [r for r, rel in ds.relations.items() if rel.profile]
        if m.get("context", AUTO) == AUTO:
            context = [g for g in tabular if len(groups[g].columns) <= small]
            if not primary and not profiled and len(context) == len(tabular):
                context = []  # nothing else to append them to: they form the branches
        else:
            context = list(m["context"])
        branches = primary + [g for g in tabular if g not in context]
        branches += profiled
        if m.get("location") is True and ds.coords is not None and LOCATION not in branches:
            branches.append(LOCATION)
    both = sorted(set(branches) & set(context))
    if both:
        raise ConfigError(f"model.context: {both[0]!r} is also one of model.branches")
    for name in [c for c in context if c not in groups]:
        log.warning("%s: model.context names %r, not one of its feature groups %s; left out",
                    ds.name, name, sorted(groups))
    return InputPlan(tuple(branches), tuple(c for c in context if c in groups))
