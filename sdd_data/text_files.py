"""Reading the text files a user gives (configs, pipelines, templates, recipes, task files): one clear line on
bad UTF-8, malformed YAML or a YAML alias bomb, and never a whole value echoed back in an error."""

from __future__ import annotations

import json
import reprlib
from pathlib import Path
from typing import Any

import yaml

from sdd_data.errors import SddError, first_line, one_line

MAX_YAML_VALUES = 100_000
"""Most values (scalars, list items, mapping entries) a YAML document may expand to through its aliases."""


def _short_repr() -> reprlib.Repr:
    shortened = reprlib.Repr()
    shortened.maxstring = shortened.maxother = 60
    shortened.maxlist = shortened.maxdict = 6
    shortened.maxlevel = 3
    return shortened


_SHORT = _short_repr()


def short_repr(value: Any) -> str:
    """A value as `repr` shows it, cut short (long strings, lists and nested values end in `...`)."""
    return _SHORT.repr(value)


def read_text(path: str | Path, what: str) -> str:
    """A file's text as UTF-8, or an SddError naming the file and the line with the first undecodable byte."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise SddError(f"{what} {path} could not be read: {error.strerror or type(error).__name__}") from None
    return decode_utf8(raw, f"{what} {path}")


def decode_utf8(raw: bytes, where: str) -> str:
    """Bytes as UTF-8 text (a byte-order mark dropped), or an SddError naming the line of the first bad byte."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise SddError(f"{where} line {line}: not valid UTF-8 (byte {error.start})") from None


def json_lines(text: str, where: str) -> list[tuple[int, dict]]:
    """Each JSON object of JSON Lines text with its line number (lines end at \\n only; blank ones are skipped);
    a line that is not one JSON object is an SddError naming it."""
    rows = []
    for number, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except ValueError as error:
            raise SddError(f"{where} line {number}: not valid JSON ({first_line(error)})") from None
        if not isinstance(value, dict):
            raise SddError(f"{where} line {number}: expected a JSON object, got {type(value).__name__}")
        rows.append((number, value))
    return rows


def read_json_lines(path: str | Path, what: str) -> list[tuple[int, dict]]:
    """The JSON objects of a JSON Lines file with their line numbers (see `json_lines`), read as UTF-8."""
    return json_lines(read_text(path, what), str(path))


def _expanded_values(value: Any, limit: int) -> int:
    """How many values a loaded YAML document holds once its aliases are expanded, counted up to `limit`."""
    count, stack = 0, [value]
    while stack and count <= limit:
        item = stack.pop()
        count += 1
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
    return count


def load_yaml(text: str, where: str) -> Any:
    """Parse YAML safely; a malformed document or one whose aliases expand past MAX_YAML_VALUES is one line."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as error:
        message = one_line(error)
        raise SddError(f"{where} is not valid YAML: {message[:300]}{'…' if len(message) > 300 else ''}") from None
    if _expanded_values(value, MAX_YAML_VALUES) > MAX_YAML_VALUES:
        raise SddError(f"{where} expands to more than {MAX_YAML_VALUES:,} values (YAML aliases); write it out plainly")
    return value


def read_yaml(path: str | Path, what: str) -> Any:
    """A YAML file's value (see `load_yaml`), read as UTF-8."""
    return load_yaml(read_text(path, what), f"{what} {path}")
