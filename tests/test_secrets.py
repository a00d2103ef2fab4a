"""Secrets are never printed: not by ``track`` (what it prints and records), not in an error
line, a traceback file or a log record, not in what the LLM backend repeats of a server's answer;
and an error line repeats at most about 1000 characters of what it quotes. Each secret shape is
checked as written and in the forms it travels in (URL-quoted, base64 ``user:password``)."""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote

import pandas as pd
import pytest
from refusal import CONFIG, expect_refusal, small_city
from test_bad_stores import closed_port
from test_tracking import make_run

import urbanmoe.tracking
from urbanmoe.cli import main
from urbanmoe.errors import InputError
from urbanmoe.redact import cap, known_secrets, redact, shown

SECRET = "Zq7-secret-Vx9"
KEY = "sk-test-" + "Kk4SecretKey0000"
ROOT = Path(__file__).resolve().parents[1]


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def forms(secret: str, user: str = "alice") -> list[str]:
    """What must never show: the secret, URL-quoted, and the base64 ``user:secret``."""
    return [secret, quote(secret, safe=""), b64(f"{user}:{secret}")]


def clean(*texts: str, secret: str = SECRET) -> None:
    for text in texts:
        for form in forms(secret):
            assert form not in text, f"{form!r} shown in {text!r}"


# ---------------------------------------------------------------- the redactor itself

LEAKS = [
    ("userinfo password", f"http://alice:{SECRET}@host:5000/api", "http://***@host:5000/api"),
    ("userinfo token only", f"https://{SECRET}@github.com/x.git", "https://***@github.com/x.git"),
    ("userinfo with an @", f"http://alice:p@{SECRET}@host/", "http://***@host/"),
    ("query token", f"sqlite:////tmp/m.db?token={SECRET}&mode=rw",
     "sqlite:////tmp/m.db?token=***&mode=rw"),
    ("query api_key and signature", f"https://h/v1?API_KEY={SECRET}&X-Amz-Signature={SECRET}",
     "https://h/v1?API_KEY=***&X-Amz-Signature=***"),
    ("k=v in text", f"retry with password={SECRET} later", "retry with password=*** later"),
    ("JSON key", f'{{"client_secret": "{SECRET}"}}', '{"client_secret": "***"}'),
    ("Authorization header", f"Authorization: Basic {b64('alice:' + SECRET)}",
     "Authorization: Basic ***"),
    ("Basic echo", f"got Basic {b64('alice:' + SECRET)} here", "got Basic *** here"),
    ("Bearer echo", f"header was Bearer {KEY}.", "header was Bearer ***."),
    ("Token echo", f"Token {SECRET}", "Token ***"),
    ("sk- key alone", f"the key {KEY} is invalid", "the key *** is invalid"),
    ("x-api-key header", f"x-api-key: {SECRET}", "x-api-key: ***"),
]


@pytest.mark.parametrize(("text", "masked"), [c[1:] for c in LEAKS], ids=[c[0] for c in LEAKS])
def test_redact_masks_each_shape(text: str, masked: str) -> None:
    assert redact(text, env={}) == masked
    assert redact(masked, env={}) == masked  # idempotent


HARMLESS = ["Basic auth failed", "Token expired", "monkey=banana", "KeyError: 'x'", "sigma: 3",
            "http://host:8080/path?page=2", "/tmp/a@b/c", "mail me at a@b.c", "skip-this",
            "--set train.lr=abc: train.lr: 'abc' is not of type 'number'",
            "sqlite:///mlflow.db", "the bearer of bad news", "not of the form key=value",
            "'model.d_r' is not KEY=VALUE"]


@pytest.mark.parametrize("text", HARMLESS)
def test_redact_leaves_what_is_no_secret(text: str) -> None:
    assert redact(text, env={}) == text


def test_known_secrets_from_the_environment() -> None:
    env = {"URBANMOE_LLM_API_KEY": "abcd", "MLFLOW_TRACKING_USERNAME": "alice",
           "MLFLOW_TRACKING_PASSWORD": SECRET, "MLFLOW_TRACKING_URI": f"http://bob:p%2F{SECRET}@h",
           "SOME_SERVICE_TOKEN": "t0ken-value", "TOKENIZERS_PARALLELISM": "false",
           "PWD": "/work/somewhere", "HF_HUB_OFFLINE": "1"}
    found = known_secrets(env)
    assert {"abcd", SECRET, b64(f"alice:{SECRET}"), f"p/{SECRET}", b64(f"bob:p/{SECRET}"),
            "t0ken-value"} <= set(found)
    assert not {"false", "/work/somewhere", "1"} & set(found)
    text = (f"key abcd, {SECRET}, p/{SECRET}, Basic {b64(f'bob:p/{SECRET}')} t0ken-value "
            "in /work/somewhere")
    assert redact(text, env=env) == "key ***, ***, ***, Basic *** *** in /work/somewhere"
    assert redact(f"said {SECRET}", [SECRET], env={}) == "said ***"


