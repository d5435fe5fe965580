"""Loading sources into canonical rows: presets, mappings, stable ids and bad input."""

import json

import pytest
from data_samples import ALPACA, DOLLY, GSM8K_TEST, GSM8K_TRAIN, write_jsonl

from sdd_data.data.sources import SourceSpec, load_rows
from sdd_data.errors import SddError


def test_gsm8k_preset_extracts_the_reference_answer():
    loaded = load_rows(SourceSpec(data=str(GSM8K_TRAIN), limit=20))
    assert loaded.preset == "gsm8k"
    assert len(loaded.rows) == 20
    first = loaded.rows[0]
    assert first["task"] == "math"
    assert first["reference_answer"] == first["response"].rsplit("####", 1)[1].strip()
    assert first["instruction"].startswith("Natalia")


def test_alpaca_json_array_with_input_field():
    loaded = load_rows(SourceSpec(data=str(ALPACA), limit=50))
    assert loaded.preset == "alpaca"
    assert any(row["input"] for row in loaded.rows)
    assert {row["task"] for row in loaded.rows} == {"free"}


def test_row_ids_are_stable_and_unique(tmp_path):
    spec = SourceSpec(data=str(DOLLY), limit=40)
    first, second = load_rows(spec), load_rows(spec)
    ids = [row["id"] for row in first.rows]
    assert ids == [row["id"] for row in second.rows]
    assert len(set(ids)) == len(ids)


def test_all_file_formats_and_saved_datasets(tmp_path):
    import datasets

    rows = [{"instruction": f"q{i}", "input": "", "output": f"a{i}"} for i in range(5)]
    dataset = datasets.Dataset.from_list(rows)
    dataset.to_parquet(str(tmp_path / "d.parquet"))
    dataset.to_csv(str(tmp_path / "d.csv"), index=False)
    (tmp_path / "d.json").write_text(json.dumps(rows))
    datasets.DatasetDict({"train": dataset, "test": dataset.select(range(2))}).save_to_disk(str(tmp_path / "saved"))
    for name in ("d.parquet", "d.csv", "d.json"):
        loaded = load_rows(SourceSpec(data=str(tmp_path / name)))
        assert [row["response"] for row in loaded.rows] == [f"a{i}" for i in range(5)], name
    assert len(load_rows(SourceSpec(data=str(tmp_path / "saved"), split="test")).rows) == 2
    with pytest.raises(SddError, match="no split 'validation'"):
        load_rows(SourceSpec(data=str(tmp_path / "saved"), split="validation"))


def test_openmathinstruct_and_messages_presets(tmp_path):
    math = write_jsonl(
        tmp_path / "omi.jsonl",
        [{"problem": "What is 1/2 + 1/2?", "generated_solution": "It is \\boxed{1}.", "expected_answer": "1"}],
    )
    row = load_rows(SourceSpec(data=str(math))).rows[0]
    assert (row["task"], row["reference_answer"]) == ("math", "1")
    chat = write_jsonl(
        tmp_path / "chat.jsonl",
        [
            {
                "messages": [
                    {"role": "system", "content": "Be brief."},
                    {"role": "user", "content": "Hi?"},
                    {"role": "assistant", "content": "Hello."},
                ]
            }
        ],
    )
    row = load_rows(SourceSpec(data=str(chat))).rows[0]
    assert (row["instruction"], row["response"]) == ("Hi?", "Hello.")
    assert "Be brief." not in row["instruction"]


def test_explicit_column_mapping(tmp_path):
    path = write_jsonl(tmp_path / "custom.jsonl", [{"prompt": "p", "completion": "c", "extra": 1}])
    row = load_rows(SourceSpec(data=str(path), columns={"instruction": "prompt", "response": "completion"})).rows[0]
    assert (row["instruction"], row["response"], json.loads(row["meta"])) == ("p", "c", {"extra": 1})


def test_missing_and_unknown_columns_name_what_is_available(tmp_path):
    path = write_jsonl(tmp_path / "custom.jsonl", [{"prompt": "p", "completion": "c"}])
    with pytest.raises(SddError, match=r"no column for 'instruction'.*available columns: prompt, completion"):
        load_rows(SourceSpec(data=str(path)))
    with pytest.raises(SddError, match=r"column 'answer' \(for response\) not found; available columns: prompt"):
        load_rows(SourceSpec(data=str(path), columns={"instruction": "prompt", "response": "answer"}))


def test_bad_rows_are_set_aside_with_a_reason_or_stop_under_strict(tmp_path):
    path = write_jsonl(
        tmp_path / "bad.jsonl",
        [
            {"instruction": "ok", "input": "", "output": "fine"},
            {"instruction": "  ", "input": "", "output": "x"},
            {"instruction": "q", "input": "", "output": ""},
            {"instruction": "q", "input": "", "output": None},
        ],
    )
    loaded = load_rows(SourceSpec(data=str(path)))
    assert len(loaded.rows) == 1
    assert [row["reason"] for row in loaded.invalid] == [
        "invalid_row:instruction_empty",
        "invalid_row:response_empty",
        "invalid_row:response_missing",
    ]
    with pytest.raises(SddError, match="row 1 .*instruction empty"):
        load_rows(SourceSpec(data=str(path)), strict=True)


def test_empty_missing_and_malformed_sources(tmp_path):
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(SddError):
        load_rows(SourceSpec(data=str(tmp_path / "empty.jsonl")))
    with pytest.raises(SddError, match="does not exist"):
        load_rows(SourceSpec(data=str(tmp_path / "nope.jsonl")))
    (tmp_path / "broken.jsonl").write_text('{"instruction": "a", "output": \n')
    with pytest.raises(SddError, match=r"broken.jsonl line 1: not valid JSON"):
        load_rows(SourceSpec(data=str(tmp_path / "broken.jsonl")))
    (tmp_path / "list.jsonl").write_text('{"instruction": "a", "output": "b"}\n["not", "a", "row"]\n')
    with pytest.raises(SddError, match=r"list.jsonl line 2: expected a JSON object, got list"):
        load_rows(SourceSpec(data=str(tmp_path / "list.jsonl")))
    with pytest.raises(SddError, match="unknown preset"):
        load_rows(SourceSpec(data=str(GSM8K_TEST), preset="nope"))


def test_unreachable_hub_dataset_is_one_clear_error(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens on the discard port
    with pytest.raises(SddError, match=r"Hub \(http://127.0.0.1:9\) is unreachable, so dataset 'no-such-org/x'"):
        load_rows(SourceSpec(data="no-such-org/x"))


def test_offline_mode_reports_a_dataset_missing_from_the_cache(monkeypatch):
    import datasets
    import huggingface_hub

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(SddError, match="unreachable or does not exist"):
        load_rows(SourceSpec(data="no-such-org/no-such-dataset"))


def test_packaged_example_is_usable():
    loaded = load_rows(SourceSpec(data="example"))
    assert len(loaded.rows) >= 30
    assert {"math", "mc", "free", "code"} <= {row["task"] for row in loaded.rows}
    assert all(row["reference_answer"] for row in loaded.rows if row["task"] in ("math", "mc"))


def test_duplicate_ids_are_refused_when_the_rows_load(tmp_path):
    rows = [{"id": key, "instruction": f"q{n}", "input": "", "output": "a"} for n, key in enumerate("abacbd")]
    path = tmp_path / "dups.jsonl"
    write_jsonl(path, rows)
    with pytest.raises(SddError, match=r"2 row id\(s\) are not unique: 'a' \(rows 0, 2\); 'b' \(rows 1, 4\)"):
        load_rows(SourceSpec(data=str(path)))
