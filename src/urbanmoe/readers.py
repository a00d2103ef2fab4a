"""The one reader of every YAML and JSON document urbanmoe reads: bounded and strict.

A document that breaks a rule below is an :class:`~urbanmoe.errors.InputError` (of the kind the
caller asks for) on one line naming the file (or ``--set`` item), the line where YAML knows it,
and the key; never the document itself.

YAML (the configuration, ``--set`` values, ``dataset.yaml``, run folders' ``config.yaml``, the
POI mapping), read by a :class:`yaml.SafeLoader` subclass:

- at most :data:`MAX_YAML_BYTES` of UTF-8 text;
- at most :data:`MAX_YAML_NODES` nodes, an alias counting as a full copy of what it names, so a
  few hundred bytes of nested aliases (a "billion laughs") are refused while they are composed,
  before anything is expanded; an alias inside the node it names (a recursive document) is
  refused too; nesting at most :data:`MAX_YAML_DEPTH` levels;
- a key given twice in one mapping is refused (its line and the first's); keys brought in by a
  merge (``<<: *defaults``) may still be overridden, as YAML intends;
- numbers in scientific notation are numbers, as in YAML 1.2 (``1e-3``, ``1E5``, ``2.5e+3``,
  ``-1e-3``; YAML 1.1 reads them as strings), and everything YAML 1.1 reads as a number still is.
  :func:`dump_yaml` writes with the same rule, so a string such as ``"1e5"`` is quoted and
  comes back a string.

JSON (run folders' ``metrics.json``, ``track --record`` files, LLM cache entries and answers,
UrbanCLIP captions): at most :data:`MAX_JSON_BYTES` unless the reader sets its own bound, UTF-8,
one value, no key twice in an object, no nesting deeper than Python can parse; what the top level
must hold is checked with a JSON schema (:data:`METRICS_SCHEMA` for ``metrics.json``).

CSV (:func:`read_csv`): an empty, non-UTF-8 or malformed table is one line naming the file.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jsonschema
import yaml

from urbanmoe.errors import InputError, RunError

if TYPE_CHECKING:
    import pandas as pd

MAX_YAML_BYTES = 4 * 2**20
MAX_YAML_NODES = 100_000
MAX_YAML_DEPTH = 100
MAX_JSON_BYTES = 16 * 2**20

__all__ = ["MAX_JSON_BYTES", "MAX_YAML_BYTES", "MAX_YAML_DEPTH", "MAX_YAML_NODES",
           "METRICS_SCHEMA", "check_schema", "dump_yaml", "load_json", "load_yaml", "read_json",
           "read_csv", "read_metrics", "read_yaml"]

# YAML 1.2's floats that YAML 1.1 leaves as strings: an exponent without a dot or its sign
_SCIENTIFIC = re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$")
_FLOAT_TAG = "tag:yaml.org,2002:float"
_MERGE_TAG = "tag:yaml.org,2002:merge"
# what JSON can hold too: no timestamps, binary, sets or ordered pairs
_PLAIN_TAGS = {f"tag:yaml.org,2002:{t}" for t in ("null", "bool", "int", "float", "str", "seq",
                                                  "map")}


class _Refusal(Exception):
    """A rule broken while loading: where (a YAML mark, or None) and what."""

    def __init__(self, mark: yaml.Mark | None, message: str) -> None:
        super().__init__(message)
        self.mark, self.message = mark, message


class _Loader(yaml.SafeLoader):
    """SafeLoader with the bounds and the duplicate-key rule of the module docstring."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.one_line = "\n" not in stream  # a --set value: columns, not lines
        self._nodes = 0  # nodes composed so far, aliases counted as copies
        self._depth = 0
        self._weight: dict[int, int] = {}  # id(node) -> its nodes counted as above
        self._own_keys: dict[int, list[yaml.Node]] = {}  # id(mapping) -> its key nodes as written

    def _count(self, n: int, mark: yaml.Mark) -> None:
        self._nodes += n
        if self._nodes > MAX_YAML_NODES:
            raise _Refusal(mark, f"more than {MAX_YAML_NODES:,} nodes once its aliases are "
                                 "expanded (an alias bomb?)")

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            target = self.anchors.get(event.anchor)
            if target is not None:
                if id(target) not in self._weight:
                    raise _Refusal(event.start_mark, f"alias *{event.anchor} lies inside the "
                                                     "node it names (a recursive document)")
                self._count(self._weight[id(target)], event.start_mark)
            return super().compose_node(parent, index)
        self._depth += 1
        if self._depth > MAX_YAML_DEPTH:
            raise _Refusal(event.start_mark, f"nested deeper than {MAX_YAML_DEPTH} levels")
        before = self._nodes
        node = super().compose_node(parent, index)
        self._depth -= 1
        self._count(1, node.start_mark)
        self._weight[id(node)] = self._nodes - before
        return node

    def compose_mapping_node(self, anchor: str | None) -> yaml.MappingNode:
        node = super().compose_mapping_node(anchor)
        self._own_keys[id(node)] = [k for k, _ in node.value if k.tag != _MERGE_TAG]
        return node

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        first: dict[Any, yaml.Node] = {}
        for key_node in self._own_keys.get(id(node), []):
            key = self.construct_object(key_node, deep=True)
            try:
                seen = first.setdefault(key, key_node)
            except TypeError:  # an unhashable key: the base constructor says so
                continue
            if seen is not key_node:
                raise _Refusal(key_node.start_mark, f"key {_show(key)} given twice "
                                                    f"(first at {self.place(seen.start_mark)})")
        return super().construct_mapping(node, deep)

    def place(self, mark: yaml.Mark) -> str:
        """Where ``mark`` is, as the user counts: line N (column N in a one-line value)."""
        return f"column {mark.column + 1}" if self.one_line else f"line {mark.line + 1}"

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        if node.tag not in _PLAIN_TAGS:
            raise _Refusal(node.start_mark, f"tag {node.tag.rsplit(':', 1)[-1]!r} is not "
                                            "read here (plain data only)")
        try:
            return super().construct_object(node, deep)
        except (ValueError, OverflowError) as exc:  # a 5000-digit integer, say
            raise _Refusal(node.start_mark,
                           f"cannot read {_show(node.value, 40)}: {_line(exc, 80)}") from None


