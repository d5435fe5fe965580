"""The width prune methods: `minitron` (activation importance of every width axis) and `sdmprune` (MLP neurons
by a self-distillation Taylor term); their scoring lives in `minitron` and `sdmprune`."""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from sdd_data.errors import SddError
from sdd_data.prune.depth_methods import BLOCK_INFLUENCE
from sdd_data.prune.method import Calibration, WidthCut, WidthMethod

if TYPE_CHECKING:
    from sdd_data.prune.config import PruneConfig


class MinitronMethod(WidthMethod):
    """MLP neurons, KV groups and hidden channels ranked by their activations on the calibration text."""

    name = "minitron"
    help = (
        "MLP neurons, KV heads and hidden channels by activation importance (Minitron); targets --ffn-size, "
        "--kv-heads, --hidden-size"
    )
    block_method = BLOCK_INFLUENCE

    def check_options(self, config: PruneConfig) -> None:
        """Minitron needs at least one width target."""
        if config.ffn_size is None and config.kv_heads is None and config.hidden_size is None:
            raise SddError("minitron needs a width target: --ffn-size, --kv-heads or --hidden-size")

    def cut_width(
        self, model: Any, removed_blocks: list[int], calibration: Calibration, config: PruneConfig, show_progress: bool
    ) -> WidthCut:
        """Remove the blocks from `model` itself, then score every targeted axis on what remains."""
        from sdd_data.prune.checkpoint import remove_blocks
        from sdd_data.prune.minitron import WidthTargets, minitron_width

        if removed_blocks:
            remove_blocks(model, removed_blocks)
        targets = WidthTargets(config.ffn_size, config.kv_heads, config.hidden_size)
        kept, scores = minitron_width(model, calibration.batches, targets, show_progress)
        return WidthCut(kept, scores, model_changed=bool(removed_blocks))


class SdmpruneMethod(WidthMethod):
    """MLP neurons ranked by the Taylor term of KL(original ‖ model) on the original's own completions."""

    name = "sdmprune"
    help = (
        "MLP neurons by the Taylor term of KL(original ‖ model) on the model's own completions (SDMPrune); "
        "target --ffn-size"
    )
    block_method = BLOCK_INFLUENCE

    def check_options(self, config: PruneConfig) -> None:
        """SDMPrune cuts only MLP neurons, to --ffn-size, after a warm-up share of the cut."""
        _ffn_size(config)
        if config.kv_heads is not None or config.hidden_size is not None:
            raise SddError("sdmprune prunes only MLP neurons: drop --kv-heads / --hidden-size (minitron prunes those)")
        if not 0 < config.sdmprune_warmup < 1:
            raise SddError(f"sdmprune_warmup must be between 0 and 1 (exclusive), got {config.sdmprune_warmup}")
        if config.completion_tokens < 1:
            raise SddError(f"completion_tokens must be at least 1, got {config.completion_tokens}")

    def cut_width(
        self, model: Any, removed_blocks: list[int], calibration: Calibration, config: PruneConfig, show_progress: bool
    ) -> WidthCut:
        """Score the neurons of a copy without the removed blocks against `model`, the original, left as it is."""
        from sdd_data.prune.checkpoint import remove_blocks
        from sdd_data.prune.sdmprune import SdmpruneSettings, sdmprune_neurons

        settings = SdmpruneSettings(
            _ffn_size(config), config.completion_tokens, config.sdmprune_warmup, config.max_length, config.batch_size
        )
        student = copy.deepcopy(model)
        if removed_blocks:
            remove_blocks(student, removed_blocks)
        neurons, scores = sdmprune_neurons(
            model, student, calibration.tokenizer, calibration.rows, settings, show_progress
        )
        del student
        return WidthCut({"neurons": neurons}, scores)


def _ffn_size(config: PruneConfig) -> int:
    """The MLP size sdmprune cuts every block to, which it cannot run without."""
    if config.ffn_size is None:
        raise SddError("sdmprune prunes MLP neurons: give the MLP size to keep with --ffn-size")
    return config.ffn_size


MINITRON = MinitronMethod()
SDMPRUNE = SdmpruneMethod()
