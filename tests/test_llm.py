"""POI to text with an LLM backend (Appendix E): a local chat-completions server on 127.0.0.1."""

from __future__ import annotations

import base64
import json
import socket
import threading
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pandas as pd
import pytest
import yaml

from urbanmoe.data.describe import build_prompt
from urbanmoe.data.table import load_dataset
from urbanmoe.features.llm import (
    ENV_API_KEY,
    ENV_BASE_URL,
    ENV_MODEL,
    LLMError,
    OpenAIBackend,
    RateLimiter,
    TemplateBackend,
    cache_key,
    describe_dataset,
    make_backend,
    write_described,
)

# (attempt number from 1, request body) -> (status, headers, JSON body)
Behaviour = Callable[[int, dict], tuple[int, dict[str, str], dict]]


def _answer(body: dict) -> dict:
    prompt = body["messages"][0]["content"]
    total = next(line for line in prompt.splitlines() if line.startswith("- Total:"))
    return {"choices": [{"message": {"role": "assistant", "content": f"A region. {total}"}}]}


def healthy(_: int, body: dict) -> tuple[int, dict[str, str], dict]:
    return 200, {}, _answer(body)


class Server:
    """A chat-completions server in a thread; records every request body, path and header."""

    def __init__(self, behaviour: Behaviour, port: int = 0) -> None:
        self.behaviour, self.bodies, self.auth, self.paths = behaviour, [], [], []
        lock, server = threading.Lock(), self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with lock:
                    server.bodies.append(body)
                    server.auth.append(self.headers.get("Authorization"))
                    server.paths.append(self.path)
                    n = len(server.bodies)
                assert self.path.partition("?")[0] == "/v1/chat/completions"
                status, headers, payload = server.behaviour(n, body)
                data = json.dumps(payload).encode()
                self.send_response(status)
                for k, v in {"Content-Type": "application/json", **headers}.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    @property
    def count(self) -> int:
        return len(self.bodies)


