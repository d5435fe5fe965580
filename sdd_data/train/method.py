"""What a training method is: one object that names TRL's argument class and trainer for a recipe.

A recipe is read with the method's training-arguments class (`SFTConfig`, `GKDConfig`, `DistillationConfig`…),
so TRL itself checks every key. The train stage resolves the model, the teacher (for a method that has one)
and the rows; the method turns them into TRL's trainer, shaping the rows the way its trainer reads them.
A method module imports TRL inside its functions, so listing the methods (the CLI help) stays light.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from sdd_data.train.data import TrainingRows


@dataclass
class TrainerInputs:
    """What a method builds its trainer from: everything loaded and checked by the stage."""

    model: Any
    teacher: Any | None
    """The unpruned teacher, loaded, for a method with `uses_teacher`; else None."""
    args: Any
    """The recipe's training arguments (an instance of the method's `config_class()`)."""
    rows: TrainingRows
    tokenizer: Any
    peft_config: Any | None
    model_name: str
    show_progress: bool


class TrainingMethod(ABC):
    """A registered way to train; `name` is what the card and `--method` say and `help` its one line."""

    name: ClassVar[str]
    help: ClassVar[str]
    uses_teacher: ClassVar[bool] = False
    """Whether the method learns from a teacher model (`--teacher`, `teacher_model_name_or_path`)."""
    trl_command: ClassVar[str | None] = None
    """The `trl` command that runs this method's recipes as they are (`trl <command> --config`), if any."""

    @abstractmethod
    def config_class(self) -> type:
        """TRL's training-arguments class that reads this method's recipes."""

    @abstractmethod
    def build_trainer(self, inputs: TrainerInputs) -> Any:
        """TRL's trainer for these inputs (a ValueError from TRL is reported as a refused recipe)."""

    def usable_rows(self, tokenizer: Any, rows: TrainingRows, args: Any) -> TrainingRows:
        """The rows this method's trainer can take; those left out are counted in `rows.skipped` (default: all)."""
        return rows
