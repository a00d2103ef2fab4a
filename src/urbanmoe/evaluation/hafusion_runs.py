"""The runs of HAFusion's table (``paper_items.ITEMS["hafusion"]``, docs/hafusion.md) as named
variants, read by the workflow's ``hafusion`` target and its MLflow experiment.

Every reimplemented method (``hafusion.methods``) runs three ways: under their protocol as
published (the checkpoint picked on the test folds), under their protocol with the epoch fixed
(the final one), and under the project's protocol (``hafusion.folds`` folds shuffled per seed,
choices on validation). Each of the project's models (``hafusion.models``) runs under both
protocols. A variant is ``model@key=value...`` (``evaluation/experiments.py``); its folder is
``results/hafusion/{city}/{variant}/seed{N}``.
"""

from __future__ import annotations

from typing import Any

from urbanmoe.evaluation.experiments import variant_label

ROOT = "results/hafusion"
DATASETS = "data/real/hafusion"


def theirs(select_epoch: str | None = None) -> dict[str, Any]:
    """Overrides of their protocol (optionally with the test-fold selection)."""
    out: dict[str, Any] = {"protocol.name": "hafusion"}
    if select_epoch:
        out["protocol.hafusion.select_epoch"] = select_epoch
    return out


def project(cfg: dict[str, Any]) -> dict[str, Any]:
    """Overrides of the project's protocol on these cities (K folds, shuffled per seed)."""
    return {"split.kind": "kfold", "split.folds": cfg["hafusion"]["folds"]}


def variants(cfg: dict[str, Any]) -> list[str]:
    """Every variant the table needs, the reimplemented methods first."""
    h = cfg["hafusion"]
    out = []
    for model in h["methods"].values():
        out += [variant_label(model, theirs("test_folds")), variant_label(model, theirs()),
                variant_label(model, project(cfg))]
    for model in h["models"]:
        out += [variant_label(model, theirs()), variant_label(model, project(cfg))]
    return list(dict.fromkeys(out))


def runs(cfg: dict[str, Any]) -> list[str]:
    """Every run folder of the table."""
    h = cfg["hafusion"]
    return [f"{ROOT}/{city}/{v}/seed{s}" for city in h["cities"] for v in variants(cfg)
            for s in h["seeds"]]


def city_sets(cfg: dict[str, Any], city: str) -> list[str]:
    """``--set`` arguments of every run in ``city`` (``hafusion.city_settings``)."""
    return [a for item in cfg["hafusion"]["city_settings"].get(city, []) for a in ("--set", item)]


class HafusionPlan:
    """The ``hafusion`` target's lists and input functions, mixed into the workflow's ``Plan``
    (``urbanmoe.workflow``): ``self.cfg`` is the validated configuration."""

    cfg: dict[str, Any]

    def hafusion_init(self) -> None:
        from urbanmoe.paper_items import outputs_of

        h = self.cfg["hafusion"]
        self.hafusion_runs = runs(self.cfg)
        self.hafusion_artifacts = [f"paper_figures/{f}" for f in outputs_of("hafusion.ipynb")]
        # the folders of one job (all seeds of a variant in a city), as wildcard patterns
        self.hafusion_seed_folders = [f"{ROOT}/{{city}}/{{variant}}/seed{s}" for s in h["seeds"]]
        self.hafusion_seed_args = " ".join(str(s) for s in h["seeds"])
        self.hafusion_yaml = "\n".join([
            f"methods: {_flow(h['methods'])}", f"not_run: {_flow(h['not_run'])}",
            "models: [" + ", ".join(_quoted(m) for m in h["models"]) + "]"])

    def hafusion_source(self, wildcards: Any) -> str:
        return f"{self.cfg['hafusion']['source']}/data_{wildcards.city}"


    @staticmethod
    def hafusion_pattern(wildcards: Any) -> str:
        return f"{ROOT}/{wildcards.city}/{wildcards.variant}/seed{{seed}}"

    def hafusion_sets(self, wildcards: Any) -> list[str]:
        return city_sets(self.cfg, wildcards.city)

    def hafusion_shared(self, wildcards: Any) -> list[str]:
        """A reimplemented method's other variants wait for its first (as published), whose
        job learns the representation they read from the cache (label-free: one per seed)."""
        model = wildcards.variant.split("@")[0]
        first = variant_label(model, theirs("test_folds"))
        if model not in self.cfg["hafusion"]["methods"].values() or wildcards.variant == first:
            return []
        return [f"{ROOT}/{wildcards.city}/{first}/seed{s}" for s in self.cfg["hafusion"]["seeds"]]

    def hafusion_priority(self, wildcards: Any) -> int:
        """The representation learners' first variants start first (the longest jobs)."""
        model = wildcards.variant.split("@")[0]
        first = wildcards.variant == variant_label(model, theirs("test_folds"))
        return 50 if first and model in self.cfg["hafusion"]["methods"].values() else 0


def _quoted(text: str) -> str:
    return '"' + str(text).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _flow(mapping: dict[str, str]) -> str:
    """A YAML flow mapping of strings, every key and value quoted (papermill -y)."""
    return "{" + ", ".join(f"{_quoted(k)}: {_quoted(v)}" for k, v in mapping.items()) + "}"
