"""The project's errors: bad input is the user's to fix, anything else is a bug of ours.

``InputError`` and its kinds carry one line naming the file, field and value; the ``urbanmoe``
command prints that line and exits 2. Every other exception is a bug: the command says so, keeps
the traceback, and exits 1 (``cli.py``). The kinds subclass ``ValueError`` so that library callers
who catch ``ValueError`` keep working.
"""

from __future__ import annotations


class InputError(ValueError):
    """Bad input (a file, a column, an argument, a setting), as one line naming it."""


class ConfigError(InputError):
    """A configuration problem, as one line naming the file (or ``--set``), key and value."""


class DataError(InputError):
    """Bad input data, as one line: file, column, value."""


class RunError(InputError):
    """A run folder that cannot be used as asked (missing files, another dataset or model)."""


class LLMError(InputError):
    """The describe backend failed or answered something unusable (URL, status, reason)."""


class OutputError(InputError):
    """An output path that may not be written (one the project did not write, one of another
    kind, an input), or a write that could not finish (a full disk), as one line naming it."""


class TrackingError(InputError):
    """An MLflow tracking store that cannot be used (not a database, another program's, locked,
    unreachable), as one line naming it by its URI with credentials masked."""
