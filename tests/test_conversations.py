"""Conversations through distill with a scripted teacher: every turn accounted for, per-turn decisions, both schemas,
bad conversations refused one by one, the turn context, and reasoning teachers' thinking."""

import json
import re

import pyarrow.parquet as pq
import pytest
from data_samples import CHAT_EDGE_CASES, CHAT_MESSAGES, CHAT_PARTS, CHAT_SHAREGPT, write_jsonl
from test_distill import ScriptedEngine

from sdd_data.data.sources import SourceSpec, load_rows
from sdd_data.distill.stage import DistillConfig, distill
from sdd_data.engines import ENGINES
from sdd_data.engines.base import Generation

PROMPTS: list[list[str]] = []  # the prompts of each generate() call
TEMPLATE_SWITCHES: list[dict] = []


class RoleTokenizer:
    """Renders messages as `<role>text</>`; with enable_thinking the assistant turn opens with `<think>`."""

    def apply_chat_template(self, messages, tokenize, add_generation_prompt, **switches):
        TEMPLATE_SWITCHES.append(switches)
        text = "".join(f"<{m['role']}>{m['content']}{json.dumps(m.get('tool_calls', ''))}</>" for m in messages)
        return text + "<assistant>" + ("<think>\n" if switches.get("enable_thinking") else "")

    def __call__(self, text, add_special_tokens=True):
        return type("Encoding", (), {"input_ids": list(range(len(text)))})()


def _reference(prompt: str) -> tuple[str, str]:
    """The instruction and the reference answer of the last user turn of a rendered `chat` prompt."""
    last = prompt.rsplit("<user>", 1)[1]
    match = re.search(r"### Instruction:\n(.*)\n\n### Reference Answer:\n(.*)</>", last, re.S)
    assert match, last
    return match.group(1), match.group(2).rsplit('""', 1)[0]


def conversation_teacher(prompt: str) -> str:
    """Restates the reference, except: a wrong number when asked to compare, a leak when asked to say it again."""
    instruction, reference = _reference(prompt)
    if "more than 10" in instruction:
        return "Perhaps. The answer is 999."
    if instruction.startswith("Say that again"):
        return "As the reference answer says, it is so."
    return f"Rewritten: {reference}"


SCRIPT = {"teacher": conversation_teacher}


class ScriptedChatEngine(ScriptedEngine):
    """The distill tests' scripted engine with a chat tokenizer and a teacher that reads the rendered prompt."""

    name = "scripted-chat"

    def __init__(self, model_path, engine_config):
        self.tokenizer = RoleTokenizer()

    def generate(self, prompts, seeds, decoding, progress=None):
        PROMPTS.append(list(prompts))
        outputs = []
        for prompt in prompts:
            text = SCRIPT["teacher"](prompt)
            outputs.append(Generation(text, "stop", len(prompt), len(text.split())))
        if progress:
            progress(len(prompts))
        return outputs


ENGINES.add("scripted-chat", ScriptedChatEngine)


@pytest.fixture
def teacher(tmp_path):
    folder = tmp_path / "teacher"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    return str(folder)


@pytest.fixture(autouse=True)
def fresh_script():
    PROMPTS.clear()
    TEMPLATE_SWITCHES.clear()
    SCRIPT["teacher"] = conversation_teacher
    yield


def run(data, teacher, output, **options):
    config = DistillConfig(
        source=SourceSpec(data=str(data)), teacher=teacher, engine="scripted-chat", output=str(output), shard_size=3
    )
    for name, value in options.items():
        setattr(config, name, value)
    return distill(config, show_progress=False)


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def outputs(result):
    kept = {row["id"]: row for row in pq.read_table(result.output / "distilled.parquet").to_pylist()}
    dropped = {row["id"]: row for row in pq.read_table(result.output / "dropped.parquet").to_pylist()}
    return kept, dropped


