"""On-policy distillation with TRL's DistillationTrainer: the student writes its own answers to the training
prompts and the teacher scores every token of them (`beta: 1` is the reverse KL, as in GKD with `lmbda: 1`).

The distilled answers are not trained on: only the prompts before each assistant turn are used, so the same
distilled set feeds an SFT phase and an on-policy phase. `trl distillation --config` runs the same recipes.
"""

from __future__ import annotations

from typing import Any

from sdd_data.errors import require
from sdd_data.train.chat_loss import per_assistant_turn
from sdd_data.train.method import TrainerInputs, TrainingMethod


def prompt_dataset(conversations: list[list[dict]]):
    """One conversational `prompt` row per assistant turn: every turn before it (TRL's prompt-only format)."""
    import datasets

    return datasets.Dataset.from_dict({"prompt": [turns[:-1] for turns in per_assistant_turn(conversations)]})


class OnPolicyDistillation(TrainingMethod):
    """The student samples, the teacher scores each sampled token; the loss is a divergence between the two."""

    name = "onpolicy"
    help = (
        "on-policy distillation from --teacher: the student answers the prompts and learns the teacher's "
        "distributions on its own tokens (TRL's DistillationTrainer; `trl distillation --config` runs the same recipe)"
    )
    uses_teacher = True
    trl_command = "distillation"

    def config_class(self) -> type:
        """TRL's DistillationConfig."""
        return require("trl", "train").DistillationConfig

    def build_trainer(self, inputs: TrainerInputs) -> Any:
        """A DistillationTrainer on the prompts of the rows, with the teacher passed loaded."""
        from trl import DistillationTrainer

        inputs.args.teacher_model_init_kwargs = None  # the teacher is passed loaded
        return DistillationTrainer(
            model=inputs.model,
            teacher_model=inputs.teacher,
            args=inputs.args,
            train_dataset=prompt_dataset(inputs.rows.conversations),
            processing_class=inputs.tokenizer,
            peft_config=inputs.peft_config,
        )


ON_POLICY = OnPolicyDistillation()
