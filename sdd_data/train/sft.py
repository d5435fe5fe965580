"""Supervised fine-tuning (TRL's SFTTrainer): the loss is on the assistant's answers only."""

from __future__ import annotations

from typing import Any

from sdd_data.errors import require
from sdd_data.train.chat_loss import sft_rows
from sdd_data.train.method import TrainerInputs, TrainingMethod


class SupervisedFineTuning(TrainingMethod):
    """Next-token loss on the distilled answers; the recipes `trl sft --config` runs."""

    name = "sft"
    help = "supervised fine-tuning on the answers (TRL's SFTTrainer; `trl sft --config` runs the same recipe)"
    trl_command = "sft"

    def config_class(self) -> type:
        """TRL's SFTConfig."""
        return require("trl", "train").SFTConfig

    def build_trainer(self, inputs: TrainerInputs) -> Any:
        """An SFTTrainer on prompt/completion rows, or on whole conversations when the template marks the answers."""
        from trl import SFTTrainer

        tokenizer, args = inputs.tokenizer, inputs.args
        sft = sft_rows(inputs.rows.conversations, tokenizer)
        if sft.training_template is not None:  # several assistant turns: TRL masks all but the assistant's
            tokenizer.chat_template, args.assistant_only_loss = sft.training_template, True
        elif sft.rows_per_turn and inputs.show_progress:
            print(
                f"the chat template of {inputs.model_name} marks no assistant output: each assistant turn of a "
                "multi-turn conversation is trained as its own prompt/completion row"
            )
        return SFTTrainer(
            model=inputs.model,
            args=args,
            train_dataset=sft.dataset,
            processing_class=tokenizer,
            peft_config=inputs.peft_config,
        )


SFT = SupervisedFineTuning()
