"""The train stage: fine-tune a (pruned) model on a distilled dataset with a TRL recipe of a registered method.

`sdd-data train` runs the same recipe files as `trl sft --config`, and adds what TRL's CLI lacks here:
a local distilled dataset (dropped rows left out, loss on the answers only), a pruned model folder or
the `smollm2` short name, a logit-distillation teacher check, and a model card. The final model is
saved as a plain safetensors checkpoint (LoRA adapters merged in) with its tokenizer, written to a
temporary folder beside `output` and renamed into place when whole. A run that stopped after the recipe saved
a checkpoint (`save_strategy`) resumes from its last checkpoint when run again with the same recipe and data.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sdd_data import __version__
from sdd_data.artifacts import CARD_FILE, PRUNE_RECORD, TRAIN_RECORD
from sdd_data.cards import model_card
from sdd_data.config import config_hash
from sdd_data.errors import SddError, first_line, require
from sdd_data.hub import public_name
from sdd_data.models import check_same_tokenizer, load_causal_lm, load_tokenizer, resolve_model
from sdd_data.output_folder import check_output_free
from sdd_data.train.config import TrainConfig
from sdd_data.train.data import TrainingRows, conversation_lengths, load_training_rows
from sdd_data.train.method import TrainerInputs, TrainingMethod
from sdd_data.train.methods import recipe_method
from sdd_data.train.recipe import Recipe, parse_recipe, read_recipe_values

# Recipe keys that name local things: the card shows them by public name, or not at all.
LOCAL_KEYS = ("model_name_or_path", "teacher_model_name_or_path", "dataset_name", "output_dir")
# Written into the checkpoints folder: which recipe and data its checkpoints belong to.
RUN_IDENTITY_FILE = "sdd_data_train_run.json"
STAGING_MARK = ".sdd_data_train_partial"
"""Inside the staging folder while the model is written: the mark that lets a later run clear it."""
TRAINER_STATE_FILE = "trainer_state.json"


@dataclass
class TrainResult:
    """Where the model went, what it was trained on and how the loss went."""

    output: Path
    method: str
    rows: int
    metrics: dict
    """Trainer metrics: train_loss, train_runtime, global_step…"""
    losses: list[float]
    """Every logged training loss, in order (one per `logging_steps`)."""


@dataclass
class PreparedTraining:
    """A trainer ready to run, with what it was built from."""

    trainer: Any
    recipe: Recipe
    rows: TrainingRows
    model_name: str
    teacher_name: str | None
    model_path: str
    output: Path
    checkpoints: Path
    rows_over_max_length: int = 0
    """Conversations longer than the recipe's max_length in tokens: TRL truncates them."""
    chat_template: str | None = None
    """The model's own chat template, saved with the trained model (training may use a marked copy)."""


def load_model(path: str, model_args: Any, trust_remote_code: bool) -> Any:
    """The model to train (or the teacher), in the recipe's dtype and attention implementation."""
    if model_args.load_in_4bit or model_args.load_in_8bit:
        raise SddError("4-bit and 8-bit loading are not supported by sdd-data train; run the recipe with `trl sft`")
    return load_causal_lm(
        path,
        dtype=model_args.dtype or "auto",
        trust_remote_code=trust_remote_code,
        attn_implementation=model_args.attn_implementation,
    )


def _resolve(name: str, revision: str | None, role: str) -> tuple[str, str]:
    """Local path and display name of a model (or teacher) given by short name, folder or Hub id."""
    try:
        resolved = resolve_model(name, revision=revision)
    except SddError as error:
        raise SddError(f"{role}: {error}" if role != "model" else str(error)) from None
    return resolved.path, resolved.name


def _staging_paths(config: TrainConfig, recipe_values: dict) -> tuple[Path, Path]:
    """The output folder (named by check_options' rule: --output, else the recipe's output_dir) and the folder
    of its checkpoints, each checked to be free or ours."""
    output = Path(config.output or recipe_values["output_dir"])
    check_output_free(output)
    checkpoints = output.parent / f"{output.name}.checkpoints"
    for folder, mark in ((checkpoints, RUN_IDENTITY_FILE), (_staging_folder(output), STAGING_MARK)):
        if folder.exists() and not _is_ours(folder, mark):
            raise SddError(
                f"{folder} holds files sdd-data train did not write; move them away or choose another --output"
            )
    return output, checkpoints


