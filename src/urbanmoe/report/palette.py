"""A colour-blind-safe palette shared by the paper's figures (Figures 3-6 and the appendices),
and the one way figures are saved (PNG and PDF, atomically).

Okabe & Ito's eight colours ("Color Universal Design", 2008), black last, and one colour per
expert category of Section 2 (task-specific, dual-task, shared experts, and the fused output).
"""

from __future__ import annotations

from itertools import cycle, islice
from pathlib import Path
from typing import Any

from urbanmoe.io import atomic_path, claim

#: Okabe-Ito colours: orange, sky blue, bluish green, yellow, blue, vermillion, reddish purple,
#: black.
ORANGE, SKY_BLUE, BLUISH_GREEN, YELLOW = "#E69F00", "#56B4E9", "#009E73", "#F0E442"
BLUE, VERMILLION, REDDISH_PURPLE, BLACK = "#0072B2", "#D55E00", "#CC79A7", "#000000"
OKABE_ITO: list[str] = [ORANGE, SKY_BLUE, BLUISH_GREEN, YELLOW, BLUE, VERMILLION,
                        REDDISH_PURPLE, BLACK]
#: Expert categories (labels like "specific:carbon" start with these) and fused outputs.
CATEGORY_COLOURS: dict[str, str] = {"specific": BLUE, "dual": ORANGE, "shared": BLUISH_GREEN,
                                    "fused": VERMILLION}


def colours(n: int) -> list[str]:
    """``n`` Okabe-Ito colours in order, repeating after eight."""
    return list(islice(cycle(OKABE_ITO), n))


def category_colour(label: str) -> str:
    """The colour of an expert label such as "dual:carbon-population" (grey when unknown)."""
    return CATEGORY_COLOURS.get(label.split(":", 1)[0], "#999999")


def use_agg() -> None:
    """Select matplotlib's non-interactive Agg backend (library code draws to files only).

    A no-op when Agg is already selected (switching closes pyplot's open figures).
    """
    import matplotlib

    if matplotlib.get_backend().lower() != "agg":
        matplotlib.use("Agg")


def save_figure(fig: Any, stem: Path | str, dpi: int = 150) -> list[Path]:
    """Write ``stem.png`` and ``stem.pdf`` (each atomically) and close the figure."""
    import matplotlib.pyplot as plt

    paths = [Path(stem).with_suffix(s) for s in (".png", ".pdf")]
    claim(paths, "figure")
    for path in paths:
        with atomic_path(path, "figure") as tmp:
            fig.savefig(tmp, dpi=dpi, format=path.suffix[1:], bbox_inches="tight")
    plt.close(fig)
    return paths