def test_sources_read_every_turn_of_both_schemas_and_a_single_exchange_as_a_plain_row():
    messages = load_rows(SourceSpec(data=str(CHAT_MESSAGES)))
    sharegpt = load_rows(SourceSpec(data=str(CHAT_SHAREGPT)))
    assert (messages.preset, sharegpt.preset) == ("messages", "sharegpt")
    source = read_jsonl(CHAT_MESSAGES)
    assert messages.turns_in == sharegpt.turns_in == sum(len(row["messages"]) for row in source)
    for row, raw, other in zip(messages.rows, source, sharegpt.rows):
        assert [(turn["role"], turn["content"]) for turn in row["conversation"]] == [
            (message["role"], message["content"]) for message in raw["messages"]
        ]
        assert other["conversation"] == row["conversation"] and other["id"] == row["id"] == raw["id"]
    edge = {row["id"]: row for row in load_rows(SourceSpec(data=str(CHAT_EDGE_CASES))).rows}
    assert edge["single-exchange"]["conversation"] is None
    assert (edge["single-exchange"]["instruction"], edge["single-exchange"]["response"]) == ("Name a colour.", "Blue.")
    parts = {row["id"]: row for row in load_rows(SourceSpec(data=str(CHAT_PARTS))).rows}
    assert [turn["content"] for turn in parts["text-parts"]["conversation"]] == [
        "Name a fruit\nthat is yellow.",
        "A banana.",
        "And a red one?",
        "A strawberry.",
    ]


@pytest.mark.parametrize("data", [CHAT_EDGE_CASES, CHAT_PARTS])
def test_each_bad_conversation_is_set_aside_with_its_reason_and_the_others_go_on(data, teacher, tmp_path):
    result = run(data, teacher, tmp_path / "out")
    kept, dropped = outputs(result)
    for raw in read_jsonl(data):
        if raw["expect"] == "ok":
            assert raw["id"] in kept
        else:
            assert dropped[raw["id"]]["reason"] == f"invalid_row:{raw['expect']}"
            assert json.loads(dropped[raw["id"]]["conversation"]) == raw["messages"]  # kept as read
    conversations = result.stats["conversations"]
    assert conversations["turns_in"] == conversations["turns_out"] == sum(len(r["messages"]) for r in read_jsonl(data))


def test_tool_turns_and_the_system_prompt_pass_through_and_tool_calls_are_never_rewritten(teacher, tmp_path):
    kept, _ = outputs(run(CHAT_EDGE_CASES, teacher, tmp_path / "out"))
    source = next(row for row in read_jsonl(CHAT_EDGE_CASES) if row["id"] == "tools")["messages"]
    stored = kept["tools"]["messages"]
    assert [message["role"] for message in stored] == [message["role"] for message in source]
    assert stored[0]["content"] == source[0]["content"]  # the system prompt
    assert json.loads(stored[2]["tool_calls"]) == source[2]["tool_calls"]
    assert (stored[3]["content"], stored[3]["tool_call_id"], stored[3]["name"]) == (
        source[3]["content"],
        "call_0",
        "get_weather",
    )
    turns = {record["turn"]: record for record in kept["tools"]["turns"]}
    assert (turns[2]["decision"], turns[2]["reason"], turns[2]["teacher_response"]) == ("original", "tool_call", None)
    assert (turns[4]["decision"], turns[4]["reason"]) == ("original", "after_tool_result")
    assert stored[4]["content"] == source[4]["content"]
    assert (turns[6]["decision"], stored[6]["content"]) == ("rewrite", f"Rewritten: {source[6]['content']}")
    tool_prompt = next(prompt for call in PROMPTS for prompt in call if "take a coat" in prompt)
    assert "get_weather" in tool_prompt and "You can look up the weather." in tool_prompt


