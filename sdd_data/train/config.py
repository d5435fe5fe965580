"""The train stage's options: one dataclass, from which its CLI flags and YAML keys are made."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class TrainConfig:
    """Everything the train stage needs; every field is also a CLI flag and a YAML key."""

    recipe: str
    """TRL recipe (YAML), e.g. recipes/smollm2-135m-instruct/sft-cpu/config.yaml: the file `trl sft --config` reads."""
    data: str
    """Distilled data: a distill run folder, a `sdd-data select` output folder, a published folder, a saved dataset
    or any source `sdd-data distill` reads; rows the filter dropped are left out."""
    model: str | None = None
    """Model to fine-tune, overriding the recipe's model_name_or_path: a pruned checkpoint folder, `smollm2` or a
    Hub id."""
    output: str | None = None
    """Folder for the fine-tuned model; default: the recipe's output_dir. It must not exist yet, or be empty."""
    teacher: str | None = None
    """For a method with a teacher (gkd, onpolicy): the unpruned model whose token distributions the student
    learns (overrides the recipe's teacher_model_name_or_path); it must share the student's tokenizer."""
    method: str | None = None
    """Training method of the recipe; default: the one whose TRL arguments class reads every
    key the recipe sets. Needed only for a recipe two methods read alike."""
    max_steps: int | None = None
    """Stop after this many optimizer steps (overrides the recipe's max_steps), for quick runs."""
    overrides: dict = field(default_factory=dict)
    """Other recipe keys to override, e.g. learning_rate=5e-5,num_train_epochs=1."""
    data_split: str = "train"
    """Split to train on, for data with several splits."""
    data_config: str | None = None
    """Config to train on, for a published folder holding several."""
    trust_remote_code: bool = False
    """Run code shipped with the model (only for models you trust); a recipe setting trust_remote_code needs it too."""
