"""The distill stage end to end with a scripted engine: decisions, outputs, stats, resume and refusals."""

import json
import os

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from data_samples import write_jsonl

from sdd_data.data.sources import SourceSpec
from sdd_data.distill.stage import DistillConfig, distill
from sdd_data.engines import ENGINES
from sdd_data.engines.base import Generation
from sdd_data.errors import SddError

ROWS = [
    {"id": "right", "instruction": "What is 2 + 3?", "input": "", "output": "2 + 3 = 5.\n#### 5", "task": "math"},
    {"id": "wrong", "instruction": "What is 4 + 4?", "input": "", "output": "4 + 4 = 8.\n#### 8", "task": "math"},
    {"id": "cut", "instruction": "What is 1 + 1?", "input": "", "output": "1 + 1 = 2.\n#### 2", "task": "math"},
    {"id": "leak", "instruction": "Name a colour.", "input": "", "output": "Blue.", "task": "free"},
    {"id": "fine", "instruction": "Name a fruit.", "input": "", "output": "An apple.", "task": "free"},
    {"id": "empty", "instruction": "   ", "input": "", "output": "x", "task": "free"},
]
SCRIPT = {  # instruction -> what the teacher says and why it stopped
    "What is 2 + 3?": ("Two plus three is five. The answer is 5.", "stop"),
    "What is 4 + 4?": ("Four and four make nine. The answer is 9.", "stop"),
    "What is 1 + 1?": ("One plus one is", "length"),
    "Name a colour.": ("As the reference answer says, blue.", "stop"),
    "Name a fruit.": ("A ripe pear.", "stop"),
}
CALLS: list[int] = []


class ChatTokenizer:
    def apply_chat_template(self, messages, tokenize, add_generation_prompt):
        return "".join(f"<{m['role']}>{m['content']}</>" for m in messages) + "<assistant>"

    def __call__(self, text, add_special_tokens=True):
        return type("Encoding", (), {"input_ids": list(range(len(text)))})()


class ScriptedEngine:
    """Answers from SCRIPT by finding the instruction in the rendered prompt."""

    name = "scripted"

    def __init__(self, model_path, engine_config):
        self.tokenizer = ChatTokenizer()

    def generate(self, prompts, seeds, decoding, progress=None):
        CALLS.append(len(prompts))
        outputs = []
        for prompt in prompts:
            text, finish = next(value for key, value in SCRIPT.items() if key in prompt)
            outputs.append(Generation(text, finish, len(prompt), len(text.split())))
        if progress:
            progress(len(prompts))
        return outputs

    def describe(self):
        return {"engine": "scripted"}

    def close(self):
        pass


ENGINES.add("scripted", ScriptedEngine)


@pytest.fixture
def source(tmp_path):
    path = tmp_path / "rows.jsonl"
    write_jsonl(path, ROWS)
    return str(path)


@pytest.fixture
def teacher(tmp_path):
    folder = tmp_path / "teacher"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    return str(folder)


def config_for(source, teacher, output, **options):
    return DistillConfig(
        source=SourceSpec(data=source), teacher=teacher, engine="scripted", output=str(output), shard_size=2, **options
    )


def test_each_row_gets_a_decision_and_a_reason(source, teacher, tmp_path):
    result = distill(config_for(source, teacher, tmp_path / "out"), show_progress=False)
    kept = {row["id"]: row for row in pq.read_table(result.output / "distilled.parquet").to_pylist()}
    dropped = {row["id"]: row for row in pq.read_table(result.output / "dropped.parquet").to_pylist()}
    assert (kept["right"]["decision"], kept["right"]["reason"], kept["right"]["extracted_answer"]) == (
        "rewrite",
        "ok",
        "5",
    )
    assert kept["right"]["messages"][-1]["content"] == "Two plus three is five. The answer is 5."
    assert kept["right"]["messages"][0] == {"role": "user", "content": "What is 2 + 3?"}
    assert (kept["wrong"]["decision"], kept["wrong"]["reason"]) == ("original", "answer_mismatch")
    assert kept["wrong"]["messages"][-1]["content"] == ROWS[1]["output"]
    assert kept["wrong"]["teacher_response"].startswith("Four and four")
    assert (kept["cut"]["reason"], kept["cut"]["finish_reason"]) == ("truncated", "length")
    assert kept["leak"]["reason"] == "template_leak"
    assert kept["fine"]["decision"] == "rewrite"
    assert list(dropped) == [ROWS[5]["id"]] and dropped["empty"]["reason"] == "invalid_row:instruction_empty"

    stats = json.loads((result.output / "stats.json").read_text())
    assert stats["rows_in"] == 6 and stats["rows_out"] == 5
    assert stats["decisions"] == {"original": 3, "rewrite": 2, "dropped": 1}
    assert stats["reasons_by_decision"]["original"] == {"answer_mismatch": 1, "truncated": 1, "template_leak": 1}
    assert stats["by_task"]["math"]["rows"] == 3
    assert stats["template"]["name"] == "chat" and "Reference Answer" in stats["template"]["user"]
    assert stats["config"]["max_new_tokens"] == 512 and stats["teacher"]["path"] == teacher

    saved = datasets.load_from_disk(str(result.output / "data"))
    assert sorted(saved["id"]) == sorted(kept)


