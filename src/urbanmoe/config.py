"""The one configuration: ``config/config.yaml`` validated by ``resources/config.schema.yaml``.

The schema holds every default; unknown keys and wrong types are errors. ``--set key=value``
overrides (dotted keys, YAML-typed values) are applied before validation, so they are checked
like the file itself. The file and every ``--set`` value are read by :mod:`urbanmoe.readers`
(bounded, duplicate keys refused, ``1e-3`` a number); an ``integer`` setting takes an int only.
Snakemake and DVC read the same file.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Iterable, Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema

from urbanmoe.errors import ConfigError
from urbanmoe.readers import load_yaml, read_yaml
from urbanmoe.redact import cap

DEFAULT_CONFIG_PATH = Path("config/config.yaml")
MAX_MESSAGE = 400  # characters of a schema message (it repeats the offending value)
__all__ = ["ConfigError", "apply_overrides", "config_hash", "load_config", "schema", "validate"]


# ``integer`` means an int: 2.0 or 1e3 (a float in YAML) where a count belongs is refused
_Validator = jsonschema.validators.extend(
    jsonschema.Draft202012Validator,
    type_checker=jsonschema.Draft202012Validator.TYPE_CHECKER.redefine(
        "integer", lambda _checker, value: isinstance(value, int) and not isinstance(value, bool)))


def schema() -> dict[str, Any]:
    """The configuration's JSON schema (with defaults)."""
    text = resources.files("urbanmoe").joinpath("resources/config.schema.yaml").read_text()
    return load_yaml(text, "urbanmoe/resources/config.schema.yaml")


def _fill_defaults(node: dict[str, Any], sch: Mapping[str, Any]) -> None:
    """Insert schema defaults for absent keys, recursing into objects."""
    for key, sub in sch.get("properties", {}).items():
        if key not in node and "default" in sub:
            node[key] = copy.deepcopy(sub["default"])
        if isinstance(node.get(key), dict) and sub.get("type") == "object":
            _fill_defaults(node[key], sub)


def _parse_override(item: str, source: str) -> tuple[list[str], Any]:
    if "=" not in item:
        raise ConfigError(f"{source}: override {item!r} is not of the form key=value")
    key, raw = item.split("=", 1)
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"{source}: override {item!r} has an empty key")
    value = load_yaml(raw, f"{source} {_shown(item)}", error=ConfigError) if raw else ""
    return key.split("."), value


def _shown(item: str, limit: int = 80) -> str:
    """A ``--set`` item for an error line: a long value cut short."""
    return item if len(item) <= limit else item[:limit - 3] + "..."


def apply_overrides(cfg: dict[str, Any], overrides: Iterable[str], source: str = "--set") -> None:
    """Apply ``a.b.c=value`` overrides in place; values are parsed as YAML (``1e-3``, ``[1,2]``)."""
    for item in overrides:
        path, value = _parse_override(item, source)
        node = cfg
        for part in path[:-1]:
            if not isinstance(node.setdefault(part, {}), dict):
                raise ConfigError(f"{source}: {'.'.join(path)}: {part!r} is not a section")
            node = node[part]
        node[path[-1]] = value


def validate(cfg: dict[str, Any], source: str,
             overrides: Iterable[str] = ()) -> dict[str, Any]:
    """Fill defaults, then validate; raise ConfigError naming the key and the offending value.

    An error at or under a key that one of ``overrides`` set is blamed on that ``--set`` item,
    not on ``source``.
    """
    out = copy.deepcopy(cfg)
    _fill_defaults(out, schema())
    validator = _Validator(schema())
    errors = sorted(validator.iter_errors(out), key=lambda e: list(e.path))
    if errors:
        err = errors[0]
        path = [str(p) for p in err.path]
        where = ".".join(path) or "(top level)"
        culprit = path
        if err.validator == "additionalProperties" and isinstance(err.instance, dict):
            extra = sorted(set(err.instance) - set(err.schema.get("properties", {})))
            culprit = path + extra[:1]
        raise ConfigError(f"{_blame(culprit, overrides, source)}: {where}: "
                          f"{cap(err.message, MAX_MESSAGE)}")
    model = out["model"]
    if model["n_specific"] + model["n_dual"] + model["n_shared"] == 0:
        raise ConfigError(f"{source}: model: n_specific + n_dual + n_shared is 0: no experts")
    return out


def _blame(path: list[str], overrides: Iterable[str], source: str) -> str:
    """``--set KEY=VALUE`` when the last override touching ``path`` set it, else ``source``."""
    for item in reversed(list(overrides)):
        key = item.split("=", 1)[0].split(".")
        if key == path[:len(key)] or (path and path == key[:len(path)]):
            return f"--set {_shown(item)}"
    return source


def load_config(path: Path | None = None, overrides: Iterable[str] = ()) -> dict[str, Any]:
    """Read ``path`` (default ``config/config.yaml`` when it exists, else schema defaults),
    apply overrides, fill defaults and validate."""
    if path is None and DEFAULT_CONFIG_PATH.exists():
        path = DEFAULT_CONFIG_PATH
    cfg: dict[str, Any] = {}
    source = str(path) if path is not None else "(defaults)"
    if path is not None:
        cfg = read_yaml(Path(path), error=ConfigError)
    overrides = list(overrides)
    apply_overrides(cfg, overrides)
    return validate(cfg, source, overrides)


def config_hash(cfg: Mapping[str, Any]) -> str:
    """A short stable hash of a (section of a) configuration, for cache keys and provenance."""
    blob = json.dumps(cfg, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:12]


def yaml12_numbers(cfg: dict[str, Any], sch: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Make, in place, the numbers a YAML 1.1 reader left as strings (``1e-3``: Snakemake's
    ``configfile:``) numbers, wherever the schema asks for a number and not a string; the
    config is then the one the CLI reads from the same file. Returns ``cfg``."""
    sch = schema() if sch is None else sch

    def fix(value: Any, node: Mapping[str, Any]) -> Any:
        types = node.get("type", [])
        types = [types] if isinstance(types, str) else types
        if isinstance(value, str) and {"number", "integer"} & set(types) and "string" not in types:
            parsed = load_yaml(value, "config", error=ConfigError) if len(value) < 64 else value
            return parsed if isinstance(parsed, (int, float)) and not isinstance(parsed, bool) \
                else value
        if isinstance(value, dict):
            props, extra = node.get("properties", {}), node.get("additionalProperties")
            for key, item in value.items():
                child = props.get(key, extra if isinstance(extra, Mapping) else {})
                value[key] = fix(item, child)
        elif isinstance(value, list) and isinstance(node.get("items"), Mapping):
            value[:] = [fix(item, node["items"]) for item in value]
        return value

    fix(cfg, sch)
    return cfg
