"""A multi-turn `messages` file and a ShareGPT file through distill -> select -> publish -> train -> inspect, with
every turn accounted for at each step (the scripted chat teacher, the tiny Llama as both models)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import datasets
import pyarrow.parquet as pq
import pytest
import test_conversations
from data_samples import CHAT_MESSAGES, CHAT_SHAREGPT

from sdd_data.data.sources import SourceSpec
from sdd_data.distill.stage import DistillConfig, distill
from sdd_data.inspect.config import InspectConfig
from sdd_data.inspect.stage import inspect_output
from sdd_data.publish.config import PublishConfig
from sdd_data.publish.stage import publish
from sdd_data.select.selection import SelectConfig
from sdd_data.select.stage import SelectStageConfig, select
from sdd_data.train.chat_loss import SMOLLM2_SYSTEM, chatml_template
from sdd_data.train.stage import TrainConfig, train

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "smollm2-135m-instruct" / "sft-cpu" / "config.yaml"
assert test_conversations.ScriptedChatEngine  # registers the scripted chat teacher


@pytest.fixture(scope="module")
def models(tiny_llama_path: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """The tiny Llama with SmolLM2's chat template, and a copy with scaled weights (the 'pruned' model)."""
    import torch
    import transformers

    folder = tmp_path_factory.mktemp("chat-models")
    original, pruned = folder / "original", folder / "pruned"
    shutil.copytree(tiny_llama_path, original)
    tokenizer = transformers.AutoTokenizer.from_pretrained(original)
    tokenizer.chat_template = chatml_template(SMOLLM2_SYSTEM)
    tokenizer.save_pretrained(original)
    model = transformers.AutoModelForCausalLM.from_pretrained(original)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.mul_(1.3)
    model.save_pretrained(pruned, safe_serialization=True)
    tokenizer.save_pretrained(pruned)
    return str(original), str(pruned)


@pytest.mark.parametrize("data", [CHAT_MESSAGES, CHAT_SHAREGPT], ids=["messages", "sharegpt"])
def test_every_turn_is_accounted_for_from_distill_to_inspect(data: Path, models, tmp_path: Path):
    source = [json.loads(line) for line in data.read_text().splitlines()]
    turns_of = {row["id"]: len(row.get("messages") or row.get("conversations")) for row in source}
    original, pruned = models

    teacher = tmp_path / "teacher"
    teacher.mkdir()
    (teacher / "config.json").write_text("{}")
    run = distill(
        DistillConfig(
            source=SourceSpec(data=str(data)), teacher=str(teacher), engine="scripted-chat", output=str(tmp_path / "d")
        ),
        show_progress=False,
    )
    counts = run.stats["conversations"]
    assert counts["turns_in"] == counts["turns_out"] == sum(turns_of.values())

    selection = select(
        SelectStageConfig(
            source=SourceSpec(data=str(run.output)),
            original_model=original,
            pruned_model=pruned,
            output=str(tmp_path / "s"),
            cache_dir=str(tmp_path / "cache"),
            max_length=256,
            selection=SelectConfig(budget="7"),
        ),
        show_progress=False,
    )
    assert selection.provenance["counts"]["conversations"] == len(source)
    assert selection.provenance["counts"]["assistant_turns"] == counts["assistant_turns"]["total"]
    selected = datasets.load_from_disk(str(selection.output / "data"))
    assert len(selected) == 7
    for identifier, messages in zip(selected["id"], selected["messages"]):
        assert len(messages) == turns_of[identifier]  # whole conversations are selected
    report = json.loads((selection.output / "report.json").read_text())["turns"]
    assert report["selected"]["conversations"] == 7
    assert report["selected"]["assistant_turns"] == sum(
        sum(message["role"] == "assistant" for message in messages) for messages in selected["messages"]
    )
    outcome = pq.read_table(selection.output / "outcome.parquet")
    assert sorted(outcome.column("id").to_pylist()) == sorted(turns_of)

    published = tmp_path / "p"
    publish(PublishConfig(distilled=str(selection.output), output_dir=str(published), config_name="chat"))
    card = (published / "README.md").read_text()
    assert f"{counts['turns_in']} turns in, {counts['turns_out']} turns out" in card
    assert "assistant turn decision" in card
    train_split = datasets.load_dataset(str(published), "chat", split="train")
    assert sorted(train_split["id"]) == sorted(selected["id"])
    assert all(len(messages) == turns_of[i] for i, messages in zip(train_split["id"], train_split["messages"]))

    trained = train(
        TrainConfig(
            recipe=str(RECIPE),
            model=original,
            data=str(published),
            data_config="chat",
            output=str(tmp_path / "t"),
            max_steps=2,
            overrides={"max_length": 512},
        ),
        show_progress=False,
    )
    assert trained.metrics["global_step"] == 2

    page = inspect_output(InspectConfig(path=str(run.output)), show_progress=False)
    listed = page.view.rows["columns"]["id"]
    assistant_turns = counts["assistant_turns"]["total"]
    assert len(listed) == assistant_turns  # one entry per assistant turn, each beside its original
    assert all(" · turn " in identifier for identifier in listed)
    assert "Conversations and turns" in page.path.read_text()
