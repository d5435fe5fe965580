"""The train stage: recipes parse with TRL's parser, the loss mask covers the answers only, SFT and GKD runs
save a reloadable model with a card, and bad input fails with a clear error."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from data_samples import GSM8K_TRAIN, write_jsonl

from sdd_data.errors import SddError
from sdd_data.train.data import load_training_rows
from sdd_data.train.stage import TrainConfig, prepare_training, train

REPO = Path(__file__).resolve().parent.parent
RECIPES = REPO / "recipes"
TRAINING_RECIPES = sorted(path for path in RECIPES.glob("*/*/*.yaml") if path.parent.parent.name != "accelerate")
SFT_CPU = RECIPES / "smollm2-135m-instruct" / "sft-cpu" / "config.yaml"
GKD_CPU = RECIPES / "smollm2-135m-instruct" / "gkd-cpu" / "config.yaml"
ON_POLICY_CPU = RECIPES / "smollm2-135m-instruct" / "onpolicy-cpu" / "config.yaml"
QUICK = {"logging_steps": 1, "max_length": 128, "per_device_train_batch_size": 2, "gradient_accumulation_steps": 1}
CHAT_ROWS = [
    {
        "messages": [
            {"role": "system", "content": "You answer briefly."},
            {"role": "user", "content": "What is 2 + 3?"},
            {"role": "assistant", "content": "2 + 3 = 5. The answer is 5."},
        ],
        "decision": "rewrite",
    },
    {
        "messages": [{"role": "user", "content": "Name a fruit."}, {"role": "assistant", "content": "An apple."}],
        "decision": "original",
    },
    {
        "messages": [
            {"role": "user", "content": "Name a colour."},
            {"role": "assistant", "content": "Blue is a colour."},
        ],
        "decision": "rewrite",
    },
    {"messages": None, "decision": "dropped"},
    {
        "messages": [{"role": "user", "content": "Say nothing."}, {"role": "assistant", "content": "  "}],
        "decision": "original",
    },
]


@pytest.fixture
def chat_rows(tmp_path: Path) -> str:
    """Distilled rows as JSON lines: a system turn, a dropped row and a row with an empty answer."""
    path = tmp_path / "chat.jsonl"
    write_jsonl(path, CHAT_ROWS)
    return str(path)


@pytest.fixture(scope="module")
def pruned_tiny_llama(tiny_llama_path: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The tiny Llama with block 1 removed, with the prune stage's record of what was removed."""
    from sdd_data.prune import save_pruned_checkpoint

    output = save_pruned_checkpoint(tiny_llama_path, [1], tmp_path_factory.mktemp("pruned") / "student")
    (output / "sdd_data_prune.json").write_text(
        json.dumps({"removed_blocks": [1], "source_model": {"name": "tiny-llama", "revision": None}})
    )
    return str(output)


def _config(recipe: Path, model: str, data: str, output: Path, **options) -> TrainConfig:
    overrides = {**QUICK, **options.pop("overrides", {})}
    return TrainConfig(
        recipe=str(recipe), model=model, data=data, output=str(output), max_steps=2, overrides=overrides, **options
    )


def _trl_args(path: Path) -> list[str]:
    """`--config <recipe>`, plus use_cpu where a bf16 GPU recipe is parsed on a machine without a GPU."""
    import torch

    return ["--config", str(path)] + ([] if torch.cuda.is_available() else ["--use_cpu", "true"])


@pytest.mark.parametrize("path", TRAINING_RECIPES, ids=lambda path: str(path.relative_to(RECIPES)))
def test_every_recipe_parses_with_trls_own_parser(path: Path):
    """Each recipe is read as the method its folder names, and by the `trl` command that runs that method."""
    import importlib

    from trl import TrlParser

    from sdd_data.train.methods import argument_classes
    from sdd_data.train.recipe import parse_recipe

    recipe = parse_recipe(path, {"use_cpu": True})
    assert recipe.method.name == path.parent.name.split("-")[0]
    command = recipe.method.trl_command
    parser = (
        importlib.import_module(f"trl.scripts.{command}").make_parser()  # what `trl <command>` parses with
        if command
        else TrlParser(argument_classes(recipe.method))
    )
    script_args, training_args, model_args, _ = parser.parse_args_and_config(_trl_args(path))
    assert script_args.dataset_name and model_args.model_name_or_path and training_args.output_dir
    assert training_args.learning_rate == recipe.training_args.learning_rate


