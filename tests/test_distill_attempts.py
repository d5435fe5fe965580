"""`--attempts`: a rejected rewrite is sampled again, with a seed from its row id and the attempt, until one
passes; the same rows come out whatever the executor, the shard size or a resume in between."""

from __future__ import annotations

import json
import queue

import pyarrow.parquet as pq
import pytest
import test_distill
from test_distill import ChatTokenizer
from test_distill_executors import StreamingEngine

from sdd_data.data.sources import SourceSpec, load_rows
from sdd_data.distill.config import DistillConfig
from sdd_data.distill.shards import row_seed
from sdd_data.distill.stage import distill
from sdd_data.distill.templates import get_template
from sdd_data.engines import ENGINES
from sdd_data.engines.base import Generation
from sdd_data.errors import SddError

source = test_distill.source  # the scripted rows: right, wrong, cut, leak, fine, and one invalid row
teacher = test_distill.teacher
CALLS: list[tuple[str, int, float]] = []  # (row instruction, seed, temperature) of every generation


def retry_answer(instruction: str, seed: int) -> tuple[str, str]:
    """What a retry says: the wrong sum comes right on a seed divisible by 3, the cut one on an even seed; the
    leaking colour row never stops leaking."""
    if instruction == "What is 4 + 4?":
        return ("Four and four make eight. The answer is 8.", "stop") if seed % 3 == 0 else ("It is 9.", "stop")
    if instruction == "What is 1 + 1?":
        return ("One plus one is two. The answer is 2.", "stop") if seed % 2 == 0 else ("One plus", "length")
    return test_distill.SCRIPT[instruction]


class SamplingEngine:
    """The script when greedy; when sampling, an answer that depends on the row's seed (`retry_answer`)."""

    name = "sampling"

    def __init__(self, model_path, engine_config):
        self.tokenizer = ChatTokenizer()

    def generate(self, prompts, seeds, decoding, progress=None):
        outputs = []
        for prompt, seed in zip(prompts, seeds):
            instruction = next(key for key in test_distill.SCRIPT if key in prompt)
            CALLS.append((instruction, seed, decoding.temperature))
            text, finish = test_distill.SCRIPT[instruction] if decoding.greedy else retry_answer(instruction, seed)
            outputs.append(Generation(text, finish, len(prompt), len(text.split())))
        if progress:
            progress(len(prompts))
        return outputs

    def describe(self):
        return {"engine": self.name}

    def close(self):
        pass


class StreamingSamplingEngine(SamplingEngine):
    name = "streaming-sampling"
    generate_stream = StreamingEngine.generate_stream


ENGINES.add("sampling", SamplingEngine)
ENGINES.add("streaming-sampling", StreamingSamplingEngine)


def config_for(source, teacher, output, engine="sampling", shard_size=2, attempts=4) -> DistillConfig:
    return DistillConfig(
        source=SourceSpec(data=source),
        teacher=teacher,
        engine=engine,
        output=str(output),
        shard_size=shard_size,
        attempts=attempts,
        retry_temperature=0.9,
    )


def rows_of(output) -> list[dict]:
    kept, dropped = pq.read_table(output / "distilled.parquet"), pq.read_table(output / "dropped.parquet")
    return sorted(kept.to_pylist() + dropped.to_pylist(), key=lambda row: row["id"])


def first_passing_attempt(row_id: str, instruction: str, attempts: int) -> int | None:
    for attempt in range(2, attempts + 1):
        text, finish = retry_answer(instruction, row_seed(0, f"{row_id}#attempt{attempt}"))
        if finish == "stop" and ("8" in text or "2." in text):
            return attempt
    return None