def _staging_folder(output: Path) -> Path:
    """Where the model is written before it becomes `output` (the same name on every process)."""
    return output.parent / f".{output.name}.partial"


def _is_ours(folder: Path, mark: str) -> bool:
    """Whether a folder carries this stage's mark (or is empty), so it may be deleted."""
    return folder.is_dir() and ((folder / mark).is_file() or not any(folder.iterdir()))


def check_options(config: TrainConfig) -> tuple[dict, TrainingMethod]:
    """The recipe's values (with the overrides) and method, once the recipe and the options that go with it are
    known to make a run; before any model loads (`sdd-data run` calls it for every step)."""
    file_values = {**read_recipe_values(config.recipe), **config.overrides}
    method = recipe_method(config.recipe, file_values, config.method)
    if not (config.model or file_values.get("model_name_or_path")):
        raise SddError("give --model (or model_name_or_path in the recipe): the model to fine-tune")
    if method.uses_teacher and not (config.teacher or file_values.get("teacher_model_name_or_path")):
        raise SddError(
            f"recipe {config.recipe} ({method.name}) learns from a teacher: give --teacher (the unpruned model)"
        )
    if not method.uses_teacher and config.teacher:
        raise SddError(f"recipe {config.recipe} is for {method.name}, which has no teacher: drop --teacher")
    if not (config.output or file_values.get("output_dir")):
        raise SddError("give --output (or output_dir in the recipe): where the fine-tuned model goes")
    return file_values, method


def prepare_training(config: TrainConfig, show_progress: bool = True) -> PreparedTraining:
    """Read the recipe and the data, load the model (and teacher), and build the method's TRL trainer."""
    require("trl", "train")
    from trl import get_peft_config

    file_values, method = check_options(config)
    model_text = config.model or file_values.get("model_name_or_path")
    model_path, model_name = _resolve(model_text, file_values.get("model_revision"), "model")
    teacher_path = teacher_name = None
    if method.uses_teacher:
        teacher_text = config.teacher or file_values.get("teacher_model_name_or_path")
        teacher_path, teacher_name = _resolve(teacher_text, file_values.get("teacher_model_revision"), "teacher")
    output, checkpoints = _staging_paths(config, file_values)

    applied = {**config.overrides, "model_name_or_path": model_path, "output_dir": str(checkpoints)}
    if config.max_steps is not None:
        applied["max_steps"] = config.max_steps
    if teacher_path:
        applied["teacher_model_name_or_path"] = teacher_path
    if not show_progress:
        applied["disable_tqdm"] = True
    recipe = parse_recipe(config.recipe, applied, method.name)
    args = recipe.training_args
    if args.eval_strategy != "no":
        raise SddError("sdd-data train trains on the whole distilled set and has no eval split: set eval_strategy: no")
    rows = load_training_rows(config.data, config.data_split, config.data_config)

    if args.trust_remote_code and not config.trust_remote_code:
        raise SddError(
            f"recipe {config.recipe} sets trust_remote_code: true, which runs code from the model's "
            "repository; pass --trust-remote-code to allow it"
        )
    trust = config.trust_remote_code
    tokenizer = load_tokenizer(model_path, trust_remote_code=trust, chat_template=True)
    own_template = tokenizer.chat_template
    if teacher_path:
        # Distillation compares distributions token by token: the vocabularies must be identical.
        check_same_tokenizer(
            load_tokenizer(teacher_path, trust_remote_code=trust),
            tokenizer,
            f"the teacher {teacher_name}",
            f"the student {model_name}",
            chat_template=False,
        )
    rows = method.usable_rows(tokenizer, rows, args)
    lengths = conversation_lengths(tokenizer, rows.conversations)
    model = load_model(model_path, recipe.model_args, trust)
    teacher = load_model(teacher_path, recipe.model_args, trust) if teacher_path else None
    peft_config = get_peft_config(recipe.model_args)
    inputs = TrainerInputs(model, teacher, args, rows, tokenizer, peft_config, model_name, show_progress)
    try:
        trainer = method.build_trainer(inputs)
    except ValueError as error:
        raise SddError(f"TRL refused the recipe {config.recipe}: {first_line(error)}") from None
    max_length = getattr(args, "max_length", None)
    over = sum(length > max_length for length in lengths) if max_length else 0
    if over and show_progress:
        print(
            f"{over} of {len(rows.conversations)} conversations are longer than max_length {max_length} "
            "tokens: TRL truncates them"
        )
    return PreparedTraining(
        trainer, recipe, rows, model_name, teacher_name, model_path, output, checkpoints, over, own_template
    )


