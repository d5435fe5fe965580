"""Data files are read exactly as written (hypothesis over JSON Lines, CSV and Parquet), or refused in one line."""

from __future__ import annotations

import csv
import gzip
import json
import math

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sdd_data.data.file_rows import read_file_rows
from sdd_data.data.sources import SourceSpec, load_rows
from sdd_data.errors import SddError

PROPERTIES = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
KEYS = st.sampled_from(["id", "instruction", "output", "input", "answer", "meta", "ünï", "a b"])
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=30),
    st.sampled_from(["007", "0042", "42", "1e3", "true", "null", " 7 ", ""]),
)
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=3))
ROWS = st.lists(st.dictionaries(KEYS, VALUES, max_size=6), min_size=1, max_size=8)


def _same(read, written) -> bool:
    """Equal value for value, with the types as written (1 is not True, 1.0 is not 1)."""
    if type(read) is not type(written):
        return False
    if isinstance(written, dict):
        return read.keys() == written.keys() and all(_same(read[key], written[key]) for key in written)
    if isinstance(written, list):
        return len(read) == len(written) and all(map(_same, read, written))
    if isinstance(written, float) and math.isnan(written):
        return math.isnan(read)
    return read == written


@PROPERTIES
@given(rows=ROWS, compressed=st.booleans())
def test_any_json_lines_file_round_trips_every_value(tmp_path_factory, rows, compressed):
    path = tmp_path_factory.mktemp("jsonl") / "rows.jsonl"
    text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    path.write_bytes(gzip.compress(text.encode()) if compressed else text.encode())
    read = read_file_rows(path, "json")
    assert _same(read.rows, rows)
    columns = list(dict.fromkeys(key for row in rows for key in row))
    assert read.column_names == columns
    assert all(_same(got, {key: row.get(key) for key in columns}) for got, row in zip(read, rows))


CSV_TEXT = st.text(st.characters(exclude_characters="\x00\r", exclude_categories=("Cs",)), max_size=20)


@PROPERTIES
@given(header=st.lists(st.sampled_from(["id", "instruction", "output", "x y", "ä"]), min_size=1, unique=True),
       data=st.data())  # fmt: skip
def test_any_csv_file_round_trips_every_value_as_text(tmp_path_factory, header, data):
    rows = data.draw(st.lists(st.lists(CSV_TEXT, min_size=len(header), max_size=len(header)), min_size=1, max_size=6))
    rows = [row for row in rows if any(row)]  # an all-empty line with one column reads as a blank line
    path = tmp_path_factory.mktemp("csv") / "rows.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows([header, *rows])
    read = read_file_rows(path, "csv")
    assert read.column_names == header
    assert read.rows == [dict(zip(header, row)) for row in rows]


@PROPERTIES
@given(values=st.lists(st.one_of(st.none(), st.text(max_size=20)), min_size=1, max_size=6),
       numbers=st.data())  # fmt: skip
def test_any_parquet_file_round_trips_every_value(tmp_path_factory, values, numbers):
    counts = numbers.draw(st.lists(st.integers(-(2**63), 2**63 - 1), min_size=len(values), max_size=len(values)))
    table = pa.table({"text": pa.array(values, pa.string()), "count": pa.array(counts, pa.int64())})
    path = tmp_path_factory.mktemp("parquet") / "rows.parquet"
    pq.write_table(table, path)
    assert read_file_rows(path, "parquet").rows == table.to_pylist()


def test_a_mixed_type_column_leaves_every_other_value_as_written(tmp_path):
    rows = [
        {"id": "0042", "instruction": "Say a number.", "output": "42", "ref": "007"},
        {"id": 7, "instruction": "Say another.", "output": 5, "ref": 7},
    ]
    path = tmp_path / "mixed.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    loaded = load_rows(SourceSpec(data=str(path), preset="alpaca", columns={"reference_answer": "ref"}))
    [row] = loaded.rows
    assert (row["id"], row["response"], row["reference_answer"]) == ("0042", "42", "007")
    [refused] = loaded.invalid
    assert (refused["id"], refused["reason"]) == ("7", "invalid_row:response_not_string")


def test_a_rewritten_gzip_file_named_jsonl_is_read_anew(tmp_path):
    path = tmp_path / "rows.jsonl"
    for answer in ("first", "second"):
        row = {"instruction": "Which?", "output": answer}
        path.write_bytes(gzip.compress((json.dumps(row) + "\n").encode()))
        loaded = load_rows(SourceSpec(data=str(path)))
        assert loaded.rows[0]["response"] == answer


@pytest.mark.parametrize("name, content, message", [
    ("bad.jsonl", b"{\"instruction\": \"a\"}\n{\"instruction\": \"\xff\"}\n", r"bad.jsonl line 2: not valid UTF-8"),
    ("bad.csv", b"instruction,output\nok,\xfe\n", r"bad.csv line 2: not valid UTF-8"),
    ("bad.json", b'[{"instruction": "a"}, 3]', r"bad.json item 1: expected a JSON object"),
    ("bad.jsonl", b'{"instruction": "a"}\n[1]\n', r"bad.jsonl line 2: expected a JSON object, got list"),
    ("bad.csv", b"instruction,instruction\na,b\n", r"header names 'instruction' more than once"),
    ("bad.csv", b"instruction,output\na,b,c\n", r"bad.csv line 2: 3 fields where the header has 2"),
    ("bad.jsonl", b"\x1f\x8b\x08broken", r"damaged gzip file"),
])  # fmt: skip
def test_an_unreadable_file_is_one_line_naming_where(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(SddError, match=message) as refused:
        load_rows(SourceSpec(data=str(path)))
    assert "\n" not in str(refused.value)


def test_an_alpaca_file_without_an_input_column_is_read_with_empty_inputs(tmp_path):
    path = tmp_path / "alpaca.json"
    path.write_text(json.dumps([{"instruction": "Name a colour.", "output": "Blue."}]))
    loaded = load_rows(SourceSpec(data=str(path)))
    assert loaded.preset == "alpaca" and loaded.rows[0]["input"] == ""
