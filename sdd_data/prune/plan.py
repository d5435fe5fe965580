"""What a prune run removes, in the source model's numbering, and how to apply it to a freshly loaded model.

Scoring may run in another dtype than the checkpoint's; the plan is then applied to the checkpoint's own
weights, so the saved model is never rounded through the scoring dtype. Order: blocks first, then KV
groups, MLP neurons and hidden channels of the blocks that remain.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

SHAPE_KEYS = ("num_hidden_layers", "hidden_size", "intermediate_size", "num_attention_heads", "num_key_value_heads")
"""The config values a prune can change."""


@dataclass
class PruningPlan:
    """The units to remove or keep; a width axis left as None is not pruned."""

    removed_blocks: list[int] = field(default_factory=list)
    """0-based decoder blocks to remove."""
    kv_groups: torch.Tensor | None = None
    """[kept blocks, kv heads kept]: the KV groups each remaining block keeps."""
    neurons: torch.Tensor | None = None
    """[kept blocks, ffn size]: the MLP neurons each remaining block keeps."""
    channels: torch.Tensor | None = None
    """[hidden size]: the hidden channels the model keeps."""

    def apply(self, model: Any) -> None:
        """Remove the planned units from `model`, in place."""
        from sdd_data.prune.attention_width import prune_kv_groups
        from sdd_data.prune.checkpoint import remove_blocks
        from sdd_data.prune.hidden_width import prune_hidden_channels
        from sdd_data.prune.mlp_width import prune_mlp_neurons

        if self.removed_blocks:
            remove_blocks(model, self.removed_blocks)
        if self.kv_groups is not None:
            prune_kv_groups(model, self.kv_groups)
        if self.neurons is not None:
            prune_mlp_neurons(model, self.neurons)
        if self.channels is not None:
            prune_hidden_channels(model, self.channels)

    def kept_units(self) -> dict:
        """The kept indices of each pruned width axis, as lists for the prune record."""
        kept = {"kv_groups": self.kv_groups, "mlp_neurons": self.neurons, "hidden_channels": self.channels}
        return {name: indices.tolist() for name, indices in kept.items() if indices is not None}


def model_shape(model: Any) -> dict:
    """The config values a prune can change, and the parameter count."""
    shape = {key: getattr(model.config, key, None) for key in SHAPE_KEYS}
    shape["parameters"] = sum(parameter.numel() for parameter in model.parameters())
    return shape


def rounded(scores: torch.Tensor) -> list:
    """Scores as (nested) lists of floats with 5 significant digits, for a JSON record."""
    return (
        [float(f"{value:.5g}") for value in scores.tolist()] if scores.dim() == 1 else [rounded(row) for row in scores]
    )