class _Dumper(yaml.SafeDumper):
    """SafeDumper that quotes what :class:`_Loader` would read back as a number."""


for _cls in (_Loader, _Dumper):
    _cls.add_implicit_resolver(_FLOAT_TAG, _SCIENTIFIC, list("-+0123456789."))
# a plain 2024-05-01 stays the string it is written as (YAML 1.2's core schema has no dates)
_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in _Loader.yaml_implicit_resolvers.items()}


def dump_yaml(obj: Any, **kwargs: Any) -> str:
    """``obj`` as YAML (``yaml.safe_dump(obj, sort_keys=False, **kwargs)``) that
    :func:`load_yaml` reads back unchanged (strings shaped like scientific-notation numbers are
    quoted)."""
    return yaml.dump(obj, Dumper=_Dumper, sort_keys=False, **kwargs)


def load_yaml(text: str, source: str, *, error: type[InputError] = InputError,
              max_bytes: int = MAX_YAML_BYTES) -> Any:
    """One YAML document from ``text`` under the module's rules; ``source`` names it in errors.
    An empty document is None."""
    if len(text.encode("utf-8", "surrogatepass")) > max_bytes:
        raise error(f"{source}: larger than {_size(max_bytes)}, the limit for a YAML document")
    loader = None
    try:
        loader = _Loader(text)
        return loader.get_single_data()
    except _Refusal as exc:
        where = f"{source}: {loader.place(exc.mark)}" if loader and exc.mark else source
        raise error(f"{where}: {exc.message}") from None
    except yaml.MarkedYAMLError as exc:
        what = ": ".join(p for p in (exc.context, exc.problem) if p) or "unreadable"
        where = (f"{source}: {loader.place(exc.problem_mark)}" if loader and exc.problem_mark
                 else source)
        raise error(f"{where}: not valid YAML: {what}") from None
    except yaml.reader.ReaderError as exc:
        raise error(f"{source}: not valid YAML: character #x{exc.character:04x} at offset "
                    f"{exc.position} is not allowed") from None
    except yaml.YAMLError as exc:
        raise error(f"{source}: not valid YAML: {_line(exc)}") from None
    except RecursionError:
        raise error(f"{source}: nested too deeply to read") from None
    finally:
        if loader is not None:
            loader.dispose()


