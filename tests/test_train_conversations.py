"""Training on multi-turn conversations: the loss covers every assistant turn and nothing else."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from data_samples import write_jsonl

from sdd_data.train.chat_loss import SMOLLM2_SYSTEM, chatml_template
from sdd_data.train.stage import TrainConfig, prepare_training

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "smollm2-135m-instruct" / "sft-cpu" / "config.yaml"
THREE_TURNS = [
    {"role": "system", "content": "You are a patient math tutor."},
    {"role": "user", "content": "What is 2 + 3?"},
    {"role": "assistant", "content": "2 + 3 = 5. The answer is 5."},
    {"role": "user", "content": "And doubled?"},
    {"role": "assistant", "content": "Doubled, 5 becomes 10."},
    {"role": "user", "content": "Thanks. Is 10 even?"},
    {"role": "assistant", "content": "Yes, 10 is even."},
]
ONE_ANSWER = [{"role": "user", "content": "Name a colour."}, {"role": "assistant", "content": "Blue."}]


@pytest.fixture
def conversations(tmp_path: Path) -> str:
    rows = [{"id": "three", "messages": THREE_TURNS}, {"id": "one", "messages": ONE_ANSWER}]
    return str(write_jsonl(tmp_path / "chat.jsonl", rows))


def _with_template(model: str, template: str, folder: Path) -> str:
    """A copy of a model folder whose tokenizer uses `template`."""
    from transformers import AutoTokenizer

    shutil.copytree(model, folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    tokenizer.chat_template = template
    tokenizer.save_pretrained(folder)
    return str(folder)


def _labelled_text(tokenizer, batch, index: int) -> list[str]:
    """The runs of labelled tokens of one collated row, each decoded."""
    runs, current = [], []
    for token, label in zip(batch["input_ids"][index].tolist(), batch["labels"][index].tolist()):
        if label != -100:
            assert label == token
            current.append(token)
        elif current:
            runs.append(tokenizer.decode(current))
            current = []
    if current:
        runs.append(tokenizer.decode(current))
    return runs


def _prepare(model: str, data: str, output: Path):
    config = TrainConfig(recipe=str(RECIPE), model=model, data=data, output=str(output), overrides={"max_length": 512})
    return prepare_training(config, show_progress=False)


def test_a_marked_chat_template_trains_exactly_every_assistant_turn(
    tiny_llama_path: str, conversations: str, tmp_path: Path
):
    """With SmolLM2's chat template, the rows stay whole and TRL's assistant-only loss masks the rest."""
    model = _with_template(tiny_llama_path, chatml_template(SMOLLM2_SYSTEM), tmp_path / "model")
    prepared = _prepare(model, conversations, tmp_path / "out")
    trainer = prepared.trainer
    assert trainer.args.assistant_only_loss and len(trainer.train_dataset) == 2
    batch = trainer.data_collator([trainer.train_dataset[index] for index in range(2)])
    tokenizer = trainer.processing_class
    for index, turns in enumerate(prepared.rows.conversations):
        expected = [turn["content"] + "<|im_end|>\n" for turn in turns if turn["role"] == "assistant"]
        assert _labelled_text(tokenizer, batch, index) == expected
    assert prepared.chat_template == chatml_template(SMOLLM2_SYSTEM)  # what the trained model is saved with


def test_an_unmarked_chat_template_trains_each_assistant_turn_once_as_its_own_row(
    tiny_llama_path: str, conversations: str, tmp_path: Path
):
    """With a chat template nothing can mark, each assistant turn is the completion of one row."""
    prepared = _prepare(tiny_llama_path, conversations, tmp_path / "out")
    trainer = prepared.trainer
    assert not trainer.args.assistant_only_loss
    rows = [trainer.train_dataset[index] for index in range(len(trainer.train_dataset))]
    batch = trainer.data_collator(rows)
    labelled = [_labelled_text(trainer.processing_class, batch, index) for index in range(len(rows))]
    expected = [turn["content"] + "<|im_end|>\n" for turns in (THREE_TURNS, ONE_ANSWER) for turn in turns]
    assert sorted(run for runs in labelled for run in runs) == sorted(
        text for text, turn in zip(expected, THREE_TURNS + ONE_ANSWER) if turn["role"] == "assistant"
    )
    assert all(len(runs) == 1 for runs in labelled)


def test_a_sharegpt_source_trains_on_its_whole_conversations(tmp_path: Path):
    from data_samples import CHAT_SHAREGPT

    from sdd_data.train.data import load_training_rows

    rows = load_training_rows(str(CHAT_SHAREGPT))
    source = [json.loads(line) for line in CHAT_SHAREGPT.read_text().splitlines()]
    assert [len(turns) for turns in rows.conversations] == [len(row["conversations"]) for row in source]
    assert rows.conversations[0][0] == {"role": "system", "content": source[0]["conversations"][0]["value"]}
