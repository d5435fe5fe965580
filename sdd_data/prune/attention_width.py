"""Width pruning of attention: score every head by its output, keep the best KV groups of each layer whole.

With grouped-query attention, KV head g serves the query heads g·r … g·r + r − 1 (r = query heads per KV
head, transformers' `repeat_kv` order). A KV group is pruned whole, with its r query heads: every layer
keeps the same r, so `num_key_value_groups` and the GQA layout the config describes stay valid in
transformers and vLLM, and no query head is left without its keys and values. Pruning query heads
evenly within groups would keep the KV cache as it is; pruning groups shrinks it too, which is where
long-context memory goes.

Minitron's head importance is the L2 norm of each head's output (the attention output before o_proj):
per token over the head's dimensions, then L2 over a row's tokens and the mean over rows; a group
scores the sum of its query heads. Removing a group is exactly zeroing its heads' columns of o_proj.
"""

from __future__ import annotations

from typing import Any

import torch

from sdd_data.errors import SddError
from sdd_data.prune.width_scores import Recorder, l2_over_tokens, linear_columns, linear_rows


def head_layout(config: Any) -> tuple[int, int, int]:
    """(query heads, KV heads, head_dim) of a model config; head_dim defaults to hidden_size / heads."""
    heads = config.num_attention_heads
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    if heads % kv_heads:
        raise SddError(f"{heads} query heads do not split into {kv_heads} KV groups")
    return heads, kv_heads, head_dim


class HeadOutputRecorder(Recorder):
    """Forward pre-hooks on every layer's o_proj that fold each head's output norm into its importance."""

    def __init__(self, model: Any):
        super().__init__()
        self.layers = model.model.layers
        self.heads, self.kv_heads, self.head_dim = head_layout(model.config)
        self.sums = [torch.zeros(self.heads, dtype=torch.float64) for _ in self.layers]

    def _register(self) -> list[Any]:
        return [
            layer.self_attn.o_proj.register_forward_pre_hook(self._hook(index))
            for index, layer in enumerate(self.layers)
        ]

    def _hook(self, index: int):
        def record(module, args) -> None:
            heads_output = args[0].unflatten(-1, (self.heads, self.head_dim)).float().norm(dim=-1)
            self.sums[index] += l2_over_tokens(heads_output, self.mask())

        return record

    def head_importance(self) -> torch.Tensor:
        """[layers, query heads]: each head's output norm, L2 over a row's tokens, averaged over the rows."""
        return self.mean_over_rows(self.sums)

    def group_importance(self) -> torch.Tensor:
        """[layers, KV heads]: the summed importance of each KV group's query heads."""
        heads = self.head_importance()
        return heads.reshape(len(self.layers), self.kv_heads, self.heads // self.kv_heads).sum(dim=-1)


def prune_kv_groups(model: Any, keep: torch.Tensor) -> None:
    """Keep only the given KV groups of every layer (with their query heads), in place; the config follows."""
    layers = model.model.layers
    heads, kv_heads, head_dim = head_layout(model.config)
    if keep.shape[0] != len(layers):
        raise SddError(f"got KV groups to keep for {keep.shape[0]} layers, the model has {len(layers)}")
    per_group = heads // kv_heads
    for layer, groups in zip(layers, keep):
        query_heads = (groups[:, None] * per_group + torch.arange(per_group)).flatten()
        query_rows = _head_rows(query_heads, head_dim)
        kv_rows = _head_rows(groups, head_dim)
        attention = layer.self_attn
        attention.q_proj = linear_rows(attention.q_proj, query_rows)
        attention.k_proj = linear_rows(attention.k_proj, kv_rows)
        attention.v_proj = linear_rows(attention.v_proj, kv_rows)
        attention.o_proj = linear_columns(attention.o_proj, query_rows)
    model.config.head_dim = head_dim  # explicit: hidden_size / heads no longer gives it
    model.config.num_key_value_heads = int(keep.shape[1])
    model.config.num_attention_heads = int(keep.shape[1]) * per_group


def _head_rows(heads: torch.Tensor, head_dim: int) -> torch.Tensor:
    """The projection rows of the given heads, in head order."""
    return (heads[:, None] * head_dim + torch.arange(head_dim)).flatten()
