"""The command line's argument types and parser: values out of range, and every other argument
error, are one ``urbanmoe: error:`` line and exit status 2, like any bad input (docs/cli.md,
"What urbanmoe never does")."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any, NoReturn

from urbanmoe.redact import shown

EXIT_BAD_INPUT = 2
SEED_MAX = 2**32 - 1  # numpy's generators take seeds in 0 .. 2**32 - 1


def bounded(kind: type, low: float, high: float, what: str) -> Callable[[str], Any]:
    """An argparse type: a finite ``kind`` (int or float) in [low, high], else one message."""
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or not low <= value <= high:  # NaN fails both comparisons
            raise argparse.ArgumentTypeError(f"{what} from {kind(low)} to {kind(high)}, "
                                             f"got {text[:40]!r}")
        return value
    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


seed = bounded(int, 0, SEED_MAX, "a seed is an integer")
patch_px = bounded(int, 8, 100_000, "a patch side is an integer of pixels")
metres = bounded(float, 1e-3, 1e6, "a resolution is a number of metres")
degrees = bounded(float, -180.0, 180.0, "a bbox corner is a number of degrees")


class Parser(argparse.ArgumentParser):
    """argparse with the project's error form: one ``urbanmoe: error:`` line, exit 2."""

    def error(self, message: str) -> NoReturn:
        """Print one line naming the verb and the problem (with where help is), secrets masked
        and capped like every error line, and exit 2."""
        self.exit(EXIT_BAD_INPUT, f"urbanmoe: error: {self.prog}: {shown(message)} "
                                  f"(see {self.prog} --help)\n")