def read_yaml(path: Path, *, error: type[InputError] = InputError, expect: type | None = dict,
              max_bytes: int = MAX_YAML_BYTES) -> Any:
    """The YAML document in ``path`` (:func:`load_yaml`); with ``expect`` its top level must be
    of that type, an empty file counting as an empty one."""
    doc = load_yaml(_read_text(path, error, max_bytes, "YAML"), str(path), error=error,
                    max_bytes=max_bytes)
    return _expect(doc, expect, str(path), error)


def load_json(data: bytes | str, source: str, *, error: type[InputError] = InputError,
              max_bytes: int = MAX_JSON_BYTES) -> Any:
    """One JSON value from ``data`` (bytes are decoded as UTF-8); ``source`` names it in errors."""
    if len(data) > max_bytes:
        raise error(f"{source}: larger than {_size(max_bytes)}, the limit for this JSON file")
    text = _decode(data, source, error) if isinstance(data, bytes) else data
    if not text.strip():
        raise error(f"{source}: empty (no JSON value; a truncated write?)")
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates)
    except json.JSONDecodeError as exc:
        raise error(f"{source}: line {exc.lineno} column {exc.colno}: not valid JSON: "
                    f"{exc.msg}") from None
    except _Refusal as exc:
        raise error(f"{source}: {exc.message}") from None
    except RecursionError:
        raise error(f"{source}: nested too deeply to read") from None
    except ValueError as exc:  # an integer of more digits than Python converts
        raise error(f"{source}: not readable JSON: {_line(exc)}") from None


def read_json(path: Path, *, error: type[InputError] = InputError,
              schema: Mapping[str, Any] | None = None, expect: type | None = None,
              max_bytes: int = MAX_JSON_BYTES) -> Any:
    """The JSON value in ``path`` (:func:`load_json`); its top level must be of type ``expect``
    and it must match ``schema`` (:func:`check_schema`) when given."""
    doc = load_json(_read_text(path, error, max_bytes, "JSON"), str(path), error=error,
                    max_bytes=max_bytes)
    doc = _expect(doc, expect, str(path), error, empty_ok=False)
    if schema is not None:
        check_schema(doc, schema, str(path), error=error)
    return doc


def check_schema(doc: Any, schema: Mapping[str, Any], source: str, *,
                 error: type[InputError] = InputError) -> None:
    """Raise ``error`` naming the first field of ``doc`` that breaks the JSON ``schema``."""
    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(doc),
                    key=lambda e: (len(e.absolute_path), [str(p) for p in e.absolute_path]))
    if not errors:
        return
    err = errors[0]
    path = [str(p) for p in err.absolute_path]
    if err.validator == "required":
        missing = next(k for k in err.validator_value if k not in err.instance)
        raise error(f"{source}: field {'.'.join([*path, missing])!r}: missing")
    where = f"field {'.'.join(path)!r}" if path else "(top level)"
    if err.validator == "type":
        kinds = err.validator_value if isinstance(err.validator_value, list) else [
            err.validator_value]
        raise error(f"{source}: {where}: expected "
                    f"{' or '.join(_JSON_KINDS.get(k, k) for k in kinds)}, got "
                    f"{_kind(err.instance)} {_show(err.instance)}")
    raise error(f"{source}: {where}: {_show(err.instance)} is not allowed "
                f"({err.validator} {_show(err.validator_value)})")


_SCORES = {"type": "object", "additionalProperties": {
    "type": "object", "additionalProperties": {"type": ["number", "null"]}}}
