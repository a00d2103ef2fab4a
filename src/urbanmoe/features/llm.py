"""POI counts to region text with an LLM backend (Section 3.1, Appendix E / Figure 6).

The Appendix E prompt (:func:`~urbanmoe.data.describe.build_prompt`) goes to a backend:
``template`` (offline, deterministic, the default) or ``openai`` (any OpenAI-compatible
chat-completions server, configured by ``URBANMOE_LLM_*``; rate-limited, retried with backoff).
Answers are cached on disk by sha256 of (backend, endpoint, model, prompt), the endpoint being the
server's base URL without credentials: never requested twice, so an interrupted run resumes where
it stopped, and two servers serving the same model name never share answers. A cache entry that
cannot be read (truncated, not JSON, no ``text``) is a miss: the prompt is asked again and the
entry rewritten, with a warning naming the file. See docs/describe.md.
"""

from __future__ import annotations

import base64
import email.utils
import hashlib
import http.client
import json
import logging
import math
import os
import random
import shutil
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import pandas as pd

from urbanmoe.data.describe import build_prompt, describe_template
from urbanmoe.data.table import POI_PREFIX, DataError, load_dataset, read_table
from urbanmoe.errors import ConfigError, InputError, LLMError
from urbanmoe.io import atomic_path, write_json
from urbanmoe.readers import dump_yaml, load_json, read_json, read_yaml
from urbanmoe.redact import redact, shown

ENV_BASE_URL = "URBANMOE_LLM_BASE_URL"
ENV_MODEL = "URBANMOE_LLM_MODEL"
ENV_API_KEY = "URBANMOE_LLM_API_KEY"
BACKENDS = ("template", "openai")
MAX_ENTRY_BYTES = 2**20  # one cached answer (a paragraph and its prompt)
MAX_RESPONSE_BYTES = 16 * 2**20  # one chat-completions response
_ENTRY_SCHEMA = {"type": "object", "required": ["text"], "properties": {"text": {"type": "string"}}}
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RegionQuery:
    """What a backend may use to describe one region: the Appendix E prompt and its inputs."""

    prompt: str
    poi_counts: Mapping[str, float]
    city: str | None = None
    lat: float | None = None
    lon: float | None = None


class Backend(Protocol):
    """A describer: ``name``, ``endpoint`` (where answers come from, never holding a secret;
    may be empty) and ``model`` key the cache; ``cached`` says whether to cache."""

    name: str
    endpoint: str
    model: str
    cached: bool

    def describe(self, query: RegionQuery) -> str: ...


class TemplateBackend:
    """The offline, deterministic ``template`` backend (no network, no cache needed)."""

    name = "template"
    endpoint = ""
    model = "describe_template"
    cached = False

    def describe(self, query: RegionQuery) -> str:
        return describe_template(query.poi_counts, city=query.city, lat=query.lat, lon=query.lon)


class RateLimiter:
    """Token bucket: at most ``requests_per_minute`` acquisitions a minute (``burst`` at once)."""

    def __init__(self, requests_per_minute: float, *, burst: int = 1,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if requests_per_minute <= 0:
            raise ConfigError(f"requests_per_minute must be positive, got {requests_per_minute}")
        self.interval, self.burst, self.tokens = 60.0 / requests_per_minute, burst, float(burst)
        self.clock, self.sleep, self.stamp = clock, sleep, clock()

    def _refill(self) -> None:
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) / self.interval)
        self.stamp = now

    def acquire(self) -> None:
        """Take one token, sleeping until one is available."""
        self._refill()
        if self.tokens < 1.0:
            self.sleep((1.0 - self.tokens) * self.interval)
            self._refill()
        self.tokens = max(0.0, self.tokens - 1.0)


def _one_line(text: object, limit: int = 300, secrets: Iterable[str] = ()) -> str:
    """``text`` on one line, ``secrets`` and every credential masked, cut to ``limit``
    (:func:`urbanmoe.redact.shown`: masked before it is cut, so no half secret is left)."""
    return shown(str(text), secrets, limit)