def _prune_record(model_path: str) -> dict:
    path = Path(model_path) / PRUNE_RECORD
    if not path.is_file():
        return {}
    try:
        record = json.loads(path.read_text())
    except json.JSONDecodeError:
        raise SddError(f"{path} is not valid JSON") from None
    return record if isinstance(record, dict) else {}


def card_recipe(prepared: PreparedTraining) -> dict:
    """The recipe values for the model card, local paths replaced by public names."""
    values = {key: value for key, value in prepared.recipe.values.items() if key not in LOCAL_KEYS + ("env",)}
    values = {
        "method": prepared.recipe.method.name,
        "recipe": "/".join(prepared.recipe.path.parts[-3:]),
        **values,
        "model_name_or_path": public_name(prepared.model_name),
        "dataset": prepared.rows.name,
    }
    if prepared.teacher_name:
        values["teacher_model_name_or_path"] = public_name(prepared.teacher_name)
    return values


def run_identity(prepared: PreparedTraining) -> str:
    """What a checkpoint must have been trained with to be resumed: the recipe values and the rows."""
    values = {key: value for key, value in prepared.recipe.values.items() if key != "disable_tqdm"}
    return config_hash({"recipe": values, "rows": prepared.rows.conversations})


def resume_point(prepared: PreparedTraining, show_progress: bool) -> str | None:
    """The last checkpoint of an earlier run of this same training, if it left one; else None.

    Checkpoints made with another recipe or other data are removed, so that they are never mixed in."""
    accelerator = prepared.trainer.accelerator
    folder, identity = prepared.checkpoints, run_identity(prepared)
    record = folder / RUN_IDENTITY_FILE
    last = last_complete_checkpoint(folder)
    same_run = record.is_file() and _read_identity(record) == identity
    if last and not same_run:
        if show_progress and accelerator.is_main_process:
            print(f"the checkpoints in {folder} come from other settings or data: training starts over")
        last = None
    accelerator.wait_for_everyone()  # every process has looked before the main process clears the folder
    if accelerator.is_main_process and not same_run:
        if folder.exists() and not _is_ours(folder, RUN_IDENTITY_FILE):  # checked at the start; never delete theirs
            raise SddError(f"{folder} holds files sdd-data train did not write; move them away")
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        record.write_text(json.dumps({"identity": identity}) + "\n")
    accelerator.wait_for_everyone()
    if last and show_progress and accelerator.is_main_process:
        print(f"resuming from {Path(last).name} in {folder}")
    return last


def last_complete_checkpoint(folder: Path) -> str | None:
    """The newest `checkpoint-<step>` folder that was saved to the end (the trainer writes its state file last)."""
    if not folder.is_dir():
        return None
    steps = {}
    for path in folder.glob("checkpoint-*"):
        step = path.name.removeprefix("checkpoint-")
        if step.isdigit() and (path / TRAINER_STATE_FILE).is_file():
            steps[int(step)] = path
    return str(steps[max(steps)]) if steps else None


def _read_identity(path: Path) -> str | None:
    try:
        return json.loads(path.read_text()).get("identity")
    except (json.JSONDecodeError, AttributeError, OSError):
        return None


def _write_model(prepared: PreparedTraining, staging: Path) -> None:
    """Save the trained weights (LoRA merged in) as safetensors with the tokenizer; collective on every rank."""
    trainer = prepared.trainer
    accelerator = trainer.accelerator
    model = accelerator.unwrap_model(trainer.model)
    if hasattr(model, "merge_and_unload"):  # a PEFT model: fold the adapters into the base weights
        model = model.merge_and_unload()
        state_dict = model.state_dict()
    else:
        state_dict = accelerator.get_state_dict(trainer.model)  # gathers ZeRO-3 / FSDP shards
    if accelerator.is_main_process:
        model.config.use_cache = True  # training turns the KV cache off; the saved model generates
        model.save_pretrained(staging, state_dict=state_dict, safe_serialization=True)
        tokenizer = trainer.processing_class
        tokenizer.chat_template = prepared.chat_template or tokenizer.chat_template  # the model's own, unmarked
        tokenizer.save_pretrained(staging)


