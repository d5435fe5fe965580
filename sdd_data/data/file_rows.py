"""Data files read exactly as written: JSON, JSON Lines, CSV and Parquet rows as Python values, nothing inferred.

A column that mixes strings and numbers keeps each value as it is in the file (`"007"` stays a string, `7` a
number), where a typed reader would make one of them the other. CSV values are all text, as CSV has no types.
A gzip-compressed file is read whatever its name, and nothing is cached, so a rewritten file is read anew.
A file that cannot be read (bad UTF-8, a line that is not a JSON object) is one line naming where.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
from collections.abc import Iterator
from pathlib import Path

from sdd_data.errors import SddError, first_line
from sdd_data.text_files import decode_utf8, json_lines

GZIP_MAGIC = b"\x1f\x8b"


class FileRows:
    """The rows of a data file: every row has every column (None where a JSON row lacks the key)."""

    def __init__(self, rows: list[dict], column_names: list[str]):
        self.rows = rows
        self.column_names = column_names

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[dict]:
        for row in self.rows:
            yield {name: row.get(name) for name in self.column_names}

    def __getitem__(self, column: str) -> list:
        return [row.get(column) for row in self.rows]

    def select(self, indices) -> FileRows:
        """The rows at `indices`, in that order."""
        return FileRows([self.rows[index] for index in indices], self.column_names)


def _text(path: Path) -> str:
    raw = path.read_bytes()
    if raw.startswith(GZIP_MAGIC):
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as error:
            raise SddError(f"{path}: a damaged gzip file ({first_line(error)})") from None
    return decode_utf8(raw, str(path))


def _columns(rows: list[dict]) -> list[str]:
    return list(dict.fromkeys(key for row in rows for key in row))


def _json_rows(path: Path, text: str) -> list[dict]:
    stripped = text.lstrip()
    if stripped.startswith("["):
        try:
            values = json.loads(stripped)
        except ValueError as error:
            raise SddError(f"{path}: not valid JSON ({first_line(error)})") from None
        for number, value in enumerate(values):
            if not isinstance(value, dict):
                raise SddError(f"{path} item {number}: expected a JSON object, got {type(value).__name__}")
        return values
    return [row for _, row in json_lines(text, str(path))]


def _csv_rows(path: Path, text: str) -> tuple[list[dict], list[str]]:
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise SddError(f"{path} has no header row") from None
    except csv.Error as error:
        raise SddError(f"{path}: not valid CSV ({first_line(error)})") from None
    repeated = sorted({name for name in header if header.count(name) > 1})
    if repeated:
        raise SddError(f"{path}: the header names {', '.join(map(repr, repeated))} more than once")
    rows = []
    try:
        for number, values in enumerate(reader, 2):
            if not values:
                continue
            if len(values) != len(header):
                raise SddError(f"{path} line {number}: {len(values)} fields where the header has {len(header)}")
            rows.append(dict(zip(header, values)))
    except csv.Error as error:
        raise SddError(f"{path}: not valid CSV ({first_line(error)})") from None
    return rows, header


def read_file_rows(path: Path, kind: str) -> FileRows:
    """The rows of a `json` (JSON array or JSON Lines), `csv` or `parquet` file, values as written."""
    if kind == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(path)
        except (OSError, pa.ArrowException) as error:
            raise SddError(f"{path}: could not be read as parquet: {first_line(error)}") from None
        return FileRows(table.to_pylist(), table.column_names)
    text = _text(path)
    if kind == "csv":
        rows, header = _csv_rows(path, text)
        return FileRows(rows, header)
    rows = _json_rows(path, text)
    return FileRows(rows, _columns(rows))
