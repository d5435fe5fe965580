"""Prompts longer than the teacher's context: measured before generation, set aside or cut, never a crash."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest
from cores import engine_environment
from data_samples import write_jsonl

from sdd_data.data.sources import SourceSpec
from sdd_data.distill.stage import DistillConfig, distill
from sdd_data.engines import DecodingConfig, EngineConfig, load_engine
from sdd_data.errors import SddError

CONTEXT = 300  # the tiny Llama's chat prompt for a short row is about 170 tokens
MAX_NEW_TOKENS = 16
ROWS = [
    {"id": "short", "instruction": "Name a fruit.", "output": "An apple."},
    {"id": "medium", "instruction": "Name a fruit.", "output": "word " * 40},
    {"id": "long-reference", "instruction": "Name a fruit.", "output": "word " * 200},
    {"id": "long-instruction", "instruction": "word " * 200, "output": "An apple."},
    {"id": "short-2", "instruction": "Name a colour.", "output": "Blue."},
]


def render(tokenizer, question: str) -> str:
    return tokenizer.apply_chat_template(
        [{"role": "user", "content": question}], tokenize=False, add_generation_prompt=True
    )


def run(tiny_llama_path, tmp_path, name: str, **options):
    source = tmp_path / "rows.jsonl"
    write_jsonl(source, [{**row, "input": "", "task": "free"} for row in ROWS])
    config = DistillConfig(
        source=SourceSpec(data=str(source)),
        teacher=tiny_llama_path,
        engine="transformers",
        output=str(tmp_path / name),
        shard_size=2,
        **options,
    )
    config.engine_options.max_model_len = CONTEXT
    config.engine_options.batch_size = 4
    config.decoding.max_new_tokens = MAX_NEW_TOKENS
    result = distill(config, show_progress=False)
    rows = pq.read_table(result.output / "distilled.parquet").to_pylist()
    rows += pq.read_table(result.output / "dropped.parquet").to_pylist()
    return {row["id"]: row for row in rows}, result.stats


def test_prompts_too_long_for_the_context_are_set_aside_before_generation(tiny_llama_path, tmp_path):
    rows, stats = run(tiny_llama_path, tmp_path, "default")
    for name in ("long-reference", "long-instruction"):
        row = rows[name]
        assert (row["decision"], row["reason"]) == ("original", "prompt_too_long")
        assert row["prompt_tokens"] >= CONTEXT and row["teacher_tokens"] == 0
        assert row["teacher_response"] is None and row["finish_reason"] is None
        assert row["messages"][-1]["content"] == row["response"]
    for name in ("short", "medium", "short-2"):
        assert rows[name]["reason"] != "prompt_too_long"
        assert 0 < rows[name]["prompt_tokens"] < CONTEXT and rows[name]["finish_reason"] in ("stop", "length")
    assert stats["reasons"]["prompt_too_long"] == 2
    assert stats["reasons_by_decision"]["original"]["prompt_too_long"] == 2
    assert stats["rows_in"] == stats["rows_out"] == len(ROWS)
    assert stats["engine"]["context_length"] == CONTEXT


def test_with_the_drop_policy_prompts_too_long_are_dropped(tiny_llama_path, tmp_path):
    from sdd_data.distill.consistency import FilterConfig

    rows, stats = run(tiny_llama_path, tmp_path, "drop", filter=FilterConfig(on_failure="drop"))
    assert {name for name, row in rows.items() if row["reason"] == "prompt_too_long"} == {
        "long-reference",
        "long-instruction",
    }
    assert all(rows[name]["decision"] == "dropped" for name in ("long-reference", "long-instruction"))
    assert rows["long-reference"]["messages"] is None
    assert stats["reasons_by_decision"]["dropped"]["prompt_too_long"] == 2


def test_truncate_long_prompts_cuts_the_reference_inside_the_prompt(tiny_llama_path, tmp_path):
    rows, stats = run(tiny_llama_path, tmp_path, "cut", truncate_long_prompts=True)
    cut = rows["long-reference"]
    assert cut["reason"] != "prompt_too_long" and cut["finish_reason"] in ("stop", "length")
    assert cut["prompt_tokens"] <= CONTEXT - MAX_NEW_TOKENS  # room left for every new token
    assert cut["response"] == ROWS[2]["output"]  # the stored row keeps its whole response
    if cut["decision"] == "rewrite":
        assert cut["reason"] == "prompt_truncated"
    # With no reference left the instruction alone is still too long: set aside all the same.
    assert rows["long-instruction"]["reason"] == "prompt_too_long"
    assert stats["reasons"]["prompt_too_long"] == 1
    assert stats["config"]["truncate_long_prompts"] is True


def test_transformers_generation_stops_at_the_end_of_the_context(tiny_llama_path):
    full = load_engine("transformers", tiny_llama_path, EngineConfig(batch_size=2))
    prompts = [render(full.tokenizer, "hi " * length) for length in (3, 12)]
    lengths = [len(full.tokenizer(prompt, add_special_tokens=False)["input_ids"]) for prompt in prompts]
    decoding = DecodingConfig(max_new_tokens=12)
    uncapped = full.generate(prompts, [0, 0], decoding)
    full.close()

    capped_config = EngineConfig(batch_size=2, max_model_len=max(lengths) + 3)
    capped_engine = load_engine("transformers", tiny_llama_path, capped_config)
    assert capped_engine.context_length == max(lengths) + 3
    capped = capped_engine.generate(prompts, [0, 0], decoding)
    for length, free, bounded in zip(lengths, uncapped, capped):
        room = min(12, max(lengths) + 3 - length)
        assert bounded.completion_tokens == min(room, free.completion_tokens)
        if free.completion_tokens > room:
            assert bounded.finish_reason == "length"
        else:
            assert (bounded.text, bounded.finish_reason) == (free.text, free.finish_reason)

    with pytest.raises(SddError, match=r"leave no room for a new token in the \d+-token context"):
        capped_engine.generate([render(capped_engine.tokenizer, "hi " * 40)], [0], decoding)
    capped_engine.close()


def test_a_context_longer_than_the_model_s_is_refused(tiny_llama_path):
    with pytest.raises(SddError, match=r"max_model_len 4096 is longer than the context of .* \(1024 tokens\)"):
        load_engine("transformers", tiny_llama_path, EngineConfig(max_model_len=4096))


def test_a_prompt_fits_when_it_leaves_room_for_one_new_token():
    from sdd_data.engines.base import prompt_fits

    assert prompt_fits(299, 300) and not prompt_fits(300, 300) and prompt_fits(10**6, None)


@pytest.mark.slow
def test_vllm_sets_long_prompts_aside_instead_of_failing_mid_run(tiny_llama_path, tmp_path):
    import subprocess
    import sys

    source = tmp_path / "rows.jsonl"
    write_jsonl(source, [{**row, "input": "", "task": "free"} for row in ROWS])
    output = tmp_path / "vllm"
    command = [sys.executable, "-m", "sdd_data.cli", "distill", "--engine", "vllm", "--data", str(source)]
    command += ["--teacher", tiny_llama_path, "--output", str(output), "--max-model-len", str(CONTEXT)]
    command += ["--max-new-tokens", "32"]
    env = engine_environment(VLLM_CPU_KVCACHE_SPACE="1")
    finished = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    assert finished.returncode == 0, finished.stderr[-3000:]
    rows = {row["id"]: row for row in pq.read_table(output / "distilled.parquet").to_pylist()}
    assert {name for name, row in rows.items() if row["reason"] == "prompt_too_long"} == {
        "long-reference",
        "long-instruction",
    }
    medium = rows["medium"]  # about 282 prompt tokens: generation ends at the context's end, not at 32 tokens
    assert medium["prompt_tokens"] + medium["teacher_tokens"] <= CONTEXT
    assert medium["finish_reason"] in ("stop", "length")
    stats = json.loads((output / "stats.json").read_text())
    assert stats["engine"]["max_model_len"] == CONTEXT and stats["reasons"]["prompt_too_long"] == 2