def test_a_recipe_two_methods_read_alike_needs_method(tmp_path: Path):
    from sdd_data.train.recipe import parse_recipe

    both = tmp_path / "both.yaml"
    both.write_text("model_name_or_path: m\nteacher_model_name_or_path: t\nbeta: 1.0\nuse_cpu: true\noutput_dir: out\n")
    with pytest.raises(SddError, match="read alike by the methods gkd and onpolicy: give --method"):
        parse_recipe(both)
    assert parse_recipe(both, method_name="onpolicy").method.name == "onpolicy"
    with pytest.raises(SddError, match="unknown training method 'dpo'; known training methods: sft, gkd, onpolicy"):
        parse_recipe(both, method_name="dpo")
    with pytest.raises(
        SddError, match=r"unknown key\(s\) lmbda, max_length \(not an option of TRL's .*DistillationConfig"
    ):
        parse_recipe(GKD_CPU, method_name="onpolicy")


@pytest.mark.parametrize("name", ["ddp", "zero3", "fsdp"])
def test_accelerate_configs_load(name: str):
    from accelerate.commands.config.config_args import load_config_from_file

    config = load_config_from_file(str(RECIPES / "accelerate" / f"{name}.yaml"))
    assert config.distributed_type.value == {"ddp": "MULTI_GPU", "zero3": "DEEPSPEED", "fsdp": "FSDP"}[name]


def test_dropped_rows_and_empty_answers_are_left_out(chat_rows: str, distilled: Path):
    rows = load_training_rows(chat_rows)
    assert len(rows.conversations) == 3 and rows.skipped == {"dropped": 1, "empty_answer": 1}
    assert rows.conversations[0][0] == {"role": "system", "content": "You answer briefly."}
    kept = [
        row for row in json.loads((distilled / "stats.json").read_text())["decisions"].items() if row[0] != "dropped"
    ]
    assert len(load_training_rows(str(distilled)).conversations) == sum(count for _, count in kept)


def test_a_published_folder_trains_on_its_train_split(distilled: Path, tmp_path: Path):
    from sdd_data.publish.stage import PublishConfig, publish

    publish(PublishConfig(distilled=str(distilled), output_dir=str(tmp_path / "published"), config_name="math"))
    rows = load_training_rows(str(tmp_path / "published"))
    assert rows.config_name == "math"
    assert len(rows.conversations) == len(load_training_rows(str(distilled)).conversations)


def test_a_selection_folder_trains_on_its_selected_rows(distilled: Path, tmp_path: Path):
    import datasets

    selected = datasets.load_from_disk(str(distilled / "data")).select([0, 1])
    selection = tmp_path / "selected"
    selected.save_to_disk(str(selection / "data"))
    pq.write_table(pa.table({"selected": [True, True]}), selection / "outcome.parquet")
    (selection / "sdd_data.json").write_text(json.dumps({"stage": "select"}))
    rows = load_training_rows(str(selection))
    assert rows.conversations == [list(messages) for messages in selected["messages"]]


