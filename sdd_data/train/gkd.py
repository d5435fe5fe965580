"""Logit distillation with TRL's GKDTrainer: the student learns the teacher's token distributions on the answers.

With `lmbda: 0` (the recipes here) it is off-policy, supervised KD on the distilled answers; GKD has no `trl`
command, so its recipes run with `sdd-data train` only. TRL keeps GKD in `trl.experimental`; the on-policy
method (`onpolicy`) uses TRL's stable DistillationTrainer.
"""

from __future__ import annotations

import warnings
from dataclasses import replace
from typing import Any

from sdd_data.errors import SddError, require
from sdd_data.train.chat_loss import per_assistant_turn
from sdd_data.train.data import TrainingRows, conversation_lengths
from sdd_data.train.method import TrainerInputs, TrainingMethod


def gkd_classes() -> tuple[type, type]:
    """TRL's GKDConfig and GKDTrainer (in `trl.experimental` since TRL 1.0)."""
    require("trl", "train")
    try:
        with warnings.catch_warnings():  # TRL warns that GKD is experimental
            warnings.simplefilter("ignore")
            from trl.experimental.gkd import GKDConfig, GKDTrainer
    except ImportError:  # TRL before 1.0 exported them at the top level
        from trl import GKDConfig, GKDTrainer
    return GKDConfig, GKDTrainer


def gkd_dataset(conversations: list[list[dict]], lengths: list[int] | None = None, length_column: str = "length"):
    """`messages` rows, the format TRL's GKD collator reads (it masks everything before the last turn).

    With `lengths` (tokens per conversation), a length column lets the trainer group batches by length, which
    it cannot do by itself here because the collator tokenizes each batch."""
    import datasets

    table = {"messages": conversations}
    if lengths is not None:
        table[length_column] = lengths
    return datasets.Dataset.from_dict(table)


def without_overlong_answers(tokenizer: Any, rows: TrainingRows, max_length: int | None) -> TrainingRows:
    """The rows whose answer leaves room for its prompt within max_length: TRL's GKD collator refuses the others
    (SFT truncates them instead); those left out are counted as `answer_fills_max_length`."""
    if not max_length:
        return rows
    kept = []
    for turns in rows.conversations:
        prompt = tokenizer.apply_chat_template(turns[:-1], tokenize=False, add_generation_prompt=True)
        whole = tokenizer.apply_chat_template(turns, tokenize=False)
        answer_tokens = len(tokenizer(whole, add_special_tokens=False)["input_ids"]) - len(
            tokenizer(prompt, add_special_tokens=False)["input_ids"]
        )
        if answer_tokens < max_length:
            kept.append(turns)
    left_out = len(rows.conversations) - len(kept)
    if not kept:
        raise SddError(f"every answer of {rows.name} fills max_length {max_length} alone: raise max_length")
    skipped = {**rows.skipped, "answer_fills_max_length": left_out} if left_out else rows.skipped
    return replace(rows, conversations=kept, skipped=skipped)


class GeneralizedKnowledgeDistillation(TrainingMethod):
    """Token-level KD from the teacher on the distilled answers (each assistant turn trained once)."""

    name = "gkd"
    help = "logit distillation from --teacher on the distilled answers (TRL's experimental GKDTrainer)"
    uses_teacher = True

    def config_class(self) -> type:
        """TRL's GKDConfig."""
        return gkd_classes()[0]

    def usable_rows(self, tokenizer: Any, rows: TrainingRows, args: Any) -> TrainingRows:
        """Rows whose answer alone fills max_length are left out (the collator refuses them)."""
        return without_overlong_answers(tokenizer, rows, args.max_length)

    def build_trainer(self, inputs: TrainerInputs) -> Any:
        """A GKDTrainer on one `messages` row per assistant turn, with token counts when batches group by length."""
        args = inputs.args
        rows = per_assistant_turn(inputs.rows.conversations)
        grouped = str(getattr(args, "train_sampling_strategy", "random")) == "group_by_length"
        args.teacher_model_init_kwargs = None  # the teacher is passed loaded
        return gkd_classes()[1](
            model=inputs.model,
            teacher_model=inputs.teacher,
            args=args,
            train_dataset=gkd_dataset(
                rows, conversation_lengths(inputs.tokenizer, rows) if grouped else None, args.length_column_name
            ),
            processing_class=inputs.tokenizer,
            peft_config=inputs.peft_config,
        )


GKD = GeneralizedKnowledgeDistillation()