def test_a_rejected_rewrite_is_sampled_again_until_one_passes(source, teacher, tmp_path):
    CALLS.clear()
    result = distill(config_for(source, teacher, tmp_path / "out"), show_progress=False)
    rows = {row["id"]: row for row in rows_of(result.output)}

    # Rows the filter passed at once are generated once; the others up to 4 times, each retry at the retry
    # temperature with the seed of the row id and the attempt.
    assert (rows["right"]["attempts"], rows["fine"]["attempts"]) == (1, 1)
    retries = [call for call in CALLS if call[2] > 0]
    assert all(temperature == 0.9 for _, _, temperature in retries)
    for row_id, instruction in (("wrong", "What is 4 + 4?"), ("cut", "What is 1 + 1?")):
        expected = first_passing_attempt(row_id, instruction, 4)
        seeds = [seed for text, seed, temperature in retries if text == instruction]
        made = expected or 4
        assert seeds == [row_seed(0, f"{row_id}#attempt{attempt}") for attempt in range(2, made + 1)]
        assert rows[row_id]["attempts"] == made
        assert rows[row_id]["decision"] == ("rewrite" if expected else "original")
    assert rows["wrong"]["decision"] == "rewrite" and rows["wrong"]["extracted_answer"] == "8"
    assert rows["leak"]["attempts"] == 4 and rows["leak"]["reason"] == "template_leak"  # never passed: the source
    assert rows["leak"]["messages"][-1]["content"] == "Blue."
    assert rows["empty"]["attempts"] is None  # set aside before the teacher: never generated

    # Every attempt's tokens are counted, the kept one's as teacher_tokens.
    spent = {row_id: 0 for row_id in rows}
    for instruction, seed, temperature in CALLS:
        row_id = next(row["id"] for row in test_distill.ROWS if row["instruction"] == instruction)
        text, _ = test_distill.SCRIPT[instruction] if temperature == 0 else retry_answer(instruction, seed)
        spent[row_id] += len(text.split())
    assert all(rows[row_id]["attempt_tokens"] == spent[row_id] for row_id in ("right", "wrong", "cut", "leak"))

    stats = result.stats["attempts"]
    assert stats["allowed"] == 4 and stats["units"] == 5
    kept = [row["attempts"] for row in rows.values() if row["decision"] == "rewrite"]
    assert stats["kept_by_attempt"] == {str(k): kept.count(k) for k in sorted(set(kept))}
    assert stats["yield_by_attempt"]["1"] == pytest.approx(2 / 5)
    assert stats["yield_by_attempt"]["4"] == pytest.approx(len(kept) / 5)
    assert stats["tokens_all_attempts"] == sum(spent.values())
    assert stats["tokens_all_attempts"] == result.stats["throughput"]["generated_tokens"]


def test_attempts_give_the_same_rows_on_every_executor_and_shard_size(source, teacher, tmp_path):
    from sdd_data.distill.data_parallel import _replica_main
    from sdd_data.distill.ray_executor import TeacherReplica

    plain = rows_of(distill(config_for(source, teacher, tmp_path / "plain"), show_progress=False).output)
    for engine, shard_size in (("streaming-sampling", 2), ("sampling", 1), ("sampling", 5)):
        output = tmp_path / f"{engine}-{shard_size}"
        assert (
            rows_of(distill(config_for(source, teacher, output, engine, shard_size), show_progress=False).output)
            == plain
        )
    by_id = {row["id"]: row for row in plain}

    # The Ray replica and the data-parallel replica run the same shards through the same code.
    config = config_for(source, teacher, tmp_path / "replicas")
    rows = load_rows(SourceSpec(data=source)).rows
    template = get_template("chat", {"math", "free"})
    replica = object.__new__(TeacherReplica)  # as Ray builds it, without a Ray cluster
    replica._load = lambda: SamplingEngine(teacher, config.engine_options)
    replica.engine, replica.config, replica.template = replica._load(), config, template
    table = replica._shards([(0, rows)])[0]
    for row in table.to_pylist():
        assert {key: row[key] for key in ("decision", "attempts", "attempt_tokens", "teacher_response")} == {
            key: by_id[row["id"]][key] for key in ("decision", "attempts", "attempt_tokens", "teacher_response")
        }
    run = tmp_path / "data-parallel"
    (run / "shards").mkdir(parents=True)
    messages: queue.Queue = queue.Queue()
    _replica_main(0, {}, str(run), [(0, rows)], teacher, template, config=config, messages=messages)
    [shard] = sorted(run.rglob("shard-*.parquet"))
    assert pq.read_table(shard).column("attempts").to_pylist() == table.column("attempts").to_pylist()