_NUMBERS = {"type": ["object", "null"], "additionalProperties": {"type": ["number", "null"]}}
#: What every reader of a run folder's ``metrics.json`` relies on (``evaluation/run.py`` writes
#: it); a run that was not skipped also has its scores and efficiency.
METRICS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["dataset", "model", "seed", "tasks", "split"],
    "properties": {
        "dataset": {"type": "string"}, "model": {"type": "string"},
        "variant": {"type": ["string", "null"]},
        "seed": {"type": ["integer", "string"], "pattern": "^[0-9]+$"},
        "tasks": {"type": "array", "items": {"type": "string"}, "minItems": 1},
        "split": {"type": "object", "required": ["kind"], "properties": {
            "kind": {"type": "string"}, "n_test": {"type": "integer"}}},
        "skipped": {"type": "string"},
        "protocol": {"type": "object", "required": ["name"],
                     "properties": {"name": {"type": "string"}}},
        "log_scale": _SCORES, "original_scale": _SCORES,
        "folds": {"type": "array", "items": {
            "type": "object", "required": ["fold", "n_test", "log_scale"],
            "properties": {"fold": {"type": "integer"}, "n_test": {"type": "integer"},
                           "log_scale": _SCORES}}},
        "efficiency": {"type": "object",
                       "required": ["params", "peak_memory_mb", "train_seconds"],
                       "properties": {k: {"type": ["number", "null"]} for k in (
                           "params", "peak_memory_mb", "train_seconds", "total_seconds")}},
        "noise_ceiling": _NUMBERS,
        "notes": {"type": "array", "items": {"type": "string"}},
        "provenance": {"type": "object"},
    },
    "if": {"not": {"required": ["skipped"]}},
    "then": {"required": ["log_scale", "efficiency"]},
}


def read_metrics(path: Path) -> dict[str, Any]:
    """A run folder's ``metrics.json`` checked against :data:`METRICS_SCHEMA` (RunError)."""
    return read_json(Path(path), error=RunError, schema=METRICS_SCHEMA)


def read_csv(path: Path, *, error: type[InputError] = InputError, **kwargs: Any) -> pd.DataFrame:
    """``pandas.read_csv(path, **kwargs)``; an empty, non-UTF-8 or malformed file is ``error``
    naming it (pandas is imported here, not by commands that read no table)."""
    import pandas as pd

    try:
        return pd.read_csv(path, **kwargs)
    except pd.errors.EmptyDataError:
        raise error(f"{path}: the file is empty (no header, no rows)") from None
    except UnicodeDecodeError as exc:
        raise error(f"{path}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x})") from None
    except pd.errors.ParserError as exc:
        raise error(f"{path}: not a readable CSV table: {_line(exc)}") from None
    except FileNotFoundError:
        raise error(f"{path}: file not found") from None
    except OSError as exc:
        raise error(f"{path}: cannot read: {exc.strerror or exc}") from None


# ----------------------------------------------------------------------------- helpers
def _read_text(path: Path, error: type[InputError], max_bytes: int, what: str) -> str:
    """The file's text, read no further than one byte past ``max_bytes``."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            data = fh.read(max_bytes + 1)
    except FileNotFoundError:
        raise error(f"{path}: file not found") from None
    except IsADirectoryError:
        raise error(f"{path}: a folder, not a {what} file") from None
    except OSError as exc:
        raise error(f"{path}: cannot read: {exc.strerror or exc}") from None
    if len(data) > max_bytes:
        raise error(f"{path}: larger than {_size(max_bytes)}, the limit for this {what} file")
    return _decode(data, str(path), error)


def _decode(data: bytes, source: str, error: type[InputError]) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise error(f"{source}: not UTF-8 text (byte 0x{data[exc.start]:02x} on line {line})"
                    ) from None


def _expect(doc: Any, expect: type | None, source: str, error: type[InputError], *,
            empty_ok: bool = True) -> Any:
    if expect is None:
        return doc
    if doc is None and empty_ok:
        return expect()
    if not isinstance(doc, expect):
        raise error(f"{source}: (top level): expected {_KINDS.get(expect, expect.__name__)}, "
                    f"got {_kind(doc)}")
    return doc


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _Refusal(None, f"key {key!r} given twice in one object")
        out[key] = value
    return out


_JSON_KINDS = {"object": "a mapping", "array": "a list", "string": "a string",
               "integer": "an integer", "number": "a number", "boolean": "true or false",
               "null": "null"}
_KINDS = {dict: "a mapping", list: "a list", str: "a string", bool: "true or false",
          int: "an integer", float: "a number", type(None): "null"}


def _kind(value: Any) -> str:
    return _KINDS.get(type(value), type(value).__name__)


def _show(value: Any, limit: int = 60) -> str:
    """``value`` for an error line: scalars as written, containers by their size."""
    if isinstance(value, dict | list):
        return f"({len(value)} item{'s' if len(value) != 1 else ''})"
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _line(exc: BaseException, limit: int = 200) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _size(n: int) -> str:
    return f"{n / 2**20:g} MiB"
