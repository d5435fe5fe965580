"""Stage configs as data: CLI flags and YAML keys are generated from the config dataclasses.

A stage config is a dataclass whose fields may themselves be dataclasses (decoding, engine, filter).
Nested fields are flattened: every leaf field is one CLI flag (`--max-new-tokens`) and one YAML key
(`max_new_tokens`), documented by the string literal written under the field.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import hashlib
import inspect
import json
import math
import textwrap
import types
import typing
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from sdd_data.errors import SddError
from sdd_data.text_files import read_yaml, short_repr


@cache
def field_docs(cls: type) -> dict[str, str]:
    """The string literal written under each field of a dataclass, by field name."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        definition = ast.parse(textwrap.dedent(inspect.getsource(klass))).body[0]
        if not isinstance(definition, ast.ClassDef):
            continue
        body = definition.body
        for statement, following in zip(body, body[1:]):
            if (
                isinstance(statement, ast.AnnAssign)
                and isinstance(statement.target, ast.Name)
                and isinstance(following, ast.Expr)
                and isinstance(following.value, ast.Constant)
                and isinstance(following.value.value, str)
            ):
                docs[statement.target.id] = " ".join(following.value.value.split())
    return docs


def _resolved_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _is_dataclass_type(kind: Any) -> bool:
    return isinstance(kind, type) and dataclasses.is_dataclass(kind)


def leaf_fields(cls: type) -> dict[str, tuple[tuple[str, ...], Any, str]]:
    """Every leaf field of a (nested) config dataclass: flat name -> (path, type, doc)."""
    leaves: dict[str, tuple[tuple[str, ...], Any, str]] = {}
    hints = _resolved_types(cls)
    docs = field_docs(cls)
    for item in dataclasses.fields(cls):
        kind = hints[item.name]
        if _is_dataclass_type(kind):
            for name, (path, leaf_kind, doc) in leaf_fields(kind).items():
                leaves[name] = ((item.name, *path), leaf_kind, doc)
        else:
            leaves[item.name] = ((item.name,), kind, docs.get(item.name, ""))
    return leaves


def leaf_defaults(cls: type) -> dict[str, Any]:
    """The default of every leaf field that has one: flat name -> value (required fields are left out)."""
    defaults: dict[str, Any] = {}
    hints = _resolved_types(cls)
    for item in dataclasses.fields(cls):
        if _is_dataclass_type(hints[item.name]):
            defaults.update(leaf_defaults(hints[item.name]))
        elif item.default is not dataclasses.MISSING:
            defaults[item.name] = item.default
        elif item.default_factory is not dataclasses.MISSING:
            defaults[item.name] = item.default_factory()
    return defaults


def _unwrap_optional(kind: Any) -> tuple[Any, bool]:
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        args = [arg for arg in typing.get_args(kind) if arg is not type(None)]
        if len(args) == 1:
            return args[0], True
    return kind, False


def _parse_mapping(text: str) -> dict:
    """A mapping from the command line: JSON (`{"a": 1}`) or comma-separated `key=value` pairs."""
    text = text.strip()
    expected = f"expected key=value[,key=value...] or a JSON object, got {text!r}"
    try:
        if text.startswith("{"):
            values = json.loads(text)
            if not isinstance(values, dict):
                raise argparse.ArgumentTypeError(expected)
            return values
        pairs = [part.split("=", 1) for part in text.split(",") if part.strip()]
        if any(len(pair) != 2 for pair in pairs):
            raise argparse.ArgumentTypeError(expected)
        return {key.strip(): yaml.safe_load(value.strip()) for key, value in pairs}
    except (json.JSONDecodeError, yaml.YAMLError) as error:
        raise argparse.ArgumentTypeError(f"{expected} ({' '.join(str(error).split())})") from None


def add_config_arguments(
    parser: argparse.ArgumentParser, cls: type, more_help: Mapping[str, str] | None = None
) -> None:
    """Add one flag per leaf field of `cls`; every default is None so unset flags can be told apart.
    `more_help` adds text after a field's own doc (what a registry holds now, say)."""
    for name, (_, kind, doc) in leaf_fields(cls).items():
        flag = "--" + name.replace("_", "-")
        if more_help and name in more_help:
            doc = f"{doc} {more_help[name]}"
        doc = doc.replace("%", "%%")  # argparse formats help strings with %
        base, _ = _unwrap_optional(kind)
        origin = typing.get_origin(base)
        if base is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=doc)
        elif base in (int, float, str):
            parser.add_argument(flag, type=base, default=None, help=doc)
        elif base is dict or origin is dict:
            parser.add_argument(flag, type=_parse_mapping, default=None, help=doc, metavar="KEY=VALUE,...")
        elif origin in (tuple, list):
            parser.add_argument(flag, nargs="+", default=None, help=doc)
        else:
            raise TypeError(f"no CLI mapping for field {name} of type {kind}")