def _server_message(body: bytes, secrets: Iterable[str] = ()) -> str:
    """The ``error.message`` of an OpenAI-style error body, else the body itself, redacted."""
    text = body.decode("utf-8", "replace")
    try:
        msg = load_json(text, "the error body")
        for key in (0, "error", "message"):  # [{"error": {"message": ...}}] (Gemini) or bare
            ok = isinstance(msg, list) and msg if key == 0 else isinstance(msg, dict)
            msg = msg[key] if ok and (key == 0 or key in msg) else msg
        return _one_line(msg if isinstance(msg, str) else json.dumps(msg), secrets=secrets)
    except ValueError:
        return _one_line(text, secrets=secrets) or "(empty body)"


def redact_url(url: str) -> str:
    """``url`` as it may be shown or stored: without userinfo (``user:pass@``), query string or
    fragment, where keys sometimes travel; a placeholder when it has no host to keep."""
    parts = urllib.parse.urlsplit(url)
    if not parts.scheme or not parts.netloc:
        return "(not an absolute URL)"
    return urllib.parse.urlunsplit(
        (parts.scheme, parts.netloc.rpartition("@")[2], parts.path.rstrip("/"), "", ""))


def _secrets(url: str, api_key: str = "") -> list[str]:
    """What an error message must not show: the key and the parts of ``url`` that may be
    credentials (userinfo, password, query string and its values, fragment), as written and
    decoded, longest first. Those under 4 characters are left (masking them would mangle a
    message, e.g. the digits of a status code, and they are no real secret)."""
    parts = urllib.parse.urlsplit(url)
    userinfo = parts.netloc.rpartition("@")[0]
    found = [api_key, userinfo, userinfo.partition(":")[2], parts.query, parts.fragment]
    found += [v for _, v in urllib.parse.parse_qsl(parts.query, keep_blank_values=True)]
    found += [urllib.parse.unquote(v) for v in found]
    return sorted({v for v in found if len(v) >= 4}, key=len, reverse=True)