def _model_card_text(prepared: PreparedTraining) -> str:
    """The trained model's card; rendered before training, so that a card problem never costs a training run."""
    prune = _prune_record(prepared.model_path)
    # A pruned start names the model it was cut from; otherwise the start is the base.
    base_model = public_name(str((prune.get("source_model") or {}).get("name") or prepared.model_name))
    return model_card(
        model_name=prepared.output.name,
        base_model=base_model,
        pruning=prune or None,
        dataset=prepared.rows.name,
        dataset_config=prepared.rows.config_name,
        recipe=card_recipe(prepared),
        evaluation=[],
    )


def _write_side_files(prepared: PreparedTraining, staging: Path, result: dict, card: str) -> None:
    if (Path(prepared.model_path) / PRUNE_RECORD).is_file():
        shutil.copy2(Path(prepared.model_path) / PRUNE_RECORD, staging / PRUNE_RECORD)
    recipe = card_recipe(prepared)
    (staging / CARD_FILE).write_text(card)
    record = {
        "recipe": recipe,
        "rows": len(prepared.rows.conversations),
        "skipped_rows": prepared.rows.skipped,
        "rows_over_max_length": prepared.rows_over_max_length,
        "metrics": result,
        "sdd_data_version": __version__,
    }
    (staging / TRAIN_RECORD).write_text(json.dumps(record, indent=2, default=str) + "\n")


def train(config: TrainConfig, show_progress: bool = True) -> TrainResult:
    """Fine-tune the model on the distilled data with the recipe; save the model, its tokenizer and a card."""
    prepared = prepare_training(config, show_progress)
    trainer, output = prepared.trainer, prepared.output
    card = _model_card_text(prepared)
    resume = resume_point(prepared, show_progress)
    started = time.perf_counter()
    try:
        metrics = dict(trainer.train(resume_from_checkpoint=resume).metrics)
    except ValueError as error:  # TRL refuses data it cannot batch (a row too long for max_length, say)
        raise SddError(f"training stopped: {first_line(error)}") from None
    metrics["global_step"] = trainer.state.global_step
    if resume:
        metrics["resumed_from_step"] = int(Path(resume).name.rpartition("-")[2])
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    if losses and not all(math.isfinite(loss) for loss in losses):
        raise SddError(f"the training loss became {losses[-1]} (try a lower learning_rate or bf16 instead of fp16)")

    # Every process writes its part of the model into the same folder: its name must not depend on the process.
    staging = _staging_folder(output)
    accelerator = trainer.accelerator
    if accelerator.is_main_process:
        if staging.exists() and _is_ours(staging, STAGING_MARK):
            shutil.rmtree(staging)
        staging.mkdir(parents=True)
        (staging / STAGING_MARK).touch()
    accelerator.wait_for_everyone()
    try:
        _write_model(prepared, staging)
        if accelerator.is_main_process:
            _write_side_files(prepared, staging, metrics, card)
            if output.exists():
                output.rmdir()
            (staging / STAGING_MARK).unlink()
            staging.rename(output)
            shutil.rmtree(prepared.checkpoints, ignore_errors=True)
    finally:
        if accelerator.is_main_process and staging.exists() and _is_ours(staging, STAGING_MARK):
            shutil.rmtree(staging)
    accelerator.wait_for_everyone()
    if show_progress and accelerator.is_main_process:
        first, last = (f"{losses[0]:.4f}", f"{losses[-1]:.4f}") if losses else ("-", "-")
        print(
            f"trained {prepared.recipe.method.name} for {metrics['global_step']} steps on "
            f"{len(prepared.rows.conversations)} rows in {time.perf_counter() - started:.0f}s "
            f"(loss {first} -> {last}); model saved to {output}"
        )
    return TrainResult(output, prepared.recipe.method.name, len(prepared.rows.conversations), metrics, losses)