def test_drop_policy_drops_rejected_rows(source, teacher, tmp_path):
    config = config_for(source, teacher, tmp_path / "out")
    config.filter.on_failure = "drop"
    result = distill(config, show_progress=False)
    assert result.stats["decisions"] == {"dropped": 4, "rewrite": 2}
    assert sorted(datasets.load_from_disk(str(result.output / "data"))["id"]) == ["fine", "right"]


def test_a_rerun_reuses_finished_shards_and_redoes_missing_ones(source, teacher, tmp_path):
    config = config_for(source, teacher, tmp_path / "out")
    first = distill(config, show_progress=False)
    (first.output / "shards" / "shard-00001.parquet").unlink()  # as if killed before this shard landed
    CALLS.clear()
    second = distill(config, show_progress=False)
    assert CALLS == [2]
    assert second.stats["throughput"]["resumed_shards"] == 2
    assert second.stats["decisions"] == first.stats["decisions"]
    CALLS.clear()
    distill(config, show_progress=False)
    assert CALLS == []  # everything done: the engine is not even loaded


def test_a_different_config_in_the_same_folder_is_refused(source, teacher, tmp_path):
    distill(config_for(source, teacher, tmp_path / "out"), show_progress=False)
    changed = config_for(source, teacher, tmp_path / "out")
    changed.decoding.max_new_tokens = 64
    with pytest.raises(SddError, match=r"holds results of another run \(differs in: config.max_new_tokens\)"):
        distill(changed, show_progress=False)
    changed.overwrite = True
    assert distill(changed, show_progress=False).stats["config"]["max_new_tokens"] == 64


def test_a_folder_with_other_files_is_refused(source, teacher, tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_text("mine")
    with pytest.raises(SddError, match="holds no sdd-data run"):
        distill(config_for(source, teacher, tmp_path / "out"), show_progress=False)
    assert (tmp_path / "out" / "notes.txt").read_text() == "mine"


def test_bad_options_fail_before_anything_is_written(source, teacher, tmp_path):
    with pytest.raises(SddError, match="unknown engine 'nope'"):
        distill(
            DistillConfig(source=SourceSpec(data=source), teacher=teacher, engine="nope", output=str(tmp_path / "a")),
            show_progress=False,
        )
    with pytest.raises(SddError, match="unknown template"):
        distill(config_for(source, teacher, tmp_path / "b", template="nope"), show_progress=False)
    with pytest.raises(SddError, match="does not exist"):
        distill(config_for(source, str(tmp_path / "no-model"), tmp_path / "c"), show_progress=False)
    assert not any((tmp_path / name).exists() for name in "abc")
    assert "scripted" in ENGINES


def test_a_run_killed_before_its_manifest_landed_starts_on_rerun(source, teacher, tmp_path):
    output = tmp_path / "out"
    (output / "shards").mkdir(parents=True)  # an empty shards folder and a half-written manifest, no run.json
    (output / ".run.json.tmp-999999").write_text('{"ident')
    result = distill(config_for(source, teacher, output), show_progress=False)
    assert result.stats["rows_in"] == len(ROWS)
    assert not list(output.glob(".*.tmp-*"))


def test_a_corrupt_manifest_is_one_line_error(source, teacher, tmp_path):
    config = config_for(source, teacher, tmp_path / "out")
    distill(config, show_progress=False)
    for text in ('{"identity": {"con', "[1, 2]", ""):
        (tmp_path / "out" / "run.json").write_text(text)
        with pytest.raises(SddError, match=r"run.json is not a readable run manifest; use --overwrite") as error:
            distill(config, show_progress=False)
        assert "\n" not in str(error.value)
    config.overwrite = True
    assert distill(config, show_progress=False).stats["rows_in"] == len(ROWS)


@pytest.mark.parametrize("damage", ["truncated", "empty", "garbage", "old_schema"])
def test_a_damaged_shard_is_redone(source, teacher, tmp_path, damage, capsys):
    config = config_for(source, teacher, tmp_path / "out")
    first = distill(config, show_progress=False)
    shard = first.output / "shards" / "shard-00001.parquet"
    if damage == "truncated":
        shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])
    elif damage == "empty":
        shard.write_bytes(b"")
    elif damage == "garbage":
        shard.write_bytes(b"PAR1" + b"\x00" * 64 + b"PAR1")
    else:
        pq.write_table(pq.read_table(shard).drop_columns(["prompt_tokens"]), shard)
    (first.output / "stats.json").unlink()
    CALLS.clear()
    second = distill(config, show_progress=False)
    assert CALLS == [2]
    assert "shard-00001.parquet" in capsys.readouterr().err
    assert second.stats["decisions"] == first.stats["decisions"]
    ids = pq.read_table(second.output / "distilled.parquet").column("id").to_pylist()
    assert sorted(ids) == sorted(row["id"] for row in ROWS[:5])


