"""The paper's tables and figures as data: one entry per item, read by everything else.

Each :class:`Item` says where it is in the paper, which notebook draws it, what it writes into
``paper_figures/``, which published CSV (``paper/``) it is compared with and which MLflow
experiment mirrors its runs. An item with rows (Tables 3-5) lists them as :class:`Row` entries:
a stable key, the label printed in our table, the key columns of its published row, and the
settings of its run as named config overrides. The variants the workflow trains
(``evaluation/experiments.py``), the rule targets and artifact lists (``urbanmoe.workflow``),
the rows of the tables and their published slots (``report/ablations.py``) and the claims
all read from here, so adding an ablation row is one :class:`Row` in one item.

From a row of the paper to its code, e.g. Table 3's "Special + Dual": ``grep -rn specific_dual``
finds its settings here, its run folder in ``results/ablations/`` (the variant
``urbanmoe@model.n_specific=8@model.n_dual=4@model.n_shared=0``, made by the ``train`` rule)
and its row in ``paper_figures/table3.csv`` (drawn by ``notebooks/ablations.ipynb``).

This module is data only (the lowest layer): it imports nothing of the package.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

FULL_MODEL = "urbanmoe"
TABLE_EXT = ("csv", "md", "tex")
FIGURE_EXT = ("png", "pdf")
COMPARISON_EXT = ("md", "tex")


@dataclass(frozen=True)
class Row:
    """One row of a paper table.

    ``overrides`` are the run's settings as config keys (``model.n_dual``...) on top of the
    configuration; ``source`` says where its runs come from: ``"ablations"`` (trained for the
    item, in ``results/ablations/``) or ``"table2"`` (the Table 2 runs of ``model``).
    ``published`` holds the values of the published CSV's key columns that find its row there
    (None: not in the paper).
    """

    key: str
    label: str
    overrides: Mapping[str, Any] = field(default_factory=dict)
    published: Mapping[str, Any] | None = None
    model: str = FULL_MODEL
    source: str = "ablations"

    def settings(self) -> dict[str, Any]:
        """The overrides of ``model.*`` keys without the prefix (``{"n_dual": 4}``)."""
        return {k.removeprefix("model."): v for k, v in self.overrides.items()
                if k.startswith("model.")}


@dataclass(frozen=True)
class Item:
    """One table or figure of the paper and everything the project makes for it."""

    name: str
    title: str
    section: str
    notebook: str | None
    outputs: tuple[str, ...]
    published: str | None = None
    experiment: str | None = None
    rows: tuple[Row, ...] = ()
    curves: tuple[str, ...] = ()  # Figure 3: model.<key> varied over experiments.<key>
    models: tuple[str, ...] = ()  # Table 2: the paper's models (model.name), in its row order
    # the workflow target that makes it: "paper" (the paper's own, on the embedded default or
    # the configured cities) or another (a published table reproduced on public data)
    target: str = "paper"

    def row(self, key: str) -> Row:
        """The row called ``key``."""
        for r in self.rows:
            if r.key == key:
                return r
        raise KeyError(f"{self.name} has no row {key!r} (rows: {[r.key for r in self.rows]})")


def _files(stem: str, exts: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(f"{stem}.{ext}" for ext in exts)


def _allocation(key: str, label: str, specific: int, shared: int, dual: int) -> Row:
    """A Table 3/5 row: expert counts per task (specific, dual per pair) and shared."""
    return Row(key, label,
               {"model.n_specific": specific, "model.n_dual": dual, "model.n_shared": shared},
               published={"specific": specific > 0, "shared": shared > 0, "dual": dual > 0})


#: Table 5's seven allocations (16 experts per task for T = 3), in the paper's order; Table 3
#: evaluates each of them.
ALLOCATIONS = (
    _allocation("specific_only", "Special-task only", 16, 0, 0),
    _allocation("shared_only", "Shared only", 0, 16, 0),
    _allocation("dual_only", "Dual-task only", 0, 0, 8),
    _allocation("specific_shared", "Special + Shared", 8, 8, 0),
    _allocation("specific_dual", "Special + Dual", 8, 0, 4),
    _allocation("shared_dual", "Shared + Dual", 0, 8, 4),
    _allocation("all_three", "All three types", 8, 4, 2),
)

ITEMS: dict[str, Item] = {item.name: item for item in (
    Item("table1", "Table 1: statistics of the datasets", "Section 3.1", "dataset.ipynb",
         (*_files("table1", TABLE_EXT), *_files("published_vs_reproduced_table1",
                                                 COMPARISON_EXT)),
         published="published_table1.csv"),
    Item("figure6", "Figure 6: samples of the three modalities", "Appendix A", "dataset.ipynb",
         _files("figure6", FIGURE_EXT)),
    Item("table2", "Table 2: UrbanMoE against the baselines", "Section 3.4", "table2.ipynb",
         (*_files("table2", TABLE_EXT), *_files("published_vs_reproduced", COMPARISON_EXT)),
         published="published_table2.csv", experiment="table2",
         models=("autoencoder", "pca", "resnet18", "tile2vec", "read", "pg_simclr", "urbanclip_st",
                 "remoteclip_st", "urbanclip_mt", "remoteclip_mt", "urbanmoe_st", FULL_MODEL)),
    Item("table3", "Table 3: expert types", "Section 3.5", "ablations.ipynb",
         (*_files("table3", TABLE_EXT), *_files("published_vs_reproduced_table3",
                                                 COMPARISON_EXT)),
         published="published_table3.csv", experiment="table3", rows=ALLOCATIONS),
    Item("table4", "Table 4: region and POI embeddings", "Section 3.5", "ablations.ipynb",
         (*_files("table4", TABLE_EXT), *_files("published_vs_reproduced_table4",
                                                 COMPARISON_EXT)),
         published="published_table4.csv", experiment="table4", rows=(
             Row("remoteclip_st", "RemoteCLIP (ST)", published={"variant": "RemoteCLIP(ST)"},
                 model="remoteclip_st", source="table2"),
             Row("urbanclip_st", "UrbanCLIP (ST)", published={"variant": "UrbanCLIP(ST)"},
                 model="urbanclip_st", source="table2"),
             Row("no_region_poi", "w/o Region & POI",
                 {"model.use_region": False, "model.use_poi": False},
                 published={"variant": "w/o Region & POI"}),
             Row("no_poi", "w/o POI", {"model.use_poi": False},
                 published={"variant": "w/o POI"}),
             Row("no_region", "w/o Region", {"model.use_region": False},
                 published={"variant": "w/o Region"}),
             Row("full", "UrbanMoE", published={"variant": "UrbanMoE"}),
         )),
    Item("table5", "Table 5: expert allocation per configuration", "Appendix B",
         "ablations.ipynb", _files("table5", TABLE_EXT), rows=ALLOCATIONS),
    Item("figure3", "Figure 3: hyper-parameter analysis (d_r, eps)", "Appendix C",
         "ablations.ipynb", _files("figure3", FIGURE_EXT), experiment="figure3",
         curves=("d_r", "eps")),
    Item("figure4", "Figure 4: t-SNE of the experts' outputs", "Section 3.6", "experts.ipynb",
         _files("figure4", FIGURE_EXT), experiment="figures4_5"),
    Item("figure5", "Figure 5: gate weights per task", "Section 3.6", "experts.ipynb",
         (*_files("figure5", FIGURE_EXT), "figure5_weights.csv"), experiment="figures4_5"),
    Item("sparsity", "Sparsity of the gates", "Appendix D", "experts.ipynb",
         _files("sparsity", TABLE_EXT), experiment="figures4_5"),
    Item("claims", "The paper's claims checked against the tables", "Sections 3.4-3.6",
         None, ("claims.md",)),
    # a published real-data table reproduced on the public data it was measured on
    Item("hafusion", "HAFusion (ICDE 2024): its table on its public cities",
         "from HAFusion's paper (Sun et al., ICDE 2024), its comparison table", "hafusion.ipynb",
         tuple(f"hafusion/{stem}_{metric}.{ext}" for stem in ("published_vs_reproduced",
                                                              "our_models")
               for metric in ("r2", "mae", "rmse") for ext in TABLE_EXT),
         published="published_hafusion_icde24.csv", experiment="hafusion", target="hafusion"),
)}

#: What the ablations notebook writes beside its items: every study's groups as one CSV, the
#: runs behind them (per seed) and their block bootstrap replicates (read by the claims).
ABLATIONS_SUMMARY = "ablations_summary.csv"
ABLATIONS_EXTRA = (ABLATIONS_SUMMARY, "ablations_seeds.csv", "ablations_bootstrap.csv")
#: The values behind Table 2's means, per run, and their block bootstrap replicates.
TABLE2_EXTRA = ("table2_seeds.csv", "table2_bootstrap.csv")

def outputs_of(notebook: str) -> list[str]:
    """Every file (under ``paper_figures/``) the notebook writes, its items' in declaration
    order."""
    files = [f for item in ITEMS.values() if item.notebook == notebook for f in item.outputs]
    if notebook == "ablations.ipynb":
        files += ABLATIONS_EXTRA
    if notebook == "table2.ipynb":
        files += TABLE2_EXTRA
    return list(dict.fromkeys(files))


def experiments(target: str = "paper") -> list[str]:
    """The MLflow experiments of ``target``'s runs, each once, in declaration order."""
    return list(dict.fromkeys(i.experiment for i in ITEMS.values()
                              if i.experiment and i.target == target))


def rows_from(item: str, source: str) -> list[Row]:
    """The rows of ``item`` whose runs come from ``source`` (``ablations`` or ``table2``)."""
    return [r for r in ITEMS[item].rows if r.source == source]
