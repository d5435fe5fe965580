"""Decontamination: rows sharing a 13-gram with an evaluation item are found, counted and set aside."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest
from data_samples import write_jsonl
from test_distill import ROWS, config_for

from sdd_data.data.decontaminate import build_index, normalised_words
from sdd_data.distill.stage import distill
from sdd_data.errors import SddError

QUESTION = "Which of these would help a plant grow best in a dark room with no windows at all?"


@pytest.fixture
def eval_file(tmp_path):
    path = tmp_path / "arc.jsonl"
    rows = [
        {"query": f"Question: {QUESTION}", "choices": ["a lamp", "a rock"], "gold": 0},
        {"query": "Question: What is two plus three?", "choices": ["5", "6"], "gold": 0},
    ]
    write_jsonl(path, rows)
    return path


def test_text_is_normalised_to_words():
    assert normalised_words("What's 2+3? It's FIVE!") == ["what", "s", "2", "3", "it", "s", "five"]


def test_a_shared_13_gram_is_found_whatever_the_case_and_punctuation(eval_file):
    index = build_index([str(eval_file)])
    assert index.items == 4 and index.sources == ["arc.jsonl"]
    copied = "Here is a question. " + QUESTION.upper().replace(" ", "  ").replace("room", "room,") + " Think."
    assert index.contaminated(copied)
    assert not index.contaminated(" ".join(QUESTION.split()[:12]))  # 12 words are not a 13-gram
    assert not index.contaminated("What is two plus three? The answer is 5.")  # items under 13 words cannot match
    with pytest.raises(SddError, match="does not exist"):
        build_index([str(eval_file.parent / "missing.jsonl")])


def test_distill_sets_contaminated_rows_aside_before_the_teacher_runs(eval_file, tmp_path):
    import test_distill

    leaked = {"id": "leaked", "instruction": QUESTION, "input": "", "output": "A lamp.", "task": "free"}
    source = tmp_path / "rows.jsonl"
    write_jsonl(source, [*ROWS, leaked])
    teacher = tmp_path / "teacher"
    teacher.mkdir()
    (teacher / "config.json").write_text("{}")
    calls = len(test_distill.CALLS)
    result = distill(
        config_for(str(source), str(teacher), tmp_path / "run", decontaminate=str(eval_file)), show_progress=False
    )
    prompted = sum(test_distill.CALLS[calls:])
    dropped = {row["id"]: row["reason"] for row in pq.read_table(result.output / "dropped.parquet").to_pylist()}
    assert dropped["leaked"] == "contaminated" and prompted == len(ROWS) - 1  # the invalid row and the leak
    assert result.stats["reasons_by_decision"]["dropped"]["contaminated"] == 1
    assert result.stats["config"]["decontaminate"] == str(eval_file)
