"""Width pruning of the hidden size: score every embedding channel by the norm outputs, keep the best.

Minitron's embedding-channel importance reads the RMSNorm outputs: each channel's L2 over a row's tokens,
averaged over rows, summed over every norm of the model (both norms of each block and the final one).

A channel is removed everywhere it exists: a column of the embedding (and of an untied LM head), a
column of every projection that reads the residual stream, a row of every projection that writes it,
an entry of every norm. RMSNorm divides by the root mean square over the channels, which now has fewer
terms, so each kept norm weight is scaled by sqrt(d / d′): the pruned model then equals the original
with the pruned channels zeroed in the residual stream, up to the norm's epsilon.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from sdd_data.errors import SddError
from sdd_data.prune.attention_width import head_layout
from sdd_data.prune.width_scores import Recorder, l2_over_tokens, linear_columns, linear_rows

READS_RESIDUAL = (
    ("self_attn", "q_proj"),
    ("self_attn", "k_proj"),
    ("self_attn", "v_proj"),
    ("mlp", "gate_proj"),
    ("mlp", "up_proj"),
)
WRITES_RESIDUAL = (("self_attn", "o_proj"), ("mlp", "down_proj"))
BLOCK_NORMS = ("input_layernorm", "post_attention_layernorm")


def hidden_norms(model: Any) -> list[Any]:
    """Every RMSNorm over the hidden size: two per block and the final one."""
    return [getattr(layer, name) for layer in model.model.layers for name in BLOCK_NORMS] + [model.model.norm]


class NormOutputRecorder(Recorder):
    """Forward hooks on every hidden-size norm that fold its output into per-channel importance."""

    def __init__(self, model: Any):
        super().__init__()
        self.norms = hidden_norms(model)
        self.sums = [torch.zeros(model.config.hidden_size, dtype=torch.float64) for _ in self.norms]

    def _register(self) -> list[Any]:
        return [norm.register_forward_hook(self._hook(index)) for index, norm in enumerate(self.norms)]

    def _hook(self, index: int):
        def record(module, args, output) -> None:
            self.sums[index] += l2_over_tokens(output, self.mask())

        return record

    def importance(self) -> torch.Tensor:
        """[1, channels]: each channel's mean-of-L2 norm output, summed over every norm."""
        return self.mean_over_rows(self.sums).sum(dim=0, keepdim=True)


def prune_hidden_channels(model: Any, keep: torch.Tensor) -> None:
    """Keep only the given hidden channels everywhere in the model, in place; the config follows."""
    hidden = model.config.hidden_size
    if keep.dim() != 1 or not 0 < len(keep) <= hidden:
        raise SddError(f"keep 1 to {hidden} hidden channels as one list of indices, got shape {tuple(keep.shape)}")
    scale = math.sqrt(hidden / len(keep))
    embeddings = model.model.embed_tokens
    tied = model.lm_head.weight is embeddings.weight
    embeddings.weight = torch.nn.Parameter(embeddings.weight.data[:, keep].clone())
    embeddings.embedding_dim = len(keep)
    if tied:
        model.lm_head.weight = embeddings.weight
        model.lm_head.in_features = len(keep)
    else:
        model.lm_head = linear_columns(model.lm_head, keep)
    for layer in model.model.layers:
        for part, name in READS_RESIDUAL:
            module = getattr(layer, part)
            setattr(module, name, linear_columns(getattr(module, name), keep))
        for part, name in WRITES_RESIDUAL:
            module = getattr(layer, part)
            setattr(module, name, linear_rows(getattr(module, name), keep))
    for norm in hidden_norms(model):
        norm.weight = torch.nn.Parameter(norm.weight.data[keep].clone() * scale)
    model.config.head_dim = head_layout(model.config)[2]  # explicit: hidden_size / heads no longer gives it
    model.config.hidden_size = len(keep)