def test_labels_cover_exactly_the_answer_and_its_end_of_turn(tiny_llama_path: str, chat_rows: str, tmp_path: Path):
    prepared = prepare_training(_config(SFT_CPU, tiny_llama_path, chat_rows, tmp_path / "out"))
    trainer, tokenizer = prepared.trainer, prepared.trainer.processing_class
    conversations = prepared.rows.conversations
    batch = trainer.data_collator([trainer.train_dataset[index] for index in range(len(conversations))])
    end_of_turn = tokenizer.convert_tokens_to_ids("<|im_end|>")
    for index, messages in enumerate(conversations):
        prompt = tokenizer.apply_chat_template(
            messages[:-1], add_generation_prompt=True, tokenize=True, return_dict=False
        )
        full = tokenizer.apply_chat_template(messages, tokenize=True, return_dict=False)
        ids, labels = batch["input_ids"][index].tolist(), batch["labels"][index].tolist()
        assert ids[: len(full)] == full
        assert labels[: len(prompt)] == [-100] * len(prompt)  # system, user and the assistant header
        assert labels[len(prompt) : len(full)] == full[len(prompt) :]
        assert labels[len(full) :] == [-100] * (len(labels) - len(full))  # padding
        answer = [token for token in labels if token != -100]
        assert tokenizer.decode(answer) == messages[-1]["content"] + "<|im_end|>\n"
        assert end_of_turn in answer


def test_a_card_that_cannot_be_rendered_stops_the_run_before_any_training(
    pruned_tiny_llama: str, distilled: Path, tmp_path: Path, monkeypatch
):
    import trl

    import sdd_data.train.stage as stage

    def broken_card(**values):
        raise SddError("the card template is broken")

    monkeypatch.setattr(stage, "model_card", broken_card)
    monkeypatch.setattr(trl.SFTTrainer, "train", lambda *args, **kwargs: pytest.fail("training started"))
    output = tmp_path / "train" / "recovered"
    with pytest.raises(SddError, match="the card template is broken"):
        train(_config(SFT_CPU, pruned_tiny_llama, str(distilled), output), show_progress=False)
    assert not output.exists()


def test_sft_trains_and_saves_a_reloadable_model_with_a_card(pruned_tiny_llama: str, distilled: Path, tmp_path: Path):
    import torch
    from transformers import AutoModelForCausalLM

    output = tmp_path / "train" / "recovered"
    result = train(_config(SFT_CPU, pruned_tiny_llama, str(distilled), output), show_progress=False)
    assert result.metrics["global_step"] == 2 and len(result.losses) == 2
    assert all(math.isfinite(loss) for loss in result.losses)
    model = AutoModelForCausalLM.from_pretrained(output, use_safetensors=True)
    before = AutoModelForCausalLM.from_pretrained(pruned_tiny_llama, use_safetensors=True)
    assert model.config.num_hidden_layers == 1
    changed = [
        name for name, weight in before.state_dict().items() if not torch.equal(weight, model.state_dict()[name])
    ]
    assert changed, "training changed no weight"
    assert not list(output.glob("*.bin")) and not list(output.glob("*.pt"))
    card = (output / "README.md").read_text()
    assert "base_model: tiny-llama" in card and "Pruning: removed 1 decoder block (0-based: 1)." in card
    assert "| `learning_rate` | 2e-05 |" in card and "| `max_steps` | 2 |" in card and str(tmp_path) not in card
    assert json.loads((output / "sdd_data_prune.json").read_text())["removed_blocks"] == [1]
    assert [path.name for path in output.parent.iterdir()] == ["recovered"]  # no checkpoints or staging left


def test_lora_adapters_are_merged_into_a_plain_checkpoint(tiny_llama_path: str, chat_rows: str, tmp_path: Path):
    import torch
    from transformers import AutoModelForCausalLM

    lora = {
        "use_peft": True,
        "lora_r": 4,
        "lora_alpha": 8,
        "lora_target_modules": ["q_proj", "v_proj"],
        "learning_rate": 1e-2,
    }
    output = tmp_path / "lora"
    train(_config(SFT_CPU, tiny_llama_path, chat_rows, output, overrides=lora), show_progress=False)
    assert not (output / "adapter_config.json").exists()
    trained = AutoModelForCausalLM.from_pretrained(output, use_safetensors=True).state_dict()
    base = AutoModelForCausalLM.from_pretrained(tiny_llama_path, use_safetensors=True).state_dict()
    assert set(trained) == set(base)  # plain Llama tensor names, no lora_A / lora_B
    changed = {name.split(".")[-2] for name in base if not torch.equal(base[name], trained[name])}
    assert changed == {"q_proj", "v_proj"}