def test_cap_keeps_start_and_end() -> None:
    text = "A" * 600 + "m" * 5000 + "Z" * 600
    out = cap(text)
    assert len(out) < 1050 and out.startswith("A" * 400) and out.endswith("Z" * 400)
    assert re.search(r" … \(\d+ characters cut\) … ", out)
    assert cap("short") == "short"


def test_shown_redacts_before_it_cuts() -> None:
    """A secret straddling the cut is masked whole, never left half shown."""
    text = "x" * 20 + f" Bearer {KEY} " + "y" * 3000
    for limit in (30, 40, 60):
        out = shown(text, limit=limit)
        assert KEY[:12] not in out and "\n" not in out
    huge = f"password={SECRET} " + "z" * 10_000_000 + f" token={SECRET}"
    assert SECRET not in shown(huge) and len(shown(huge)) < 1100


# ---------------------------------------------------------------- track

@dataclass
class Shape:
    """A secret in a tracking set-up: the URI, the environment, what a server echoes."""

    name: str
    uri: str  # {store}: a store folder, {port}: a closed port
    env: dict[str, str] = field(default_factory=dict)
    echo: str = ""


SHAPES = [
    Shape("userinfo password", "http://alice:" + SECRET + "@127.0.0.1:{port}/"),
    Shape("query token", "sqlite:///{store}/mlflow.db?token=" + SECRET),
    Shape("Basic header echo", "http://127.0.0.1:{port}/",
          {"MLFLOW_TRACKING_USERNAME": "alice", "MLFLOW_TRACKING_PASSWORD": SECRET},
          "401: bad header Authorization: Basic " + b64("alice:" + SECRET)),
    Shape("Bearer echo", "http://127.0.0.1:{port}/", {"MLFLOW_TRACKING_TOKEN": SECRET},
          "401: Bearer " + SECRET + " expired"),
    Shape("the configured key itself", "http://127.0.0.1:{port}/",
          {"URBANMOE_LLM_API_KEY": SECRET}, "unknown key " + SECRET),
]


@pytest.fixture(params=SHAPES, ids=lambda s: s.name)
def shape(request: pytest.FixtureRequest, tmp_path: Path,
          monkeypatch: pytest.MonkeyPatch) -> Shape:
    """The shape with its URI set in ``MLFLOW_TRACKING_URI`` and its environment applied."""
    s: Shape = request.param
    (tmp_path / "store").mkdir()
    uri = s.uri.format(store=tmp_path / "store", port=closed_port())
    for name, value in {**s.env, "MLFLOW_TRACKING_URI": uri}.items():
        monkeypatch.setenv(name, value)
    return Shape(s.name, uri, s.env, s.echo)


def _stub(monkeypatch: pytest.MonkeyPatch, shape: Shape, raises: type[Exception] | None = None
          ) -> None:
    """Replace the mirror (not what track prints and records) by one that logs the URI and the
    echo, then returns a run id or raises ``raises`` repeating them."""
    def mirror(run_dir: Path, experiment: str, settings: str = "default") -> str:
        logging.getLogger("urbanmoe.tracking").warning("mirroring to %s: %s", shape.uri,
                                                       shape.echo)
        if raises is not None:
            raise raises(f"store {shape.uri} answered {shape.echo}")
        return "0" * 32

    monkeypatch.setattr(urbanmoe.tracking, "mirror_run", mirror)


def test_track_prints_and_records_no_secret(shape: Shape, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str],
                                            caplog: pytest.LogCaptureFixture,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    if not shape.uri.startswith("sqlite"):  # nothing serves http here: the mirror is stubbed
        _stub(monkeypatch, shape)
    run, record = make_run(tmp_path / "runs", 0), tmp_path / "record.json"
    assert main(["track", str(run), "--experiment", "e", "--record", str(record)]) == 0
    out, err = capsys.readouterr()
    clean(out, err, record.read_text(), caplog.text)
    uri = json.loads(record.read_text())[0]["tracking_uri"]
    assert uri == redact(shape.uri) and f"-> {uri} experiment e run " in out
    if shape.uri.startswith("sqlite"):
        assert "token=***" in uri and (tmp_path / "store/mlflow.db").is_file()


def test_track_refusals_show_no_secret(shape: Shape, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str],
                                       caplog: pytest.LogCaptureFixture,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    run, record = make_run(tmp_path / "runs", 0), tmp_path / "record.json"
    argv = ["track", str(run), "--experiment", "e", "--record", str(record)]
    if shape.uri.startswith("sqlite"):
        (tmp_path / "store/mlflow.db").write_bytes(b"garbage" * 100)
    line = expect_refusal(argv, ["MLflow tracking store"], capsys, watch=[tmp_path / "store"],
                          absent=[record])  # the real store check: unreachable or not sqlite
    clean(line)
    _stub(monkeypatch, shape, raises=InputError)
    line = expect_refusal(argv, ["answered"], capsys, absent=[record])
    clean(line, caplog.text)