def test_a_shard_holding_other_rows_is_refused(source, teacher, tmp_path):
    config = config_for(source, teacher, tmp_path / "out")
    first = distill(config, show_progress=False)
    shard = first.output / "shards" / "shard-00001.parquet"
    table = pq.read_table(shard)
    pq.write_table(table.set_column(0, "id", pa.array(["other-1", "other-2"])), shard)
    (first.output / "stats.json").unlink()
    with pytest.raises(SddError, match=r"shard-00001.parquet holds other rows than this run's; use --overwrite"):
        distill(config, show_progress=False)


def test_stray_files_in_the_shards_folder_are_ignored(source, teacher, tmp_path):
    config = config_for(source, teacher, tmp_path / "out")
    (tmp_path / "out" / "shards").mkdir(parents=True)
    distill(config, show_progress=False)
    (tmp_path / "out" / "shards" / "shard-copy.parquet").write_bytes(b"x")
    (tmp_path / "out" / "stats.json").unlink()
    assert distill(config, show_progress=False).stats["rows_in"] == len(ROWS)


def test_an_output_that_is_a_file_is_one_line_error(source, teacher, tmp_path):
    (tmp_path / "out").write_text("mine")
    with pytest.raises(SddError, match="is a file"):
        distill(config_for(source, teacher, tmp_path / "out"), show_progress=False)
    assert (tmp_path / "out").read_text() == "mine"


def test_a_finished_run_is_left_as_it_is(source, teacher, tmp_path):
    config = config_for(source, teacher, tmp_path / "out")
    first = distill(config, show_progress=False)
    written = {path: path.stat().st_mtime_ns for path in first.output.rglob("*")}
    stats = (first.output / "stats.json").read_text()
    CALLS.clear()
    again = distill(config, show_progress=False)
    assert CALLS == [] and again.stats == json.loads(stats)
    assert {path: path.stat().st_mtime_ns for path in first.output.rglob("*")} == written
    assert again.stats["throughput"]["generated_rows"] == 5  # what the run that did the work counted


def test_a_second_run_in_the_same_folder_at_once_is_refused(source, teacher, tmp_path):
    fcntl = pytest.importorskip("fcntl")
    output = tmp_path / "out"
    output.mkdir()
    holder = os.open(output, os.O_RDONLY)
    try:
        fcntl.flock(holder, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(SddError, match="is in use by another distill run"):
            distill(config_for(source, teacher, output), show_progress=False)
    finally:
        os.close(holder)
    assert distill(config_for(source, teacher, output), show_progress=False).stats["rows_in"] == len(ROWS)


def test_an_option_newer_than_the_run_left_at_its_default_still_resumes(source, teacher, tmp_path):
    config = config_for(source, teacher, tmp_path / "out")
    distill(config, show_progress=False)
    identity = json.loads((tmp_path / "out" / "run.json").read_text())["identity"]
    assert "truncate_long_prompts" not in identity["config"]  # as a run begun before the option existed
    (tmp_path / "out" / "stats.json").unlink()
    assert distill(config, show_progress=False).stats["rows_in"] == len(ROWS)
    changed = config_for(source, teacher, tmp_path / "out", truncate_long_prompts=True)
    with pytest.raises(SddError, match=r"differs in: config.truncate_long_prompts"):
        distill(changed, show_progress=False)


def test_a_full_disk_is_one_line_error_and_the_rerun_resumes(source, teacher, tmp_path, monkeypatch):
    import errno

    from sdd_data.distill import run_dir

    real_write_table, calls = run_dir.pq.write_table, []

    def write_table(table, where, **options):
        calls.append(where)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device", str(where))
        return real_write_table(table, where, **options)

    config = config_for(source, teacher, tmp_path / "out")
    monkeypatch.setattr(run_dir.pq, "write_table", write_table)
    with pytest.raises(SddError, match=r"cannot write in .*out: No space left on device; make room or fix it") as error:
        distill(config, show_progress=False)
    assert "\n" not in str(error.value)
    monkeypatch.setattr(run_dir.pq, "write_table", real_write_table)
    CALLS.clear()
    assert distill(config, show_progress=False).stats["throughput"]["resumed_shards"] == 1
    assert CALLS == [2, 1]  # shards 1 and 2 of 2, 2 and 1 rows


def test_an_unreadable_stats_file_makes_the_final_phase_run_again(source, teacher, tmp_path):
    config = config_for(source, teacher, tmp_path / "out")
    first = distill(config, show_progress=False)
    (first.output / "stats.json").write_text('{"rows_in": ')
    CALLS.clear()
    again = distill(config, show_progress=False)
    assert CALLS == [] and again.stats["decisions"] == first.stats["decisions"]
    assert json.loads((first.output / "stats.json").read_text())["rows_in"] == len(ROWS)