def test_gkd_distills_the_teacher_into_a_pruned_student(
    pruned_tiny_llama: str, tiny_llama_path: str, chat_rows: str, tmp_path: Path
):
    from transformers import AutoModelForCausalLM

    output = tmp_path / "gkd"
    result = train(_config(GKD_CPU, pruned_tiny_llama, chat_rows, output, teacher=tiny_llama_path), show_progress=False)
    assert result.method == "gkd" and result.metrics["global_step"] == 2
    assert all(math.isfinite(loss) and loss >= 0 for loss in result.losses)
    assert AutoModelForCausalLM.from_pretrained(output, use_safetensors=True).config.num_hidden_layers == 1
    card = (output / "README.md").read_text()
    assert "| `method` | gkd |" in card and "| `recipe` | smollm2-135m-instruct/gkd-cpu/config.yaml |" in card


ON_POLICY_QUICK = {"max_completion_length": 12, "per_device_train_batch_size": 2, "gradient_accumulation_steps": 1,
                   "logging_steps": 1}  # fmt: skip


def test_onpolicy_trains_the_student_on_its_own_samples_scored_by_the_teacher(
    pruned_tiny_llama: str, tiny_llama_path: str, chat_rows: str, tmp_path: Path
):
    from transformers import AutoModelForCausalLM

    output = tmp_path / "onpolicy"
    config = TrainConfig(recipe=str(ON_POLICY_CPU), model=pruned_tiny_llama, data=chat_rows, output=str(output),
                         teacher=tiny_llama_path, max_steps=2, overrides=ON_POLICY_QUICK)  # fmt: skip
    prepared = prepare_training(config, show_progress=False)
    # Only the prompts reach the trainer: every turn before the answer, never the answer.
    prompts = prepared.trainer.train_dataset["prompt"]
    assert [turns[-1]["role"] for turns in prompts] == ["user", "user", "user"]
    assert [len(turns) for turns in prompts] == [2, 1, 1]
    result = train(config, show_progress=False)
    assert result.method == "onpolicy" and result.metrics["global_step"] == 2
    assert all(math.isfinite(loss) for loss in result.losses)
    student, start = (
        AutoModelForCausalLM.from_pretrained(path, use_safetensors=True) for path in (output, pruned_tiny_llama)
    )
    assert student.config.num_hidden_layers == 1
    changed = [name for name, weight in student.state_dict().items() if not weight.equal(start.state_dict()[name])]
    assert changed  # the student's weights moved
    card = (output / "README.md").read_text()
    assert "| `method` | onpolicy |" in card and "| `beta` | 1.0 |" in card


