"""MLflow stores that cannot be used are one line, exit 2, and nothing written: a file that is
not a database, another program's database, a store locked by another program for longer than
the wait, a server nothing answers at. The store is named with its credentials masked, and its
file comes out byte-identical (MLflow never got to create its tables in it or migrate it)."""

from __future__ import annotations

import socket
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from refusal import Case, expect_refusal  # a Case spoil writes the store file; None: http
from test_tracking import make_run

from urbanmoe.errors import TrackingError
from urbanmoe.tracking import store

pytest.importorskip("mlflow")
SECRET = "S3cretStorePass"


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens at (bound once, then closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _garbage(db: Path) -> None:
    db.write_bytes(b"\x00not sqlite at all\xff" * 300)


def _foreign(db: Path) -> None:
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL)")
    con.execute("INSERT INTO invoices VALUES (1, 9.5)")
    con.commit()
    con.close()


def _impostor(db: Path) -> None:
    """Another program's tables named like MLflow's, without MLflow's columns."""
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE experiments (id INTEGER, title TEXT)")
    con.execute("CREATE TABLE runs (id INTEGER)")
    con.execute("CREATE TABLE alembic_version (version_num TEXT)")
    con.commit()
    con.close()


def _truncated(db: Path) -> None:
    """An MLflow store cut short: its header says more pages than the file holds."""
    _foreign(db)
    data = db.read_bytes()
    db.write_bytes(data[:100] + b"\xff" * (len(data) - 100))


CASES = [
    Case("garbage bytes", _garbage, ("not an sqlite database",)),
    Case("another program's database", _foreign, ("another program", "invoices")),
    Case("MLflow's table names without its columns", _impostor, ("another program",)),
    Case("a spoilt database", _truncated, ("mlflow.db",)),
    Case("a folder named like the database", lambda db: db.mkdir(), ("not a file",)),
    Case("unreachable server", None, ("cannot reach 127.0.0.1",)),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_a_bad_store_is_one_line_and_untouched(case: Case, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    run = make_run(tmp_path / "runs", 0)
    folder = tmp_path / "store"
    folder.mkdir()
    if case.spoil is None:
        uri = f"http://alice:{SECRET}@127.0.0.1:{closed_port()}/"
    else:
        case.spoil(folder / "mlflow.db")
        uri = f"sqlite:///{folder / 'mlflow.db'}?token={SECRET}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    record = tmp_path / "record.json"
    line = expect_refusal(["track", str(run), "--experiment", "e", "--record", str(record)],
                          ("MLflow tracking store", *case.says), capsys,
                          watch=[folder, run], absent=[record])
    assert SECRET not in line and "***" in line


@pytest.fixture()
def locked(tmp_path: Path) -> Iterator[Path]:
    """An MLflow store held under ``BEGIN EXCLUSIVE`` by another process for the test."""
    folder = tmp_path / "store"
    folder.mkdir()
    run = make_run(tmp_path / "runs", 0)
    db = folder / "mlflow.db"
    assert subprocess.run([sys.executable, "-m", "urbanmoe.cli", "track", str(run),
                           "--experiment", "e"], env={"MLFLOW_TRACKING_URI": f"sqlite:///{db}",
                                                      **_env()}, cwd=tmp_path).returncode == 0
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sqlite3, sys\n"
         f"c = sqlite3.connect({str(db)!r}, isolation_level=None)\n"
         "c.execute('BEGIN EXCLUSIVE')\nprint('locked', flush=True)\nsys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    try:
        yield db
    finally:
        holder.communicate("")


def _env() -> dict[str, str]:
    import os

    src = str(Path(__file__).resolve().parents[1] / "src")
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [
        src, os.environ.get("PYTHONPATH")]))}


def test_a_store_locked_by_another_program(locked: Path, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store, "STORE_WAIT_S", 0.5)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{locked}")
    run = tmp_path / "runs" / "SH-urbanmoe-0"
    record = tmp_path / "record.json"
    watch = [locked.parent / "mlflow.db", run]
    expect_refusal(["track", str(run), "--experiment", "e", "--record", str(record)],
                   ("MLflow tracking store", "locked by another program"), capsys,
                   watch=watch, absent=[record])


@pytest.mark.parametrize("raised", [
    sqlite3.OperationalError("database is locked"),
    sqlite3.DatabaseError("database disk image is malformed"),
    ConnectionError("connection reset by peer"),
], ids=["locked later", "corrupt later", "reset"])
def test_a_store_failing_midway_is_a_tracking_error(raised: Exception) -> None:
    uri = f"http://bob:{SECRET}@127.0.0.1:5000/"
    with pytest.raises(TrackingError) as info, store.store_errors(uri):
        raise raised
    assert "http://***@127.0.0.1:5000/" in str(info.value) and SECRET not in str(info.value)


def test_a_bug_inside_the_store_block_stays_a_bug() -> None:
    with pytest.raises(KeyError), store.store_errors("sqlite:///x.db"):
        raise KeyError("ours")


def test_a_new_or_empty_store_is_accepted(tmp_path: Path) -> None:
    store.check_store(f"sqlite:///{tmp_path / 'new.db'}")
    (tmp_path / "empty.db").write_bytes(b"")
    store.check_store(f"sqlite:///{tmp_path / 'empty.db'}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.db"]