def read_yaml_config(path: str | Path) -> dict:
    """Read a YAML config file into a flat mapping of field names to values."""
    path = Path(path)
    if not path.is_file():
        raise SddError(f"config file {path} does not exist")
    values = read_yaml(path, "config file") or {}
    if not isinstance(values, dict):
        raise SddError(f"config file {path} must hold a mapping of option names to values")
    return values


def build_config(cls: type, values: dict) -> Any:
    """Build a nested config dataclass from flat values (unknown names are an error)."""
    leaves = leaf_fields(cls)
    unknown = sorted(set(values) - set(leaves))
    if unknown:
        raise SddError(f"unknown option(s) {', '.join(unknown)}; known: {', '.join(sorted(leaves))}")
    nested: dict = {}
    for name, value in values.items():
        if value is None and not _unwrap_optional(leaves[name][1])[1]:
            continue
        path, kind, _ = leaves[name]
        value = _checked(name, value, kind)
        target = nested
        for part in path[:-1]:
            target = target.setdefault(part, {})
        target[path[-1]] = value
    return _instantiate(cls, nested)


_TYPE_NAMES = {bool: "true or false", int: "an integer", float: "a number", str: "a string", dict: "a mapping"}


def _checked(name: str, value: Any, kind: Any) -> Any:
    """The value for a field, if it has the field's type (ints are accepted for floats)."""
    base, optional = _unwrap_optional(kind)
    if value is None and optional:
        return None
    origin = typing.get_origin(base) or base
    if origin in (tuple, list):
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
            value = [value]
        item_kind = next((arg for arg in typing.get_args(base) if arg is not Ellipsis), None)
        if item_kind in _TYPE_NAMES:
            value = [_checked(f"{name} item", item, item_kind) for item in value]
        return tuple(value) if origin is tuple else list(value)
    valid = isinstance(value, origin) and not (origin in (int, float) and isinstance(value, bool))
    if origin is float and isinstance(value, float) and not math.isfinite(value):
        raise SddError(f"option {name} must be a finite number, got {value!r}")
    if origin is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if origin is str and isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)  # a YAML number for a text option, e.g. `budget: 2000`
    if not valid:
        raise SddError(f"option {name} must be {_TYPE_NAMES.get(origin, origin)}, got {short_repr(value)}")
    return value


def _instantiate(cls: type, nested: dict) -> Any:
    hints = _resolved_types(cls)
    kwargs = {}
    for item in dataclasses.fields(cls):
        if item.name not in nested and not _is_dataclass_type(hints[item.name]):
            continue
        value = nested.get(item.name, {})
        kwargs[item.name] = _instantiate(hints[item.name], value) if _is_dataclass_type(hints[item.name]) else value
    missing = [
        item.name
        for item in dataclasses.fields(cls)
        if item.name not in kwargs
        and item.default is dataclasses.MISSING
        and item.default_factory is dataclasses.MISSING
    ]
    if missing:
        flags = ", ".join(f"--{name.replace('_', '-')}" for name in missing)
        raise SddError(f"missing required option(s): {flags} (or the same key(s) in the --config file)")
    return cls(**kwargs)


def config_from_sources(cls: type, yaml_path: str | None, cli_values: dict) -> Any:
    """Defaults, overridden by the YAML file, overridden by flags given on the command line."""
    values = read_yaml_config(yaml_path) if yaml_path else {}
    values.update({name: value for name, value in cli_values.items() if value is not None})
    return build_config(cls, values)


def config_to_flat_dict(config: Any) -> dict:
    """A flat, JSON-ready mapping of every leaf field (the inverse of build_config)."""
    flat = {}
    for name, (path, _, _) in leaf_fields(type(config)).items():
        value = config
        for part in path:
            value = getattr(value, part)
        flat[name] = list(value) if isinstance(value, tuple) else value
    return flat


def config_hash(values: dict) -> str:
    """A short, stable hash of a JSON-ready mapping."""
    return hashlib.sha256(json.dumps(values, sort_keys=True, default=str).encode()).hexdigest()[:16]