def _other_tokenizer_model(tiny_llama_path: str, folder: Path) -> str:
    from transformers import AutoTokenizer

    shutil.copytree(tiny_llama_path, folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    tokenizer.add_tokens(["<extra>"])
    tokenizer.save_pretrained(folder)
    return str(folder)


def test_bad_input_fails_clearly(tiny_llama_path: str, chat_rows: str, tmp_path: Path):
    out = tmp_path / "out"
    with pytest.raises(SddError, match="does not exist"):
        train(_config(tmp_path / "missing.yaml", tiny_llama_path, chat_rows, out))
    typo = tmp_path / "typo.yaml"
    typo.write_text(SFT_CPU.read_text() + "learning_rat: 1.0e-4\nlora_rank: 8\n")
    with pytest.raises(SddError, match="unknown key.*learning_rat, lora_rank"):
        train(_config(typo, "meta-llama/not-resolved-before-the-recipe-is-checked", chat_rows, out))
    with pytest.raises(SddError, match="invalid float value: 'fast'"):
        train(_config(SFT_CPU, tiny_llama_path, chat_rows, out, overrides={"learning_rate": "fast"}))
    dropped_only = tmp_path / "dropped.jsonl"
    dropped_only.write_text(json.dumps(CHAT_ROWS[3]) + "\n" + json.dumps(CHAT_ROWS[4]) + "\n")
    with pytest.raises(SddError, match="no usable training rows.*dropped 1.*empty_answer 1"):
        train(_config(SFT_CPU, tiny_llama_path, str(dropped_only), out))
    broken = tmp_path / "broken"
    shutil.copytree(tiny_llama_path, broken)
    (broken / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(SddError, match="cannot load the model in .*broken: "):
        train(_config(SFT_CPU, str(broken), chat_rows, out))
    (broken / "tokenizer.json").unlink()
    (broken / "tokenizer_config.json").write_text("{")
    with pytest.raises(SddError, match="cannot load the tokenizer in .*broken: "):
        train(_config(SFT_CPU, str(broken), chat_rows, out))
    with pytest.raises(SddError, match="model path .*nowhere does not exist"):
        train(_config(SFT_CPU, str(tmp_path / "nowhere"), chat_rows, out))
    with pytest.raises(SddError, match="is for sft, which has no teacher: drop --teacher"):
        train(_config(SFT_CPU, tiny_llama_path, chat_rows, out, teacher=tiny_llama_path))
    assert not out.exists()


def test_gkd_needs_a_teacher_with_the_same_tokenizer(tiny_llama_path: str, chat_rows: str, tmp_path: Path):
    no_teacher = tmp_path / "gkd.yaml"
    no_teacher.write_text(
        "\n".join(
            line for line in GKD_CPU.read_text().splitlines() if not line.startswith("teacher_model_name_or_path")
        )
    )
    with pytest.raises(SddError, match="give --teacher"):
        train(_config(no_teacher, tiny_llama_path, chat_rows, tmp_path / "out"))
    other = _other_tokenizer_model(tiny_llama_path, tmp_path / "other")
    with pytest.raises(
        SddError,
        match="the teacher .* and the student .* must share one tokenizer.*'<extra>' is id 379 only in the teacher",
    ):
        train(_config(GKD_CPU, tiny_llama_path, chat_rows, tmp_path / "out", teacher=other))


def test_gkd_groups_batches_by_length_with_the_rows_token_counts(tiny_llama_path: str, tmp_path: Path):
    from transformers.trainer_pt_utils import LengthGroupedSampler

    from sdd_data.train.data import conversation_lengths

    conversations = [[{"role": "user", "content": "hi " * words}, {"role": "assistant", "content": "ok then"}]
                     for index in range(64) for words in [index % 8 + (30 if index % 2 else 1)]]  # fmt: skip
    data = tmp_path / "rows.jsonl"
    write_jsonl(data, [{"messages": turns} for turns in conversations])
    grouped = {"train_sampling_strategy": "group_by_length", "per_device_train_batch_size": 4}
    config = _config(GKD_CPU, tiny_llama_path, str(data), tmp_path / "out", teacher=tiny_llama_path, overrides=grouped)
    prepared = prepare_training(config, show_progress=False)
    sampler = prepared.trainer._get_train_sampler()
    lengths = conversation_lengths(prepared.trainer.processing_class, conversations)
    assert isinstance(sampler, LengthGroupedSampler) and sampler.lengths == lengths

    def padded_tokens(order: list[int]) -> int:
        return sum(4 * max(lengths[index] for index in order[start : start + 4]) for start in range(0, 64, 4))

    # In the file's order every batch holds short and long rows; grouped, far fewer batches do.
    assert padded_tokens(list(sampler)) < 0.8 * padded_tokens(list(range(64)))
    result = train(config, show_progress=False)
    assert result.method == "gkd" and result.metrics["global_step"] == 2


def test_an_existing_output_is_refused(tiny_llama_path: str, chat_rows: str, tmp_path: Path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    with pytest.raises(SddError, match="already exists"):
        train(_config(SFT_CPU, tiny_llama_path, chat_rows, tmp_path / "out"))
    assert (tmp_path / "out" / "keep.txt").read_text() == "mine"


def _gsm8k_distilled(folder: Path, count: int) -> str:
    """GSM8K training rows in the distilled schema (the reference solution kept as the answer)."""
    from sdd_data.data.records import sft_messages

    lines = GSM8K_TRAIN.read_text().splitlines()[:count]
    rows = [
        {"messages": sft_messages({"instruction": row["question"], "input": ""}, row["answer"]), "decision": "original"}
        for row in map(json.loads, lines)
    ]
    path = folder / "gsm8k-distilled.jsonl"
    write_jsonl(path, rows)
    return str(path)


@pytest.mark.slow
def test_the_smollm2_cpu_recipe_trains(pruned_smollm2_path: str, tmp_path: Path):
    from transformers import AutoModelForCausalLM

    data = _gsm8k_distilled(tmp_path, 24)
    config = TrainConfig(
        recipe=str(SFT_CPU),
        model=pruned_smollm2_path,
        data=data,
        output=str(tmp_path / "out"),
        max_steps=3,
        overrides={"max_length": 192, "per_device_train_batch_size": 1, "gradient_accumulation_steps": 1},
    )
    result = train(config, show_progress=False)
    assert result.metrics["global_step"] == 3 and len(result.losses) == 3
    assert all(math.isfinite(loss) for loss in result.losses)
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "out", use_safetensors=True)
    assert model.config.num_hidden_layers == 26


@pytest.mark.slow
def test_trl_sft_runs_the_cpu_recipe_as_it_is(tiny_llama_path: str, chat_rows: str, tmp_path: Path):
    """`trl sft --config <recipe>` with TRL's own CLI, on prompt/completion rows saved as Parquet."""
    from transformers import AutoTokenizer

    from sdd_data.train.chat_loss import sft_rows

    folder = tmp_path / "dataset"
    folder.mkdir()
    tokenizer = AutoTokenizer.from_pretrained(tiny_llama_path)
    sft_rows(load_training_rows(chat_rows).conversations, tokenizer).dataset.to_parquet(str(folder / "train.parquet"))
    command = [
        str(Path(sys.executable).parent / "trl"),
        "sft",
        "--config",
        str(SFT_CPU),
        "--model_name_or_path",
        tiny_llama_path,
        "--dataset_name",
        str(folder),
        "--max_steps",
        "2",
        "--output_dir",
        str(tmp_path / "trl-out"),
    ]
    finished = subprocess.run(command, check=False, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert finished.returncode == 0, finished.stderr[-3000:]
    assert (tmp_path / "trl-out" / "model.safetensors").is_file()


def _prompt_dataset_folder(conversations: list[list[dict]], folder: Path) -> str:
    """A local dataset of conversational `prompt` rows, the format `trl distillation` reads."""
    from sdd_data.train.onpolicy import prompt_dataset

    folder.mkdir()
    prompt_dataset(conversations).to_json(str(folder / "train.jsonl"))
    return str(folder)


@pytest.mark.slow
def test_the_onpolicy_recipe_runs_with_sdd_data_train_and_with_trl_distillation(
    smollm2_path: str, pruned_smollm2_path: str, tmp_path: Path
):
    """The SmolLM2 on-policy recipe, two steps each: `sdd-data train` on distilled rows, and TRL's own
    `trl distillation --config` on the same rows' prompts."""
    data = _gsm8k_distilled(tmp_path, 8)
    quick = {"max_completion_length": 24, "per_device_train_batch_size": 2, "gradient_accumulation_steps": 1}
    config = TrainConfig(recipe=str(ON_POLICY_CPU), model=pruned_smollm2_path, teacher=smollm2_path, data=data,
                         output=str(tmp_path / "out"), max_steps=2, overrides=quick)  # fmt: skip
    result = train(config, show_progress=False)
    assert result.method == "onpolicy" and result.metrics["global_step"] == 2
    assert all(math.isfinite(loss) for loss in result.losses)

    prompts = _prompt_dataset_folder(load_training_rows(data).conversations, tmp_path / "prompts")
    command = [str(Path(sys.executable).parent / "trl"), "distillation", "--config", str(ON_POLICY_CPU),
               "--model_name_or_path", pruned_smollm2_path, "--teacher_model_name_or_path", smollm2_path,
               "--dataset_name", prompts, "--max_steps", "2", "--output_dir", str(tmp_path / "trl-out"),
               *[item for key, value in quick.items() for item in (f"--{key}", str(value))]]  # fmt: skip
    finished = subprocess.run(command, check=False, capture_output=True, text=True, timeout=900, cwd=tmp_path)
    assert finished.returncode == 0, finished.stderr[-3000:]
    assert (tmp_path / "trl-out" / "model.safetensors").is_file()


def test_conversation_lengths_count_the_rendered_tokens(tiny_llama_path: str):
    from sdd_data.models import load_tokenizer
    from sdd_data.train.data import conversation_lengths

    tokenizer = load_tokenizer(tiny_llama_path)
    conversations = [[{"role": "user", "content": "hi " * words}, {"role": "assistant", "content": "ok"}]
                     for words in (1, 10, 40, 80)]  # fmt: skip
    lengths = [
        len(tokenizer(tokenizer.apply_chat_template(turns, tokenize=False))["input_ids"]) for turns in conversations
    ]
    assert lengths[0] < lengths[1] < lengths[2] < lengths[3]
    assert conversation_lengths(tokenizer, conversations) == lengths


def test_conversations_longer_than_max_length_are_counted(tiny_llama_path: str, tmp_path: Path):
    conversations = [[{"role": "user", "content": "hi " * words}, {"role": "assistant", "content": "ok"}]
                     for words in (1, 10, 40, 80)]  # fmt: skip
    data = tmp_path / "rows.jsonl"
    write_jsonl(data, [{"messages": turns} for turns in conversations])
    prepared = prepare_training(_config(SFT_CPU, tiny_llama_path, str(data), tmp_path / "out"), show_progress=False)
    from sdd_data.train.data import conversation_lengths

    lengths = conversation_lengths(prepared.trainer.processing_class, conversations)
    assert prepared.rows_over_max_length == sum(length > QUICK["max_length"] for length in lengths)
    assert 0 < prepared.rows_over_max_length < len(conversations)


def test_gkd_leaves_out_answers_that_fill_max_length_alone(tiny_llama_path: str):
    from sdd_data.models import load_tokenizer
    from sdd_data.train.data import TrainingRows
    from sdd_data.train.gkd import without_overlong_answers

    tokenizer = load_tokenizer(tiny_llama_path)
    short = [{"role": "user", "content": "Name a fox."}, {"role": "assistant", "content": "A quick fox."}]
    long = [{"role": "user", "content": "Name a fox."}, {"role": "assistant", "content": "the quick brown fox " * 30}]
    rows = TrainingRows([short, long, short], {"dropped": 1}, "rows")
    kept = without_overlong_answers(tokenizer, rows, 40)
    assert kept.conversations == [short, short] and kept.skipped == {"dropped": 1, "answer_fills_max_length": 1}
    assert without_overlong_answers(tokenizer, rows, None) is rows
    with pytest.raises(SddError, match="fills max_length 2 alone"):
        without_overlong_answers(tokenizer, rows, 2)


def test_a_recipe_cannot_turn_on_remote_code_without_the_flag(tiny_llama_path: str, chat_rows: str, tmp_path: Path):
    trusting = {"trust_remote_code": True}
    with pytest.raises(SddError, match="sets trust_remote_code: true.*pass --trust-remote-code"):
        prepare_training(_config(SFT_CPU, tiny_llama_path, chat_rows, tmp_path / "out", overrides=trusting))
    prepared = prepare_training(
        _config(SFT_CPU, tiny_llama_path, chat_rows, tmp_path / "ok", overrides=trusting, trust_remote_code=True),
        show_progress=False,
    )
    assert prepared.recipe.training_args.trust_remote_code
