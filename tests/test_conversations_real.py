"""Multi-turn conversations distilled by the real SmolLM2 teacher, then two training steps on them."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from data_samples import CHAT_MESSAGES

from sdd_data.data.sources import SourceSpec
from sdd_data.distill.stage import DistillConfig, distill
from sdd_data.engines.base import DecodingConfig
from sdd_data.train.stage import TrainConfig, train

pytestmark = pytest.mark.slow

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "smollm2-135m-instruct" / "sft-cpu" / "config.yaml"
CONVERSATIONS = 4  # two GSM8K conversations (one with three turns and a system prompt), two more GSM8K ones


def test_smollm2_rewrites_every_turn_and_a_student_trains_on_all_of_them(smollm2_path, tmp_path):
    config = DistillConfig(
        source=SourceSpec(data=str(CHAT_MESSAGES), limit=CONVERSATIONS),
        teacher=smollm2_path,
        output=str(tmp_path / "run"),
        decoding=DecodingConfig(max_new_tokens=96),
    )
    result = distill(config, show_progress=False)
    source = [json.loads(line) for line in CHAT_MESSAGES.read_text().splitlines()][:CONVERSATIONS]
    counts = result.stats["conversations"]
    assert counts["turns_in"] == counts["turns_out"] == sum(len(row["messages"]) for row in source)
    rows = {row["id"]: row for row in pq.read_table(result.output / "distilled.parquet").to_pylist()}
    assert set(rows) == {row["id"] for row in source}
    generated = 0
    for raw in source:
        row = rows[raw["id"]]
        assert [m["role"] for m in row["messages"]] == [m["role"] for m in raw["messages"]]
        for record in row["turns"]:
            assert record["response"] == raw["messages"][record["turn"]]["content"]
            assert record["teacher_tokens"] > 0 and record["teacher_response"] is not None
            generated += 1
            kept = row["messages"][record["turn"]]["content"]
            assert kept == (record["teacher_response"] if record["decision"] == "rewrite" else record["response"])
    assert (
        generated
        == counts["assistant_turns"]["total"]
        == sum(message["role"] == "assistant" for row in source for message in row["messages"])
    )

    trained = train(
        TrainConfig(
            recipe=str(RECIPE),
            model=smollm2_path,
            data=str(result.output),
            output=str(tmp_path / "student"),
            max_steps=2,
            overrides={"max_length": 512},
        ),
        show_progress=False,
    )
    assert trained.metrics["global_step"] == 2