def _retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or HTTP date), or None."""
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        try:
            return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            return None


class OpenAIBackend:
    """OpenAI-compatible chat-completions client: the Appendix E prompt at temperature 0.

    Requests go to ``{base_url}/chat/completions`` (a query string of ``base_url`` is kept after
    that path; ``user:pass@`` in it is sent as HTTP Basic auth when there is no ``api_key``).
    429, 5xx, timeouts and connection errors are retried (``max_retries``, exponential backoff
    with seeded jitter, ``Retry-After`` honoured); other 4xx fail at once. Errors name the
    server by :attr:`endpoint`, the base URL without userinfo or query string, and have the
    key and those parts masked. ``sleep``/``clock`` are injectable for tests."""

    name = "openai"
    cached = True

    def __init__(self, base_url: str, model: str, api_key: str = "", *, timeout: float = 60.0,
                 max_retries: int = 5, requests_per_minute: float = 60.0,
                 backoff_base: float = 1.0, backoff_cap: float = 60.0, seed: int = 0,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        parts = urllib.parse.urlsplit(base_url.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise LLMError("the openai backend's base URL must be an http:// or https:// URL "
                           "with a host (see docs/describe.md)")
        self.base_url, self.model, self.api_key = base_url.strip(), model, api_key
        self.endpoint = redact_url(self.base_url)
        self.url = urllib.parse.urlunsplit((
            parts.scheme, parts.netloc.rpartition("@")[2],
            parts.path.rstrip("/") + "/chat/completions", parts.query, ""))
        self.basic_auth = ""
        if parts.username is not None and not api_key:
            user = urllib.parse.unquote(parts.username)
            password = urllib.parse.unquote(parts.password or "")
            self.basic_auth = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
        self._secrets = [*_secrets(self.base_url, api_key), self.basic_auth]
        self.timeout, self.max_retries, self.sleep = timeout, max_retries, sleep
        self.backoff_base, self.backoff_cap = backoff_base, backoff_cap
        self.limiter = RateLimiter(requests_per_minute, clock=clock, sleep=sleep)
        self.rng = random.Random(seed)
        self.requests = 0  # HTTP attempts made, retries included

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **kwargs: object) -> OpenAIBackend:
        """Build from ``URBANMOE_LLM_BASE_URL``, ``_MODEL`` and ``_API_KEY`` (may be empty)."""
        env = os.environ if env is None else env
        for var in (ENV_BASE_URL, ENV_MODEL):
            if not env.get(var, "").strip():
                raise LLMError(f"the openai backend needs {var} set (see docs/describe.md)")
        return cls(env[ENV_BASE_URL].strip(), env[ENV_MODEL].strip(),
                   env.get(ENV_API_KEY, "").strip(), **kwargs)  # type: ignore[arg-type]

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self.backoff_cap)
        delay = min(self.backoff_cap, self.backoff_base * 2.0**attempt)
        return delay * (0.5 + 0.5 * self.rng.random())

    def _error(self, message: str) -> LLMError:
        """An LLMError whose message has the key, the base URL's credentials and anything
        shaped like a credential masked (:func:`urbanmoe.redact.redact`)."""
        return LLMError(redact(message, self._secrets))

    def _post(self, payload: bytes) -> dict:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        elif self.basic_auth:
            headers["Authorization"] = f"Basic {self.basic_auth}"
        target, last = f"{self.endpoint}/chat/completions", ""
        for attempt in range(self.max_retries + 1):
            self.limiter.acquire()
            self.requests += 1
            retry_after = None
            try:
                req = urllib.request.Request(self.url, data=payload, headers=headers,
                                             method="POST")
                with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                    body = resp.read(MAX_RESPONSE_BYTES + 1)
            except urllib.error.HTTPError as exc:
                last = f"HTTP {exc.code}: {_server_message(exc.read(), self._secrets)}"
                if exc.code != 429 and exc.code < 500:
                    raise self._error(f"LLM request to {target} failed: {last}") from None
                retry_after = _retry_after(exc.headers.get("Retry-After"))
            except (OSError, http.client.HTTPException) as exc:  # timeouts, refused, reset
                last = _one_line(f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}",
                                 secrets=self._secrets)
            except ValueError as exc:  # urllib: not a URL it can open
                raise self._error(f"LLM request to {target} failed: "
                                  f"{_one_line(exc, secrets=self._secrets)}") from None
            else:
                try:
                    return load_json(body, f"LLM response from {target}", error=LLMError,
                                     max_bytes=MAX_RESPONSE_BYTES)
                except LLMError as bad:  # its snippet of the body may echo a credential
                    raise self._error(_one_line(bad, 1000, self._secrets)) from None
            if attempt < self.max_retries:
                self.sleep(self._backoff(attempt, retry_after))
        raise self._error(
            f"LLM request to {target} failed after {self.max_retries + 1} attempts: {last}")

    def describe(self, query: RegionQuery) -> str:
        body = {"model": self.model, "temperature": 0,
                "messages": [{"role": "user", "content": query.prompt}]}
        answer = self._post(json.dumps(body).encode("utf-8"))
        try:
            text = answer["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError):
            raise self._error(f"LLM response has no choices[0].message.content: "
                              f"{_one_line(json.dumps(answer), 200, self._secrets)}") from None
        if not isinstance(text, str) or not (text := " ".join(text.split())):
            raise LLMError("LLM response has an empty choices[0].message.content")
        return text


def make_backend(name: str = "template", **kwargs: object) -> Backend:
    """The backend called ``name`` (``template`` or ``openai``, configured from the env)."""
    if name == "template":
        return TemplateBackend()
    if name == "openai":
        return OpenAIBackend.from_env(**kwargs)  # type: ignore[arg-type]
    raise LLMError(f"unknown describe backend {name!r} (choose from {list(BACKENDS)})")


def cache_key(backend: str, model: str, prompt: str, endpoint: str = "") -> str:
    """Hex sha256 of (backend, endpoint, model, prompt).

    ``endpoint`` is the server's base URL without userinfo or query string
    (:func:`redact_url`, :attr:`OpenAIBackend.endpoint`): two servers serving the same model name
    get their own answers, while the key itself (never part of the cache key) may change without
    losing the cache. Entries cached before the endpoint joined the key are no longer hit (they
    are asked again once)."""
    text = json.dumps([backend, endpoint, model, prompt])
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _cache_file(cache_dir: Path, key: str) -> Path:
    return cache_dir / key[:2] / f"{key}.json"  # one JSON entry per prompt, 256 subfolders


def _queries(table: pd.DataFrame, city: str | None) -> list[RegionQuery]:
    cols = [c for c in table.columns if c.startswith(POI_PREFIX)]
    if not cols:
        raise DataError(f"the table has no {POI_PREFIX}* columns to describe")
    xy = (table[["lat", "lon"]].to_numpy(float) if {"lat", "lon"} <= set(table.columns)
          else [(math.nan, math.nan)] * len(table))
    out = []
    for i, row in enumerate(table[cols].to_dict("records")):
        lat, lon = (None, None) if math.isnan(sum(xy[i])) else (float(xy[i][0]), float(xy[i][1]))
        try:
            prompt = build_prompt(row, city=city, lat=lat, lon=lon)
        except ValueError as exc:
            raise DataError(f"row {i}: {exc}") from None
        out.append(RegionQuery(prompt, row, city, lat, lon))
    return out


def _cached(path: Path | None) -> str | None:
    """The cached answer in ``path``; None when absent or unreadable (then asked again)."""
    if path is None or not path.is_file():
        return None
    try:
        entry = read_json(path, schema=_ENTRY_SCHEMA, max_bytes=MAX_ENTRY_BYTES)
    except InputError as exc:
        log.warning("%s; asking again", exc)
        path.unlink(missing_ok=True)  # a cache entry is never replaced: the damaged one goes
        return None
    return entry["text"]


def describe_dataset(table: pd.DataFrame, backend: Backend | str, cache_dir: Path | None, *,
                     city: str | None = None, progress: bool = True) -> list[str]:
    """Describe every region of ``table`` (Appendix E prompt), in table order.

    POI counts come from the ``poi_*`` columns, the centre from ``lat``/``lon`` when present.
    With a caching backend, each answer is written atomically to ``cache_dir`` as soon as it
    arrives and cached prompts are never requested again, so a rerun after an interruption
    resumes where it stopped; the progress bar starts at the number already cached.
    """
    from tqdm.auto import tqdm

    backend = make_backend(backend) if isinstance(backend, str) else backend
    queries = _queries(table, city)
    endpoint = getattr(backend, "endpoint", "")  # describers written without one: ""
    keys = [cache_key(backend.name, backend.model, q.prompt, endpoint) for q in queries]
    cache = Path(cache_dir) if backend.cached and cache_dir is not None else None
    files = [None if cache is None else _cache_file(cache, k) for k in keys]
    texts = [_cached(f) for f in files]
    memo: dict[str, str] = {}  # identical prompts are asked once
    with tqdm(total=len(queries), initial=sum(t is not None for t in texts), unit="region",
              disable=not progress, desc=f"describe ({backend.name})") as bar:
        for i, query in ((i, q) for i, q in enumerate(queries) if texts[i] is None):
            if keys[i] not in memo:
                memo[keys[i]] = backend.describe(query)
                if files[i] is not None:
                    write_json(files[i], kind="cache", obj={
                        "backend": backend.name, "endpoint": endpoint, "model": backend.model,
                        "prompt": query.prompt, "text": memo[keys[i]]})
            texts[i] = memo[keys[i]]
            bar.update(1)
    return [str(t) for t in texts]


def write_described(dataset_dir: Path, out_dir: Path, backend: Backend | str,
                    cache_dir: Path | None, *, progress: bool = True) -> Path:
    """Copy a dataset folder to ``out_dir`` with its table's ``text`` column (re)written.

    The folder's files (tiles, embeddings) are copied so relative paths stay valid; the table
    becomes ``regions.parquet`` (pointed to by ``dataset.yaml``). The output appears atomically;
    the input is never modified. The city in the prompt is ``city`` of dataset.yaml, else name."""
    dataset_dir, out_dir = Path(dataset_dir).resolve(), Path(out_dir).resolve()
    if out_dir == dataset_dir or dataset_dir in out_dir.parents:
        raise DataError(f"{out_dir}: the output must not be the dataset folder or inside it")
    ds = load_dataset(dataset_dir)
    city = str(ds.meta.get("city") or ds.name)
    texts = describe_dataset(ds.table, backend, cache_dir, city=city, progress=progress)
    table = read_table(ds.table_path)
    table["text"] = texts
    meta = read_yaml(dataset_dir / "dataset.yaml", error=DataError)
    with atomic_path(out_dir, "dataset") as tmp:
        shutil.copytree(dataset_dir, tmp, symlinks=False)
        old = tmp / str(meta["table"])
        if old != tmp / "regions.parquet" and tmp in old.parents:  # the copy's, never the input
            old.unlink(missing_ok=True)
        table.to_parquet(tmp / "regions.parquet", index=False)
        meta["table"] = "regions.parquet"
        (tmp / "dataset.yaml").write_text(dump_yaml(meta))
    return out_dir