@pytest.mark.parametrize("data", [CHAT_MESSAGES, CHAT_SHAREGPT])
def test_every_assistant_turn_is_judged_on_its_own_and_the_conversation_stays_whole(data, teacher, tmp_path):
    result = run(data, teacher, tmp_path / "out")
    kept, dropped = outputs(result)
    source = {row["id"]: row for row in read_jsonl(CHAT_MESSAGES)}
    assert not dropped and set(kept) == set(source)
    for identifier, row in kept.items():
        original = source[identifier]["messages"]
        assert len(row["messages"]) == len(original)
        by_turn = {record["turn"]: record for record in row["turns"]}
        assert sorted(by_turn) == [place for place, message in enumerate(original) if message["role"] == "assistant"]
        for place, (message, written) in enumerate(zip(row["messages"], original)):
            assert message["role"] == written["role"]
            if written["role"] != "assistant":
                assert message["content"] == written["content"]
                continue
            record = by_turn[place]
            assert record["response"] == written["content"]  # the source text stays beside the rewrite
            rewritten = f"Rewritten: {written['content'].strip()}"
            assert message["content"] == (rewritten if record["decision"] == "rewrite" else written["content"])
        instructions = [original[place - 1]["content"] for place in sorted(by_turn)]
        reasons = [by_turn[place]["reason"] for place in sorted(by_turn)]
        for instruction, reason in zip(instructions, reasons):
            if "more than 10" in instruction:
                assert reason == "answer_mismatch"
            elif instruction.startswith("Say that again"):
                assert reason == "template_leak"
            else:
                assert reason == "ok"
        assert (row["decision"], row["reason"]) == (
            ("rewrite", "ok") if set(reasons) == {"ok"} else ("rewrite", "partial_rewrite")
        )
    conversations = result.stats["conversations"]
    total_turns = sum(len(row["messages"]) for row in source.values())
    assert (conversations["in"], conversations["out"]) == (len(source), len(source))
    assert conversations["turns_in"] == conversations["turns_out"] == total_turns
    assistant = sum(1 for row in source.values() for message in row["messages"] if message["role"] == "assistant")
    assert conversations["assistant_turns"]["total"] == assistant
    assert sum(len(call) for call in PROMPTS) == assistant  # one teacher request per assistant turn


def test_the_drop_policy_drops_a_conversation_with_a_rejected_turn_and_keeps_its_turns(teacher, tmp_path):
    config = DistillConfig(
        source=SourceSpec(data=str(CHAT_MESSAGES)), teacher=teacher, engine="scripted-chat", output=str(tmp_path / "d")
    )
    config.filter.on_failure = "drop"
    kept, dropped = outputs(distill(config, show_progress=False))
    assert all(row["reason"] in ("answer_mismatch", "template_leak") for row in dropped.values())
    assert all(row["reason"] == "ok" for row in kept.values()) and kept
    for row in dropped.values():
        assert json.loads(row["conversation"])  # the source turns are kept beside the reason
    stats = json.loads((tmp_path / "d" / "stats.json").read_text())["conversations"]
    assert stats["turns_in"] == stats["turns_out"]


def test_the_rewritten_turn_context_shows_the_teacher_its_own_earlier_turns(teacher, tmp_path):
    run(CHAT_MESSAGES, teacher, tmp_path / "original")
    assert len(PROMPTS) == 5  # one call per shard of 3 conversations: every turn at once
    follow_up = [p for call in PROMPTS for p in call if "final answer, as a single number" in p.rsplit("<user>")[-1]]
    assert follow_up and not any("Rewritten:" in prompt for prompt in follow_up)
    PROMPTS.clear()
    run(CHAT_MESSAGES, teacher, tmp_path / "rewritten", turn_context="rewritten")
    follow_up = [p for call in PROMPTS for p in call if "final answer, as a single number" in p.rsplit("<user>")[-1]]
    assert follow_up and all("Rewritten:" in prompt.rsplit("<user>", 1)[0] for prompt in follow_up)
    assert len(PROMPTS) > 5  # turn by turn, in rounds


THINKING = "<think>The reference answer says 5; maybe 6? No, 5.</think>\nTwo plus three is five. The answer is 5."


@pytest.fixture
def math_row(tmp_path):
    row = {"id": "sum", "instruction": "What is 2 + 3?", "input": "", "output": "2 + 3 = 5.\n#### 5", "task": "math"}
    return write_jsonl(tmp_path / "rows.jsonl", [row])