def test_internal_errors_and_their_tracebacks_show_no_secret(
        shape: Shape, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    _stub(monkeypatch, shape, raises=RuntimeError)
    run = make_run(tmp_path / "runs", 0)
    assert main(["track", str(run), "--experiment", "e"]) == 1
    err = capsys.readouterr().err
    line = next(x for x in err.splitlines() if x.startswith("urbanmoe: internal error"))
    where = Path(re.search(r"traceback in (\S+)", line).group(1))
    text = where.read_text()
    where.unlink()
    assert "RuntimeError: store " in text and "answered" in text
    clean(err, text)


def test_log_records_are_redacted_on_the_real_stderr(tmp_path: Path) -> None:
    """In a process of its own: the root handler ``main`` configures and MLflow's own."""
    uri = f"sqlite:///{tmp_path}/mlflow.db?token={SECRET}"
    run = make_run(tmp_path / "runs", 0)
    script = (
        "import logging, sys\n"
        "from urbanmoe.cli import main\n"
        f"code = main(['track', {str(run)!r}, '--experiment', 'e'])\n"
        "for name in ('urbanmoe.x', 'mlflow.store', 'sqlalchemy.engine'):\n"
        f"    logging.getLogger(name).warning('uri %s key %s', {uri!r}, {KEY!r})\n"
        f"logging.getLogger('urbanmoe.x').error('failed', exc_info=RuntimeError({SECRET!r}))\n"
        "sys.exit(code)\n")
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "PYTHONPATH": str(ROOT / "src"),
           "MLFLOW_TRACKING_PASSWORD": SECRET}
    proc = subprocess.run([sys.executable, "-c", script], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count("uri sqlite:///") >= 2 and "token=***" in proc.stderr
    clean(proc.stdout, proc.stderr)
    clean(proc.stderr, secret=KEY)


# ---------------------------------------------------------------- the LLM backend

@contextmanager
def echo_server() -> Iterator[str]:
    """A chat-completions server answering 401 with a body that repeats the request's
    Authorization header, its path and the key: its base URL."""
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            self.rfile.read(int(self.headers["Content-Length"]))
            auth = self.headers.get("Authorization", "")
            key = auth.partition(" ")[2]
            message = (f"{'x' * 250} invalid credentials: Authorization: {auth}; the key {key} "
                       f"at {self.path}; decoded {base64.b64decode(key + '==').decode('latin-1')}"
                       if auth.startswith("Basic") else
                       f"{'x' * 270} Bearer {key} at {self.path} (key {key})")
            data = json.dumps({"error": {"message": message}}).encode()
            self.send_response(401)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    finally:
        httpd.shutdown()
        httpd.server_close()


LLM_SHAPES = [  # (name, base URL from the server's, key, the secret)
    ("configured key (Bearer echo)", lambda u: u, SECRET, SECRET),
    ("sk- key (Bearer echo)", lambda u: u, KEY, KEY),
    ("userinfo password (Basic echo)", lambda u: u.replace("//", f"//alice:{SECRET}@"), "",
     SECRET),
    ("query token", lambda u: f"{u}?api_key={SECRET}", "", SECRET),
]


@pytest.mark.parametrize(("base", "key", "secret"), [s[1:] for s in LLM_SHAPES],
                         ids=[s[0] for s in LLM_SHAPES])
def test_llm_errors_show_no_secret(base, key: str, secret: str, tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str],
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    city = small_city(tmp_path / "city")
    table = pd.read_csv(city / "regions.csv")  # categories the prompt knows
    table.rename(columns={"poi_education": "poi_education_culture"}).to_csv(
        city / "regions.csv", index=False)
    with echo_server() as url:
        monkeypatch.setenv("URBANMOE_LLM_BASE_URL", base(url))
        monkeypatch.setenv("URBANMOE_LLM_MODEL", "m")
        monkeypatch.setenv("URBANMOE_LLM_API_KEY", key)
        line = expect_refusal(["describe", "--quiet", "--config", str(CONFIG), "--backend",
                               "openai", "--dataset", str(city), "--out", str(tmp_path / "out"),
                               "--cache", str(tmp_path / "cache")],
                              ["HTTP 401", "/chat/completions"], capsys, watch=[city],
                              absent=[tmp_path / "out"])
    clean(line, secret=secret)
    assert secret[:6] not in line  # not even the part before a cut


# ---------------------------------------------------------------- what an error repeats

HUGE = [
    ("3 MB string", "train.lr=" + "x" * 3_000_000),
    ("90,000 items", "train.lr=[" + ",".join(["1"] * 90_000) + "]"),
    ("nested aliases", "train.lr=" + "[&a [1,2,3,4,5,6,7,8,9], " + ", ".join(["*a"] * 5000)
     + "]"),
    ("a credential in the value", f"train.lr=http://alice:{SECRET}@host/?token={SECRET}"),
]


@pytest.mark.parametrize("item", [h[1] for h in HUGE], ids=[h[0] for h in HUGE])
def test_a_huge_set_value_is_one_short_line(item: str, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    city = small_city(tmp_path / "city")
    line = expect_refusal(["train", "--config", str(CONFIG), "--dataset", str(city), "--seed",
                           "0", "--out", str(tmp_path / "run"), "--set", item],
                          ["--set train.lr="], capsys, watch=[city], absent=[tmp_path / "run"])
    assert len(line) < 1200
    clean(line)