def test_a_resumed_run_redoes_only_the_missing_shard_with_its_retries(source, teacher, tmp_path):
    config = config_for(source, teacher, tmp_path / "out")
    first = distill(config, show_progress=False)
    (first.output / "shards" / "shard-00000.parquet").unlink()  # the shard of `right` and `wrong`
    CALLS.clear()
    second = distill(config, show_progress=False)
    assert {instruction for instruction, _, _ in CALLS} == {"What is 2 + 3?", "What is 4 + 4?"}
    assert rows_of(second.output) == rows_of(first.output)
    assert second.stats["attempts"] == first.stats["attempts"]


def test_attempts_are_checked_and_change_what_the_run_is(source, teacher, tmp_path):
    with pytest.raises(SddError, match="attempts must be at least 1, got 0"):
        distill(config_for(source, teacher, tmp_path / "a", attempts=0), show_progress=False)
    greedy_retries = config_for(source, teacher, tmp_path / "b")
    greedy_retries.retry_temperature = 0.0
    with pytest.raises(SddError, match="retry_temperature must be above 0 with attempts 4"):
        distill(greedy_retries, show_progress=False)
    once = distill(config_for(source, teacher, tmp_path / "c", attempts=1), show_progress=False)
    assert "attempts" not in pq.read_table(once.output / "distilled.parquet").column_names
    assert "attempts" not in json.loads((once.output / "stats.json").read_text())
    with pytest.raises(SddError, match=r"differs in: config.attempts"):
        distill(config_for(source, teacher, tmp_path / "c", attempts=2), show_progress=False)


def test_the_card_shows_the_yield_by_attempt_and_the_copies(source, teacher, tmp_path):
    from sdd_data.publish.stage import PublishConfig, publish

    run = distill(config_for(source, teacher, tmp_path / "out"), show_progress=False)
    publish(PublishConfig(distilled=str(run.output), output_dir=str(tmp_path / "published")))
    card = (tmp_path / "published" / "README.md").read_text()
    stats = run.stats["attempts"]
    assert "#### Rejection sampling" in card and "up to 4 generations in all, at temperature" in card
    for attempt, share in stats["yield_by_attempt"].items():
        assert f"| {attempt} | {stats['kept_by_attempt'].get(attempt, 0)} | {100 * share:.1f}% |" in card
    copies = run.stats["copies"]
    assert f"{copies['copies']} of the {copies['kept_rewrites']} kept rewrites" in card


def test_a_kept_rewrite_that_repeats_the_source_counts_as_a_copy():
    import pyarrow as pa

    from sdd_data.distill.stats import copy_stats

    source = "Natalia sold 48 clips in April and half as many in May, 72 clips in all. #### 72"
    rows = [
        ("rewrite", source, source + " "),  # a copy, whitespace aside
        ("rewrite", source, source.replace("Natalia", "She")),  # nearly a copy
        ("rewrite", source, "In April she sold 48 clips; in May, 24. Together: 72. The answer is 72."),  # her own words
        ("original", source, source),  # not kept: not counted
    ]
    table = pa.table({"decision": [r[0] for r in rows], "response": [r[1] for r in rows],
                      "teacher_response": [r[2] for r in rows]})  # fmt: skip
    assert copy_stats(table) == {"threshold": 90.0, "kept_rewrites": 3, "copies": 2, "rate": round(2 / 3, 4)}


def test_a_streaming_engine_gets_the_retries_in_the_same_feed_and_finished_shards_land_first(
    source, teacher, tmp_path, monkeypatch
):
    from test_distill_executors import FEEDS

    from sdd_data.distill.run_dir import RunDir

    written: list[tuple[int, int]] = []  # (shard, feeds read so far) at each write
    original_write = RunDir.write_shard

    def recording_write(run, index, table):
        written.append((index, len(FEEDS)))
        original_write(run, index, table)

    monkeypatch.setattr(RunDir, "write_shard", recording_write)
    FEEDS.clear()
    distill(config_for(source, teacher, tmp_path / "out", engine="streaming-sampling"), show_progress=False)
    first_feed = {shard for shard, _ in FEEDS[0]}
    assert first_feed == {0, 1, 2} and len(FEEDS) > 1, "retries come in later reads of the same feed"
    assert {shard for feed in FEEDS[1:] for shard, _ in feed} <= {0, 1}, "only shards with rejected rewrites retry"
    assert written[0] == (2, 1), "a shard with nothing to retry lands before any retry is read"