@pytest.mark.parametrize(
    "mode, response, reasoning",
    [
        ("separate", "Two plus three is five. The answer is 5.", "The reference answer says 5; maybe 6? No, 5."),
        ("strip", "Two plus three is five. The answer is 5.", None),
        ("keep", THINKING, None),
    ],
)
def test_each_reasoning_mode_and_the_filter_judges_the_answer_not_the_thinking(
    mode, response, reasoning, math_row, teacher, tmp_path
):
    SCRIPT["teacher"] = lambda prompt: THINKING
    result = run(math_row, teacher, tmp_path / "out", reasoning=mode)
    [row] = outputs(result)[0].values()
    assert (row["decision"], row["reason"], row["extracted_answer"]) == ("rewrite", "ok", "5")
    assert row["teacher_response"] == response and row["messages"][-1]["content"] == response
    assert row.get("teacher_reasoning") == reasoning
    assert result.stats["config"]["reasoning"] == mode


def test_a_rewrite_that_ends_inside_its_thinking_is_truncated(math_row, teacher, tmp_path):
    SCRIPT["teacher"] = lambda prompt: "<think>Two plus three. Let me count: one, two"
    [row] = outputs(run(math_row, teacher, tmp_path / "out"))[0].values()
    assert (row["decision"], row["reason"]) == ("original", "truncated")
    assert row["teacher_reasoning"] == "Two plus three. Let me count: one, two"


def test_chat_template_switches_reach_the_template_and_the_records(math_row, teacher, tmp_path):
    SCRIPT["teacher"] = lambda prompt: "Adding: 2 + 3 = 5.</think>\nThe answer is 5."  # the prompt opened <think>
    result = run(math_row, teacher, tmp_path / "out", chat_template_kwargs={"enable_thinking": True}, reasoning="keep")
    assert TEMPLATE_SWITCHES and all(switches == {"enable_thinking": True} for switches in TEMPLATE_SWITCHES)
    [row] = outputs(result)[0].values()
    assert row["decision"] == "rewrite"
    assert row["teacher_response"] == "<think>\nAdding: 2 + 3 = 5.</think>\nThe answer is 5."
    assert result.stats["template"]["chat_template_kwargs"] == {"enable_thinking": True}
    assert result.stats["config"]["chat_template_kwargs"] == {"enable_thinking": True}


def test_single_turn_outputs_keep_their_columns(math_row, teacher, tmp_path):
    SCRIPT["teacher"] = lambda prompt: "The answer is 5."
    result = run(math_row, teacher, tmp_path / "out")
    table = pq.read_table(result.output / "distilled.parquet")
    assert not {"turns", "conversation", "teacher_reasoning"} & set(table.column_names)
    assert table.column("messages").to_pylist()[0][0] == {"role": "user", "content": "What is 2 + 3?"}
    assert "conversations" not in result.stats


class StreamingChatEngine(ScriptedChatEngine):
    """The same teacher behind a streaming feed that hands requests back in reverse order."""

    name = "scripted-chat-stream"

    def generate_stream(self, requests):
        while pending := list(requests):
            PROMPTS.append([prompt for _, prompt, _, _ in pending])
            for key, prompt, _, _ in reversed(pending):
                text = SCRIPT["teacher"](prompt)
                yield key, Generation(text, "stop", len(prompt), len(text.split()))


ENGINES.add("scripted-chat-stream", StreamingChatEngine)


def test_a_streaming_engine_and_a_resumed_run_write_the_same_conversations(teacher, tmp_path):
    whole = outputs(run(CHAT_MESSAGES, teacher, tmp_path / "whole"))[0]
    streamed = outputs(run(CHAT_MESSAGES, teacher, tmp_path / "streamed", engine="scripted-chat-stream"))[0]
    assert streamed == whole
    (tmp_path / "whole" / "shards" / "shard-00002.parquet").unlink()  # as if killed before this shard landed
    PROMPTS.clear()
    result = run(CHAT_MESSAGES, teacher, tmp_path / "whole")
    assert outputs(result)[0] == whole
    assert sum(len(call) for call in PROMPTS) == sum(len(row["turns"]) for row in list(whole.values())[6:9])
    assert result.stats["conversations"]["turns_in"] == result.stats["conversations"]["turns_out"]
