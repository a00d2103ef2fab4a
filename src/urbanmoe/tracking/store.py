"""The MLflow tracking store checked before MLflow touches it, and its failures as one line.

MLflow takes over any sqlite file it is pointed at: it creates its tables in another program's
database and migrates what it finds. :func:`check_store` therefore opens an existing sqlite file
read-only first and refuses one that is not a database, is locked by another program for longer
than :data:`STORE_WAIT_S`, or holds tables but not MLflow's; an http(s) store is refused when
nothing answers at its host and port. :func:`store_errors` turns what the store raises later
(locked, corrupt, unreachable, refused by the server) into a :class:`TrackingError`. Every
message names the store by its URI with credentials masked (:mod:`urbanmoe.redact`).
"""

from __future__ import annotations

import contextlib
import socket
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, urlsplit

from urbanmoe.errors import TrackingError
from urbanmoe.redact import redact, shown

STORE_WAIT_S = 30.0  # how long a store locked by another program is waited for
#: tables (and columns) a sqlite file must hold, when it holds any, to be an MLflow store
MLFLOW_TABLES = {"experiments": {"experiment_id", "name", "artifact_location", "lifecycle_stage"},
                 "runs": {"run_uuid", "experiment_id", "status", "lifecycle_stage"}}


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI, else None."""
    if not uri.startswith("sqlite:///"):
        return None
    path = uri[len("sqlite:///"):].split("?", 1)[0]
    return Path(path) if path and path != ":memory:" else None


def _refuse(uri: str, reason: str) -> TrackingError:
    return TrackingError(f"MLflow tracking store {redact(uri)}: {shown(reason, limit=300)}")


def _check_sqlite(uri: str, db: Path) -> None:
    """Refuse an existing ``db`` that is not an MLflow store (it is only read)."""
    if not db.exists():
        return  # a new store: MLflow creates it
    if not db.is_file():
        raise _refuse(uri, f"{db} is not a file")
    try:
        con = sqlite3.connect(f"file:{quote(str(db.resolve()))}?mode=ro", uri=True,
                              timeout=STORE_WAIT_S)
    except sqlite3.Error as exc:
        raise _refuse(uri, f"{db} cannot be opened: {exc}") from None
    try:
        names = {name for (name,) in con.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")}
        tables = {t for t in names if not t.startswith(("alembic_", "sqlite_"))}
        columns = {t: {row[1] for row in con.execute(f'PRAGMA table_info("{t}")')}
                   for t in MLFLOW_TABLES if t in tables}
    except sqlite3.OperationalError as exc:
        if "locked" in str(exc).lower():
            raise _refuse(uri, f"{db} is locked by another program (waited "
                               f"{STORE_WAIT_S:g} s)") from None
        raise _refuse(uri, f"{db} cannot be read: {exc}") from None
    except sqlite3.DatabaseError as exc:
        raise _refuse(uri, f"{db} is not an sqlite database ({exc})") from None
    finally:
        con.close()
    if not tables:
        return  # an empty database: MLflow creates its tables
    lacking = [t for t, cols in MLFLOW_TABLES.items() if not cols <= columns.get(t, set())]
    if lacking or "alembic_version" not in names:
        found = ", ".join(sorted(tables)[:8]) + (", ..." if len(tables) > 8 else "")
        raise _refuse(uri, f"{db} is an sqlite database of another program, not an MLflow "
                           f"store (its tables: {found})")


def _check_http(uri: str) -> None:
    """Refuse an http(s) store whose host and port nothing answers at."""
    parts = urlsplit(uri)
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise _refuse(uri, "its port is not a number") from None
    if not parts.hostname:
        raise _refuse(uri, "it names no host")
    try:
        with socket.create_connection((parts.hostname, port), timeout=min(STORE_WAIT_S, 10.0)):
            pass
    except OSError as exc:
        raise _refuse(uri, f"cannot reach {parts.hostname}:{port} "
                           f"({exc.strerror or type(exc).__name__})") from None


def check_store(uri: str) -> None:
    """Refuse, before MLflow sees it, a store MLflow would fail on or take over: an existing
    sqlite file that is not a database, is locked, or belongs to another program; an http(s)
    server that cannot be reached. Nothing is written."""
    db = sqlite_path(uri)
    if db is not None:
        _check_sqlite(uri, db)
    elif urlsplit(uri).scheme in ("http", "https"):
        _check_http(uri)


def _store_failure(exc: BaseException) -> str | None:
    """Why ``exc`` says the store, not our code, failed; None when it does not."""
    text = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, sqlite3.DatabaseError):
        return text
    try:
        import requests
        import sqlalchemy.exc
        from mlflow.exceptions import MlflowException, RestException
    except ImportError:  # pragma: no cover - mlflow is a dependency
        return None
    if isinstance(exc, (sqlalchemy.exc.OperationalError, sqlalchemy.exc.DatabaseError,
                        requests.RequestException, ConnectionError, TimeoutError)):
        return text
    if isinstance(exc, RestException):
        return text
    if isinstance(exc, MlflowException):
        msg = str(exc)
        if "API request to" in msg or "database schema" in msg or "db upgrade" in msg:
            return text
    return None


@contextlib.contextmanager
def store_errors(uri: str) -> Iterator[None]:
    """Turn a failure of the store (locked, corrupt, unreachable, refused) in the block into a
    :class:`TrackingError` naming the store; anything else passes unchanged."""
    try:
        yield
    except Exception as exc:
        why = _store_failure(exc)
        if why is None:
            raise
        if "locked" in why.lower():
            why = f"locked by another program for longer than the wait ({why})"
        raise _refuse(uri, why) from exc
