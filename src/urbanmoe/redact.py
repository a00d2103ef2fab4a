"""Secrets never printed: one redactor for every line, record and file that repeats a message.

:func:`redact` masks, with ``***``:

- the userinfo of a URL (``scheme://user:pass@host`` and ``scheme://token@host`` become
  ``scheme://***@host``);
- the value of a secret-looking key written ``key=value`` or ``key: value`` (in a URL's query
  string, a header, JSON or plain text; the key case-insensitive, alone or as the last part of a
  longer name such as ``aws_secret_access_key`` or ``X-Amz-Signature``): :data:`SECRET_WORDS`
  (a placeholder value such as ``key=value`` or ``token=null`` is left);
- the value of an ``Authorization``, ``Proxy-Authorization`` or ``X-Api-Key`` header (its scheme
  word, e.g. ``Basic``, is kept);
- ``Bearer <token>`` (8 characters or more, or not letters only), ``Basic <base64 of
  user:pass>`` and ``Token <x>`` (8 characters or more, with a digit) credentials;
- API keys of the well-known shapes (``sk-...``, ``ghp_...``, ``hf_...``, ``xoxb-...``,
  ``AKIA...``, ...): :data:`KEY_SHAPES`;
- every known secret value, as written, URL-quoted and unquoted: the ones passed in, the values
  of the environment's secret variables (:data:`SECRET_VARIABLES`, and any variable whose name
  ends in ``_PASSWORD``, ``_SECRET``, ``_TOKEN``, ``_API_KEY``, ...), the userinfo and password
  of every URL in the environment (``MLFLOW_TRACKING_URI``, ``URBANMOE_LLM_BASE_URL``), and the
  base64 form of each known ``user:password`` pair (what HTTP Basic auth sends).

:func:`cap` bounds what an error line repeats, keeping its start and end. :class:`RedactFilter`
redacts log records; :func:`install_log_filter` puts it on a logger's handlers.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import re
from collections.abc import Iterable, Mapping
from urllib.parse import quote, unquote, urlsplit

MASK = "***"
CAP = 1000  # characters an error line keeps
MIN_SECRET = 4  # shorter known values are left (masking them would mangle a message)
MIN_GUESSED = 6  # values of variables that are secret by their name only
#: words that make a key's value a secret (case-insensitive; a name's last part)
SECRET_WORDS = ("password", "passwd", "pwd", "secret", "token", "api_key", "api-key", "apikey",
                "access_key", "access_token", "auth", "signature", "sig", "credential",
                "credentials", "key", "private_key", "session_token", "client_secret")
#: environment variables always read as secrets (beside those secret by their name)
SECRET_VARIABLES = ("URBANMOE_LLM_API_KEY", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN",
                    "MLFLOW_TRACKING_CLIENT_CERT_PATH", "OPENAI_API_KEY",
                    "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AZURE_STORAGE_ACCESS_KEY")
#: (user variable, password variable) pairs whose base64 ``user:password`` is a secret
BASIC_PAIRS = (("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"),)
_NAME_ENDS = ("PASSWORD", "PASSWD", "SECRET", "TOKEN", "API_KEY", "APIKEY", "ACCESS_KEY",
              "SECRET_KEY", "PRIVATE_KEY", "CREDENTIALS", "AUTH")
_PLACEHOLDERS = {"value", "values", "val", "none", "null", "true", "false", "..."}
_HARMLESS = {"true", "false", "none", "null", "yes", "no", "on", "off", "1", "0"}
#: API keys recognised by their shape alone
KEY_SHAPES = (r"sk-(?:proj-|ant-|live-|test-)?[A-Za-z0-9_-]{8,}", r"(?:sk|rk|pk)_(?:live|test)_"
              r"[A-Za-z0-9]{8,}", r"gh[pousr]_[A-Za-z0-9]{20,}", r"github_pat_\w{20,}",
              r"glpat-[A-Za-z0-9_-]{16,}", r"hf_[A-Za-z0-9]{20,}", r"xox[abposr]-[A-Za-z0-9-]{10,}",
              r"AKIA[0-9A-Z]{16}", r"AIza[0-9A-Za-z_-]{35}")

_VALUE = r"[^\s&;,#'\"<>\\]+"
_WORDS = "|".join(sorted((re.escape(w) for w in SECRET_WORDS), key=len, reverse=True))
_KEY_VALUE = re.compile(rf"(?i)(?<![\w.-])((?:[a-z0-9]+[_.-])*(?:{_WORDS}))"
                        rf"([\"']?\s*[=:]\s*[\"']?)(?!\*\*\*)({_VALUE})")
_HEADER = re.compile(r"(?i)\b((?:proxy-)?authorization|x-api-key|api-key)([\"']?\s*[:=]\s*[\"']?)"
                     r"((?:basic|bearer|token|digest|negotiate|apikey)\s+)?+(?!\*\*\*)"
                     r"([^\s'\",;\\]+)")
_BEARER = re.compile(r"(?i)\b(bearer\s+)(?!\*\*\*)"  # 8 characters or more, or not letters only
                     r"(?=[A-Za-z0-9._~+/=-]{8}|[A-Za-z]*[0-9._~+/=-])[A-Za-z0-9._~+/=-]*"
                     r"[A-Za-z0-9_~+/=-]")
_BASIC = re.compile(r"(?i)\b(basic\s+)([A-Za-z0-9+/]{4,}={0,2})(?![A-Za-z0-9+/=])")
_TOKEN = re.compile(r"(?i)\b(token\s+)(?=[A-Za-z0-9._~+/=-]*\d)[A-Za-z0-9._~+/=-]{8,}")
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)(?!\*\*\*@)[^\s/?#'\"<>]+@")
_SHAPES = re.compile(r"(?<![\w-])(?:" + "|".join(KEY_SHAPES) + r")")
_URL = re.compile(r"(?i)\b[a-z][a-z0-9+.-]*://[^\s'\"<>]+")


def _b64(text: str) -> str:
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def _forms(secret: str) -> set[str]:
    """A secret as written, URL-quoted and unquoted."""
    return {secret, quote(secret, safe=""), quote(secret), unquote(secret)}


def _url_secrets(url: str) -> set[str]:
    """What a URL holds that is secret: its userinfo, password and the base64 ``user:pass``,
    and the values of secret-looking keys in its query string."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return set()
    found: set[str] = set()
    userinfo = parts.netloc.rpartition("@")[0]
    if userinfo:
        found |= {userinfo, userinfo.partition(":")[2], _b64(unquote(userinfo))}
    for match in _KEY_VALUE.finditer(parts.query):
        found.add(match.group(3))
    return found


