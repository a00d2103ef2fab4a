"""Every model that ``model.name`` selects, what family it belongs to and what data it needs.

Three families share one run folder format (``evaluation/run.py``):

* ``neural``: a torch module trained by the loop of ``training/loop.py`` on UrbanMoE's inputs;
  built by ``build(m, b, prep, tasks, seed)`` (``m`` = ``model.*``, ``b`` = ``baselines.*``);
  single-task models get one module per task.
* ``closed_form``: fitted in one call, ``fit_predict(prep, b, seed) -> (test predictions, n_params,
  choices made on validation)``.
* ``representation``: learns (or reads) a representation of every region,
  ``learn(prep, b, seed, device, progress) -> Representation``; the shared MLP head
  (``models/baselines/heads.py``) is then trained on it like a neural model (Appendix A: "the same
  regression head").

``needs`` names what the dataset must have; a dataset without it is skipped with that reason
(``skip_reason``) instead of failing.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from urbanmoe.errors import ConfigError

if TYPE_CHECKING:  # the model list itself is read without pandas or torch (the workflow does)
    import numpy as np

    from urbanmoe.data.table import RegionDataset

Family = Literal["neural", "closed_form", "representation", "auto"]


@dataclass
class Representation:
    """What a representation baseline learned: features of all regions and how it got them."""

    features: np.ndarray  # (N, d) float32 in table order
    n_params: int  # trainable parameters of the encoder (0 for PCA's closed form counts too)
    loss_history: list[float] = field(default_factory=list)  # its objective, per epoch
    note: str = ""  # said in the tables, e.g. "trained from scratch (no ImageNet weights)"
    # epoch -> (N, d) features at that epoch: the checkpoints an evaluation protocol may choose
    # among (``evaluation/protocols.py``); ``features`` is the final one
    snapshots: dict[int, np.ndarray] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelSpec:
    """One ``model.name``."""

    name: str
    family: Family
    target: str  # "module:function" under urbanmoe
    single_task: bool = False
    needs: tuple[str, ...] = ()  # "image", "text", "coords", "poi", "relation", "branch"
    label: str = ""  # row label in Table 2
    # a representation learned without labels: the same for every split, learned once per seed
    label_free: bool = False
    # the model.* settings this model is (e.g. urbanmoe_location: model.location true)
    settings: tuple[tuple[str, Any], ...] = ()

    def function(self) -> Callable[..., Any]:
        module, func = self.target.split(":")
        return getattr(importlib.import_module(f"urbanmoe.{module}"), func)


def _spec(name: str, family: Family, target: str, label: str, *, st: bool = False,
          needs: tuple[str, ...] = (), label_free: bool = False,
          settings: tuple[tuple[str, Any], ...] = ()) -> ModelSpec:
    return ModelSpec(name, family, target, st, needs, label, label_free, settings)


_FACTORY = "models.factory:build_model"
_NEURAL = "training.baselines.neural"
_IMAGE = "training.baselines.imagessl"
_BASELINES = "training.baselines"
#: Every model, UrbanMoE and our reference baselines first in the order Table 2 lists those not
#: in the paper (the paper's own rows follow its order: ``paper_items.ITEMS["table2"].models``).
MODELS: dict[str, ModelSpec] = {s.name: s for s in [
    _spec("urbanmoe", "neural", _FACTORY, "UrbanMoE", needs=("branch",)),
    _spec("urbanmoe_st", "neural", _FACTORY, "UrbanMoE (ST)", st=True, needs=("branch",)),
    _spec("urbanmoe_dense", "neural", _FACTORY, "UrbanMoE (eps = 0)", needs=("branch",)),
    _spec("urbanmoe_location", "neural", _FACTORY, "UrbanMoE + location",
          needs=("branch", "coords"), settings=(("location", True),)),
    _spec("mmoe", "neural", f"{_NEURAL}:build_mmoe", "MMoE", needs=("branch",)),
    _spec("ple", "neural", f"{_NEURAL}:build_ple", "PLE/CGC", needs=("branch",)),
    _spec("mlp_mt", "neural", f"{_NEURAL}:build_shared_bottom", "Shared-bottom MLP (MT)",
          needs=("branch",)),
    _spec("mlp_st", "neural", f"{_NEURAL}:build_mlp_st", "MLP (ST)", st=True, needs=("branch",)),
    _spec("lightgbm", "closed_form", f"{_BASELINES}.boosting:fit_predict_lightgbm", "LightGBM",
          needs=("branch",)),
    _spec("knn", "closed_form", f"{_BASELINES}.spatial:fit_predict_knn", "kNN on coordinates",
          needs=("coords",)),
    _spec("knn_tuned", "closed_form", f"{_BASELINES}.spatial:fit_predict_knn_tuned",
          "kNN on coordinates (tuned)", needs=("coords",)),
    _spec("ridge", "closed_form", f"{_BASELINES}.linear:fit_predict_ridge", "Ridge",
          needs=("branch",)),
    _spec("mean", "closed_form", f"{_BASELINES}.linear:fit_predict_mean", "Mean predictor"),
    _spec("remoteclip_st", "neural", f"{_NEURAL}:build_frozen_head", "RemoteCLIP (ST)", st=True,
          needs=("branch",)),
    _spec("remoteclip_mt", "neural", f"{_NEURAL}:build_frozen_head", "RemoteCLIP (MT)",
          needs=("branch",)),
    _spec("autoencoder", "representation", f"{_IMAGE}.autoencoder:learn", "Autoencoder", st=True,
          needs=("image",)),
    _spec("pca", "representation", f"{_IMAGE}.pca:learn", "PCA", st=True, needs=("image",)),
    _spec("resnet18", "representation", f"{_IMAGE}.resnet:learn", "ResNet-18", st=True,
          needs=("image",)),
    _spec("tile2vec", "representation", f"{_IMAGE}.tile2vec:learn", "Tile2Vec", st=True,
          needs=("image", "coords")),
    _spec("read", "representation", f"{_IMAGE}.read:learn", "READ", st=True, needs=("image",)),
    _spec("pg_simclr", "representation", f"{_IMAGE}.pg_simclr:learn", "PG-SimCLR", st=True,
          needs=("image", "coords")),
    _spec("urbanclip_st", "representation", f"{_BASELINES}.urbanclip:learn", "UrbanCLIP (ST)",
          st=True, needs=("image", "text")),
    _spec("urbanclip_mt", "representation", f"{_BASELINES}.urbanclip:learn", "UrbanCLIP (MT)",
          needs=("image", "text")),
    _spec("hafusion", "representation", f"{_BASELINES}.hafusion:learn", "HAFusion", st=True,
          needs=("relation",), label_free=True),
    _spec("mvure", "representation", f"{_BASELINES}.mvure:learn", "MVURE", st=True,
          needs=("relation",), label_free=True),
    # per task, the candidate validation prefers (training/auto.py); it fits them itself
    _spec("auto", "auto", "", "Auto (best on validation)"),
]}


def get(name: str) -> ModelSpec:
    """The spec of ``model.name``; a one-line error naming the known ones otherwise."""
    if name not in MODELS:
        raise ConfigError(f"model.name: unknown {name!r} (known: {sorted(MODELS)})")
    return MODELS[name]


#: UrbanMoE and its variants (the models the factory of Section 2 builds)
URBANMOE_FAMILY = tuple(name for name, spec in MODELS.items() if spec.target == _FACTORY)


def configured(spec: ModelSpec, cfg: dict[str, Any]) -> dict[str, Any]:
    """``cfg`` with the ``model.*`` settings ``spec`` implies, and ``model.location: auto``
    resolved: on for UrbanMoE and its variants, off for every other model; ``auto`` passes it on
    to its candidates, each resolving it so (the same dict when there is nothing to change)."""
    m = {**cfg["model"], **dict(spec.settings)}
    if m.get("location") == "auto" and spec.family != "auto":
        m["location"] = spec.target == _FACTORY
    return cfg if m == cfg["model"] else {**cfg, "model": m}


def skip_reason(spec: ModelSpec, ds: RegionDataset, m: Mapping[str, Any]) -> str | None:
    """Why this dataset cannot serve this model (None when it can); ``m`` = ``model.*``."""
    from urbanmoe.features.base import has_modality
    from urbanmoe.features.plan import plan_inputs

    for need in spec.needs:
        if need == "branch":
            branches = list(plan_inputs(ds, m).branches)
            if not any(has_modality(ds, b) for b in branches):
                return (f"{spec.label} needs a modality (image, text, embeddings or a feature "
                        f"group); {ds.name} has none of the branches {branches}")
        elif need == "coords":
            if ds.coords is None:
                return f"{spec.label} needs lat/lon; {ds.name} has none"
        elif need == "relation":
            if not ds.relations:
                return (f"{spec.label} needs a region x region relation (relations: in "
                        f"dataset.yaml, e.g. mobility flows); {ds.name} has none")
        elif need == "poi":
            if not ds.poi_columns:
                return f"{spec.label} needs POI counts; {ds.name} has none"
        elif need == "relation":
            if not ds.relations:
                return (f"{spec.label} needs a region x region relation (dataset.yaml "
                        f"relations:); {ds.name} has none")
        elif {"image": ds.image_paths, "text": ds.texts}[need] is None:
            column = {"image": "image_path", "text": "text"}[need]
            return f"{spec.label} needs raw {need} data (column {column}); {ds.name} has none"
    return None
