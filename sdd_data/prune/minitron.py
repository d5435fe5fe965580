"""Minitron's activation importance (Muralidharan et al., 2024): one calibration pass scores every width axis.

MLP neurons (`mlp_width`), attention heads summed into KV groups (`attention_width`) and hidden channels
(`hidden_width`) are all recorded in the same forward passes; each axis with a target keeps its most
important units. The scores are taken on the model as it stands (after any block removal), all axes at
once, as the paper does, rather than re-scoring after each axis.
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

from sdd_data.prune.attention_width import HeadOutputRecorder
from sdd_data.prune.hidden_width import NormOutputRecorder
from sdd_data.prune.mlp_width import MlpActivationRecorder
from sdd_data.prune.plan import rounded
from sdd_data.prune.width_scores import keep_top, record_batches


@dataclass(frozen=True)
class WidthTargets:
    """The size each width axis is pruned to; None leaves the axis as it is."""

    ffn_size: int | None = None
    kv_heads: int | None = None
    hidden_size: int | None = None


def minitron_width(model: Any, batches: list[dict], targets: WidthTargets, show_progress: bool = True):
    """(kept units per axis, scores per axis) for the axes `targets` names; kept = index tensors under the
    `PruningPlan` field names (kv_groups, neurons, channels)."""
    recorders = {}
    if targets.ffn_size is not None:
        recorders["mlp_neurons"] = MlpActivationRecorder(model)
    if targets.kv_heads is not None:
        recorders["kv_groups"] = HeadOutputRecorder(model)
    if targets.hidden_size is not None:
        recorders["hidden_channels"] = NormOutputRecorder(model)
    with ExitStack() as hooks:
        for recorder in recorders.values():
            hooks.enter_context(recorder)
        record_batches(model, batches, list(recorders.values()), show_progress, desc="minitron importance")

    kept, scores = {}, {}
    if "mlp_neurons" in recorders:
        importance = recorders["mlp_neurons"].importance()
        kept["neurons"] = keep_top(importance, targets.ffn_size, "ffn_size", "the model's intermediate size")
        scores["mlp_neurons"] = rounded(importance)
    if "kv_groups" in recorders:
        importance = recorders["kv_groups"].group_importance()
        kept["kv_groups"] = keep_top(importance, targets.kv_heads, "kv_heads", "the model's KV heads")
        scores["attention_heads"] = rounded(recorders["kv_groups"].head_importance())
        scores["kv_groups"] = rounded(importance)
    if "hidden_channels" in recorders:
        importance = recorders["hidden_channels"].importance()
        kept["channels"] = keep_top(importance, targets.hidden_size, "hidden_size", "the model's hidden size")[0]
        scores["hidden_channels"] = rounded(importance[0])
    return kept, scores