def _secret_name(name: str) -> bool:
    upper = name.upper()
    return name in SECRET_VARIABLES or any(upper == end or upper.endswith("_" + end)
                                           for end in _NAME_ENDS)


def known_secrets(env: Mapping[str, str] | None = None, extra: Iterable[str] = ()) -> list[str]:
    """Every secret value known from ``env`` (default ``os.environ``) and ``extra``, in every
    form it may be shown in, longest first (so that a longer one is masked whole)."""
    env = os.environ if env is None else env
    found: set[str] = set()
    for value in extra:
        if value:
            found |= _forms(value) | _url_secrets(value)
    for name, value in env.items():
        value = value.strip()
        if not value:
            continue
        if _secret_name(name) and (name in SECRET_VARIABLES or (
                len(value) >= MIN_GUESSED and value.lower() not in _HARMLESS)):
            found |= _forms(value)
        if "://" in value:
            for url in _URL.findall(value):
                found |= _url_secrets(url)
    for user_var, password_var in BASIC_PAIRS:
        if env.get(password_var):
            found.add(_b64(f"{env.get(user_var, '')}:{env[password_var]}"))
    found = {form for value in found for form in _forms(value)}
    found |= {_b64(unquote(v)) for v in found if ":" in v}
    return sorted((v for v in found if len(v) >= MIN_SECRET), key=len, reverse=True)


def _basic(match: re.Match[str]) -> str:
    """``Basic ***`` when the base64 decodes to ``user:password``, else the text as it was."""
    try:
        decoded = base64.b64decode(match.group(2) + "=" * (-len(match.group(2)) % 4),
                                   validate=True)
    except (binascii.Error, ValueError):
        return match.group(0)
    return match.group(1) + MASK if b":" in decoded else match.group(0)


def _key_value(match: re.Match[str]) -> str:
    """``key=***``, unless the value is a placeholder (``key=value`` in a usage line)."""
    if match.group(3).lower() in _PLACEHOLDERS:
        return match.group(0)
    return match.group(1) + match.group(2) + MASK


def redact(text: str, secrets: Iterable[str] = (), env: Mapping[str, str] | None = None) -> str:
    """``text`` with every secret masked (the rules of the module's docstring): ``secrets``
    and those known from ``env`` (default ``os.environ``; ``{}`` for none) as values, and the
    shapes of credentials wherever they appear."""
    text = str(text)
    for secret in known_secrets(env, secrets):
        text = text.replace(secret, MASK)
    text = _HEADER.sub(lambda m: f"{m.group(1)}{m.group(2)}{m.group(3) or ''}{MASK}", text)
    text = _BEARER.sub(lambda m: m.group(1) + MASK, text)
    text = _BASIC.sub(_basic, text)
    text = _TOKEN.sub(lambda m: m.group(1) + MASK, text)
    text = _USERINFO.sub(lambda m: m.group(1) + MASK + "@", text)
    text = _KEY_VALUE.sub(_key_value, text)
    return _SHAPES.sub(MASK, text)


def cap(text: str, limit: int = CAP) -> str:
    """``text`` cut to about ``limit`` characters, keeping its start and end around a
    ``… (N characters cut) …`` marker."""
    if len(text) <= limit:
        return text
    keep = max(limit - 40, 2) // 2
    return f"{text[:keep]} … ({len(text) - 2 * keep} characters cut) … {text[-keep:]}"


def shown(text: str, secrets: Iterable[str] = (), limit: int = CAP) -> str:
    """``text`` as an error line may repeat it: on one line, redacted, then capped. A huge text
    is first cut coarsely (its start and end kept far beyond ``limit``) so that redacting it
    stays cheap; the fine cut then drops the coarse cut's seam."""
    if len(text) > 40 * limit:
        text = text[:20 * limit] + " " + text[-20 * limit:]
    return cap(" ".join(redact(text, secrets).split()), limit)


class RedactFilter(logging.Filter):
    """Redacts a log record in place: its message formatted with its args, and the text of its
    exception and stack (formatted here, so that a handler prints the redacted copy)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a record that cannot be formatted: its template, redacted
            message = str(record.msg)
        record.msg, record.args = redact(message), ()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


def install_log_filter(*loggers: logging.Logger) -> None:
    """Put a :class:`RedactFilter` on every handler of ``loggers`` (default: the root logger),
    once each."""
    for logger in loggers or (logging.getLogger(),):
        for handler in logger.handlers:
            if not any(isinstance(f, RedactFilter) for f in handler.filters):
                handler.addFilter(RedactFilter())