@contextmanager
def serve(behaviour: Behaviour = healthy, port: int = 0) -> Iterator[Server]:
    """A server on ``port`` (0: a free one) for the ``with`` block."""
    srv = Server(behaviour, port)
    thread = threading.Thread(target=srv.httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.httpd.shutdown()
        srv.httpd.server_close()


def backend(url: str, **kw: object) -> OpenAIBackend:
    """A client that never really sleeps (recorded in ``.slept``) and has no rate limit."""
    slept: list[float] = []
    opts = {"api_key": "sekret", "requests_per_minute": 1e9, "sleep": slept.append,
            "timeout": 5.0, **kw}
    b = OpenAIBackend(url, "test-model", **opts)  # type: ignore[arg-type]
    b.slept = slept  # type: ignore[attr-defined]
    return b


@pytest.fixture()
def regions() -> pd.DataFrame:
    n = 8
    return pd.DataFrame({
        "region_id": [f"r{i}" for i in range(n)],
        "lat": [31.0 + i / 100 for i in range(n)],
        "lon": [121.0 + i / 100 for i in range(n)],
        "poi_catering": [i * 3 for i in range(n)],
        "poi_shopping": [i for i in range(n)],
        "poi_medical": [1] * n,
    })


def expected(df: pd.DataFrame) -> list[str]:
    return [f"A region. - Total: {4 * i + 1}" for i in range(len(df))]


def test_answers_in_order_cached_and_second_run_free(regions: pd.DataFrame,
                                                     tmp_path: Path) -> None:
    with serve() as srv:
        texts = describe_dataset(regions, backend(srv.url), tmp_path, city="SH", progress=False)
        assert texts == expected(regions)
        assert srv.count == len(regions)
        assert len(list(tmp_path.rglob("*.json"))) == len(regions)
        body = srv.bodies[0]
        assert body["model"] == "test-model" and body["temperature"] == 0
        assert body["messages"] == [{"role": "user", "content": build_prompt(
            {"poi_catering": 0, "poi_shopping": 0, "poi_medical": 1},
            city="SH", lat=31.0, lon=121.0)}]
        assert set(srv.auth) == {"Bearer sekret"}
        again = describe_dataset(regions, backend(srv.url), tmp_path, city="SH", progress=False)
        assert again == texts and srv.count == len(regions)  # zero new requests


@pytest.mark.parametrize("status,headers", [(429, {"Retry-After": "0"}), (500, {}), (503, {})])
def test_transient_errors_are_retried(regions: pd.DataFrame, tmp_path: Path, status: int,
                                      headers: dict[str, str]) -> None:
    def flaky(n: int, body: dict) -> tuple[int, dict[str, str], dict]:
        return (status, headers, {"error": {"message": "busy"}}) if n <= 3 else healthy(n, body)

    with serve(flaky) as srv:
        b = backend(srv.url)
        assert describe_dataset(regions[:2], b, tmp_path, progress=False) == expected(regions[:2])
        assert srv.count == b.requests == 3 + 2
        assert len(b.slept) == 3
        if "Retry-After" in headers:
            assert b.slept == [0.0, 0.0, 0.0]
        else:  # exponential backoff with jitter in [0.5, 1] x 1, 2, 4 s
            assert all(0.5 * 2**k <= s <= 2**k for k, s in enumerate(b.slept))


def test_retries_exhausted_and_connection_errors(regions: pd.DataFrame, tmp_path: Path) -> None:
    with serve(lambda n, b: (502, {}, {"error": {"message": "bad gateway"}})) as srv:
        b = backend(srv.url, max_retries=2)
        with pytest.raises(LLMError, match="after 3 attempts: HTTP 502: bad gateway"):
            describe_dataset(regions, b, tmp_path, progress=False)
        assert srv.count == 3
    with socket.socket() as s:  # a port with nobody listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    b = backend(f"http://127.0.0.1:{port}/v1", max_retries=1)
    with pytest.raises(LLMError, match="after 2 attempts"):
        describe_dataset(regions, b, tmp_path, progress=False)


@pytest.mark.parametrize("status", [400, 401])
def test_client_errors_fail_at_once(regions: pd.DataFrame, tmp_path: Path, status: int) -> None:
    error = {"error": {"message": "API key not valid.\nPlease pass a valid key.", "code": status}}
    with serve(lambda n, b: (status, {}, error)) as srv:
        with pytest.raises(LLMError) as info:
            describe_dataset(regions, backend(srv.url), tmp_path, progress=False)
        assert srv.count == 1
    msg = str(info.value)
    assert "\n" not in msg and f"HTTP {status}" in msg and "API key not valid. Please" in msg


def test_interrupted_run_resumes(regions: pd.DataFrame, tmp_path: Path) -> None:
    k = 3

    def dies(n: int, body: dict) -> tuple[int, dict[str, str], dict]:
        return healthy(n, body) if n <= k else (500, {}, {"error": {"message": "down"}})

    with serve(dies) as srv, pytest.raises(LLMError, match="HTTP 500: down"):
        describe_dataset(regions, backend(srv.url, max_retries=1), tmp_path, progress=False)
    assert len(list(tmp_path.rglob("*.json"))) == k
    with serve(port=srv.httpd.server_address[1]) as srv:  # the server back at its address
        texts = describe_dataset(regions, backend(srv.url), tmp_path, progress=False)
        assert texts == expected(regions)
        asked = [b["messages"][0]["content"] for b in srv.bodies]
    assert srv.count == len(regions) - k
    assert all("- Total: 1\n" not in p for p in asked)  # region 0 was not asked again


def test_rate_limiter_fake_clock() -> None:
    now = [100.0]
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(s)
        now[0] += s

    limiter = RateLimiter(30, clock=lambda: now[0], sleep=sleep)
    for _ in range(10):
        limiter.acquire()
    assert sum(slept) == pytest.approx(9 * 2.0)  # 10 requests at 30/min: 9 gaps of 2 s
    now[0] += 60.0  # idle time refills only up to the burst
    limiter.acquire()
    assert sum(slept) == pytest.approx(18.0)
    limiter.acquire()
    assert sum(slept) == pytest.approx(20.0)
    with pytest.raises(ValueError):
        RateLimiter(0)


def test_rate_limit_applies_to_requests(regions: pd.DataFrame, tmp_path: Path) -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(s)
        now[0] += s

    with serve() as srv:
        b = backend(srv.url, requests_per_minute=120, clock=lambda: now[0], sleep=sleep)
        describe_dataset(regions, b, tmp_path, progress=False)
    assert sum(slept) == pytest.approx((len(regions) - 1) * 0.5)


def test_template_backend_is_offline_and_deterministic(regions: pd.DataFrame, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    def no_network(*a: object, **k: object) -> None:
        raise AssertionError("network used")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    a = describe_dataset(regions, "template", tmp_path, city="SH", progress=False)
    b = describe_dataset(regions, TemplateBackend(), None, city="SH", progress=False)
    assert a == b and len(set(a)) == len(regions)
    assert all(t.startswith("This region in SH") for t in a)
    assert not any(tmp_path.iterdir())  # nothing to cache


def test_missing_env_is_one_line_error(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in (ENV_BASE_URL, ENV_MODEL, ENV_API_KEY):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(LLMError, match=f"needs {ENV_BASE_URL} set"):
        make_backend("openai")
    monkeypatch.setenv(ENV_BASE_URL, "http://127.0.0.1:1/v1")
    with pytest.raises(LLMError, match=f"needs {ENV_MODEL} set"):
        make_backend("openai")
    monkeypatch.setenv(ENV_MODEL, "m")
    b = make_backend("openai")
    assert isinstance(b, OpenAIBackend) and b.api_key == "" and b.model == "m"
    with pytest.raises(LLMError, match="unknown describe backend"):
        make_backend("gpt")


def test_write_described(tmp_path: Path, regions: pd.DataFrame) -> None:
    src = tmp_path / "in"
    (src / "tiles").mkdir(parents=True)
    regions = regions.assign(carbon=1.0, text="old", image_path=[
        f"tiles/{i}.png" for i in range(len(regions))])
    for p in regions["image_path"]:
        (src / p).write_bytes(b"png")
    regions.to_csv(src / "regions.csv", index=False)
    spec = {"name": "TOY", "city": "SH", "table": "regions.csv", "targets": {"carbon": None}}
    (src / "dataset.yaml").write_text(yaml.safe_dump(spec))
    before = sorted((p.name, p.stat().st_mtime_ns) for p in src.rglob("*"))
    with serve() as srv:
        out = write_described(src, tmp_path / "out", backend(srv.url), tmp_path / "cache",
                              progress=False)
    ds = load_dataset(out)
    assert ds.meta["table"] == "regions.parquet" and ds.texts == expected(regions)
    assert not (out / "regions.csv").exists() and len(ds.image_paths or []) == len(regions)
    assert sorted((p.name, p.stat().st_mtime_ns) for p in src.rglob("*")) == before
    with pytest.raises(ValueError, match="must not be the dataset folder"):
        write_described(src, src / "x", "template", None, progress=False)


def test_unknown_poi_column_is_data_error(regions: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="row 0: unknown POI category 'poi_education'"):
        describe_dataset(regions.assign(poi_education=1), "template", None, progress=False)


def test_cache_key_holds_the_endpoint_never_the_key() -> None:
    a = OpenAIBackend("https://a.example/v1", "m", "key-one")
    b = OpenAIBackend("https://b.example/v1/", "m", "key-one")
    rotated = OpenAIBackend("https://user:pass@a.example/v1/?api_key=other-key", "m", "key-two")
    assert (a.endpoint, b.endpoint) == ("https://a.example/v1", "https://b.example/v1")
    assert rotated.endpoint == a.endpoint  # credentials are not where the answers come from
    assert cache_key("openai", "m", "p", a.endpoint) != cache_key("openai", "m", "p", b.endpoint)
    assert cache_key("openai", "m", "p", a.endpoint) == cache_key("openai", "m", "p",
                                                                  rotated.endpoint)


def test_two_servers_with_one_model_name_do_not_share_answers(regions: pd.DataFrame,
                                                              tmp_path: Path) -> None:
    def tagged(tag: str) -> Behaviour:
        def answer(n: int, body: dict) -> tuple[int, dict[str, str], dict]:
            status, headers, payload = healthy(n, body)
            payload["choices"][0]["message"]["content"] += f" ({tag})"
            return status, headers, payload
        return answer

    rows = regions[:3]
    with serve(tagged("A")) as a, serve(tagged("B")) as b:
        first = describe_dataset(rows, backend(a.url), tmp_path, progress=False)
        second = describe_dataset(rows, backend(b.url), tmp_path, progress=False)
        assert all(t.endswith("(A)") for t in first) and all(t.endswith("(B)") for t in second)
        assert (a.count, b.count) == (len(rows), len(rows))
        # the same server again, with another key and a key in the query: all from the cache
        again = describe_dataset(rows, backend(a.url + "?api_key=another", api_key="rotated"),
                                 tmp_path, progress=False)
        assert again == first and (a.count, b.count) == (len(rows), len(rows))
    entries = [json.loads(f.read_text()) for f in tmp_path.rglob("*.json")]
    assert sorted(e["endpoint"] for e in entries) == sorted([a.url] * 3 + [b.url] * 3)


def test_query_string_and_userinfo_reach_the_server(regions: pd.DataFrame,
                                                    tmp_path: Path) -> None:
    with serve() as srv:
        url = srv.url.replace("http://", "http://user:pa%20ss@") + "/?api_key=QUERYKEY"
        describe_dataset(regions[:1], backend(url, api_key=""), tmp_path, progress=False)
        assert srv.paths == ["/v1/chat/completions?api_key=QUERYKEY"]
        assert srv.auth == ["Basic " + base64.b64encode(b"user:pa ss").decode()]
        describe_dataset(regions[1:2], backend(url), tmp_path, progress=False)
        assert srv.auth[-1] == "Bearer sekret"  # a key, when set, is what is sent


def test_errors_never_show_credentials(regions: pd.DataFrame, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    def clean(message: str) -> str:
        assert "secret" not in message.lower() and "p%40ss" not in message, message
        assert "\n" not in message
        return message

    echo = {"error": {"message": "no such key SECRET for user:secret (api_key=SECRET)"}}
    with serve(lambda n, b: (401, {}, echo)) as srv:
        url = srv.url.replace("http://", "http://user:secret@") + "?api_key=SECRET"
        with pytest.raises(LLMError) as info:
            describe_dataset(regions, backend(url, api_key="sk-SECRETKEY"), tmp_path,
                             progress=False)
    msg = clean(str(info.value))
    assert f"{srv.url}/chat/completions failed: HTTP 401" in msg and "no such key ***" in msg

    def unreachable(req: urllib.request.Request, timeout: float) -> None:  # echoes the URL
        raise urllib.error.URLError(f"cannot reach {req.full_url}")

    monkeypatch.setattr(urllib.request, "urlopen", unreachable)
    b = backend("https://user:secret@host/v1?api_key=SECRET", max_retries=1)
    with pytest.raises(LLMError, match="after 2 attempts") as info:
        describe_dataset(regions, b, tmp_path, progress=False)
    assert "request to https://host/v1/chat/completions failed" in clean(str(info.value))
    b = backend("https://user:p%40ss@host/v1?token=abc%2Fsecret&x=1", max_retries=0)
    with pytest.raises(LLMError) as info:
        describe_dataset(regions, b, tmp_path, progress=False)
    clean(str(info.value))
    with pytest.raises(LLMError, match="must be an http") as info:
        OpenAIBackend("user:secret@host/v1?api_key=SECRET", "m")
    clean(str(info.value))
