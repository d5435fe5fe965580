"""What a prune method is: one object that checks its options, scores the model and says what to cut.

A depth method removes whole decoder blocks: it scores every block on the calibration text, chooses n of
them and prints its score table. A width method cuts the blocks that remain to smaller sizes (MLP neurons,
KV heads, hidden channels); when blocks are removed as well, its `block_method` chooses them first. The
prune stage asks the method for all of this and never tests its name. A method module imports torch
inside its functions, so listing the methods (the CLI help) stays light.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from sdd_data.errors import SddError

if TYPE_CHECKING:
    from sdd_data.prune.calibration import BlockScores
    from sdd_data.prune.config import PruneConfig


@dataclass(frozen=True)
class Calibration:
    """What a method scores on: the calibration rows, the tokenizer, and the rows rendered into batches."""

    rows: list[dict]
    tokenizer: Any
    batches: list[dict]
    """Right-padded `input_ids` and `attention_mask` batches (`calibration.calibration_batches`)."""


@dataclass
class WidthCut:
    """What a width method keeps and the scores behind it."""

    kept: dict = field(default_factory=dict)
    """Index tensors under the `PruningPlan` field names (`kv_groups`, `neurons`, `channels`)."""
    scores: dict = field(default_factory=dict)
    """JSON-ready scores for the prune record."""
    model_changed: bool = False
    """True when the method cut the model it was given (removed its blocks to score the rest)."""


class PruneMethod(ABC):
    """A registered way to prune; `name` is what `--method` takes and `help` its one line in the CLI help."""

    name: ClassVar[str]
    kind: ClassVar[Literal["depth", "width"]]
    help: ClassVar[str]

    @property
    @abstractmethod
    def block_method(self) -> DepthMethod:
        """The depth method that chooses the blocks to remove when `--blocks-to-remove` is given."""

    @abstractmethod
    def check_options(self, config: PruneConfig) -> None:
        """Refuse options this method cannot run with, before any model loads."""

    def cut_width(
        self, model: Any, removed_blocks: list[int], calibration: Calibration, config: PruneConfig, show_progress: bool
    ) -> WidthCut:
        """The width units to keep in the blocks that remain once `removed_blocks` are gone (none: depth only)."""
        return WidthCut()


class DepthMethod(PruneMethod):
    """Removes n whole decoder blocks, chosen from block scores taken on the calibration text."""

    kind = "depth"

    @property
    def block_method(self) -> DepthMethod:
        """A depth method chooses its blocks itself."""
        return self

    def check_options(self, config: PruneConfig) -> None:
        """A depth method needs to know how many blocks to remove, or which."""
        if config.blocks is None and config.blocks_to_remove is None:
            raise SddError("say how many blocks to remove (--blocks-to-remove N) or which ones (--blocks 20,21,22,23)")

    def score(self, model: Any, calibration: Calibration, n: int, show_progress: bool) -> BlockScores:
        """Angular distance d(ℓ, n) and block influence of every block, from one pass over the calibration text."""
        from sdd_data.prune.calibration import score_blocks

        return score_blocks(model, calibration.batches, n, show_progress)

    @abstractmethod
    def choose(self, scores: BlockScores, n: int) -> list[int]:
        """The n 0-based blocks to remove, sorted."""

    @abstractmethod
    def print_scores(self, scores: BlockScores, removed: list[int]) -> None:
        """Print the scores the choice was made on, marking the removed blocks."""


class WidthMethod(PruneMethod):
    """Cuts every remaining block to the same smaller width; blocks, if any, are removed first."""

    kind = "width"

    @abstractmethod
    def cut_width(
        self, model: Any, removed_blocks: list[int], calibration: Calibration, config: PruneConfig, show_progress: bool
    ) -> WidthCut:
        """Score the width on the blocks that remain once `removed_blocks` are gone and choose what each keeps."""
