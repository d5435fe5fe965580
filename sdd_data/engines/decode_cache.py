"""A KV cache and an attention function for batched decoding on CPU that copy only what each step adds.

transformers' `DynamicCache` grows each layer's keys and values by concatenation, so every new token copies
the whole cache; and its `sdpa` attention, given a padding mask, repeats the shared key/value heads of a
grouped-query model once per query head (another copy of the cache) before a kernel that handles masks
slowly on CPU. Those copies cost little on an idle machine, where a step is bound by reading the weights, and
much when memory bandwidth is shared or the batch is large. Here:

- `GrowingLayer` writes new keys and values into a buffer reserved for the whole generation (grown by
  doubling if a caller asks for more) and hands the attention a view of the filled part;
- `grouped_decode_attention`, registered as the attention implementation `GROUPED_DECODE`, computes a
  decode step (one new token per row, or a few when drafted tokens are checked) as two batched matmuls per
  layer with the query heads grouped onto their key/value head, scores and softmax in float32. Longer
  queries (the prompt) go to transformers' `sdpa` as before.

The arithmetic is the same; only where the numbers live changes (differences are float rounding).
"""

from __future__ import annotations

import functools
from typing import Any

GROUPED_DECODE = "sdd_grouped_decode"
"""The attention implementation name under which `grouped_decode_attention` is registered."""

GROUPED_QUERY_LIMIT = 16
"""The longest query (new tokens per row) the grouped path computes after the prompt; longer ones go to sdpa."""

UNSUPPORTED_ATTENTION_OPTIONS = ("s_aux", "softcap")
"""Attention extras (sink logits, logit soft-capping) the grouped path does not compute; such a call goes to sdpa."""


def register_grouped_decode() -> str:
    """Register the grouped decode attention with transformers (once) and return its implementation name."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    if GROUPED_DECODE not in AttentionInterface._global_mapping:
        AttentionInterface.register(GROUPED_DECODE, grouped_decode_attention)
        AttentionMaskInterface.register(GROUPED_DECODE, sdpa_mask)
    return GROUPED_DECODE


def grouped_decode_attention(
    module: Any,
    query: Any,
    key: Any,
    value: Any,
    attention_mask: Any,
    dropout: float = 0.0,
    scaling: float | None = None,
    **kwargs: Any,
) -> tuple[Any, None]:
    """Attention for a few new tokens per row without copying the cache; other calls go to transformers' sdpa."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    batch, query_heads, query_length, head_dim = query.shape
    key_heads, length = key.shape[1], key.shape[2]
    if (
        query_length > GROUPED_QUERY_LIMIT
        or length <= query_length  # the first pass (the prompt), where padding rows see no key at all
        or dropout
        or query_heads % key_heads
        or any(kwargs.get(name) is not None for name in UNSUPPORTED_ATTENTION_OPTIONS)
    ):
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout, scaling, **kwargs)
    import torch

    group = query_heads // key_heads
    # Query head h reads key/value head h // group (transformers' repeat_kv): the heads of a group are adjacent.
    grouped = query.reshape(batch, key_heads, group * query_length, head_dim)
    scores = (grouped @ key.transpose(-1, -2)).float() * (scaling if scaling is not None else head_dim**-0.5)
    scores = scores.view(batch, key_heads, group, query_length, length)
    if attention_mask is not None:
        mask = attention_mask[:, :, -query_length:, -length:].reshape(batch, 1, 1, query_length, length)
        scores = scores.masked_fill(~mask, float("-inf")) if mask.dtype == torch.bool else scores + mask.float()
    elif query_length > 1:  # no mask given: causal, the new tokens being the last of the cache
        causal = torch.ones(query_length, length, dtype=torch.bool, device=scores.device)
        scores = scores.masked_fill(~causal.tril(diagonal=length - query_length), float("-inf"))
    weights = scores.softmax(dim=-1).to(value.dtype).view(batch, key_heads, group * query_length, length)
    output = weights @ value  # batch, key heads, group x query, head_dim
    return output.reshape(batch, query_heads, query_length, head_dim).transpose(1, 2).contiguous(), None


def growing_cache(model_config: Any, capacity: int) -> Any:
    """A `DynamicCache` for `model_config` whose full-attention layers reserve `capacity` positions up front."""
    from transformers.cache_utils import DynamicCache, DynamicLayer

    cache = DynamicCache(config=model_config)
    growing_layer = _growing_layer_class()
    cache.layers = [  # sliding-window layers stay as they are
        growing_layer(capacity) if type(layer) is DynamicLayer else layer for layer in cache.layers
    ]
    return cache


def rewindable(cache: Any) -> bool:
    """Whether every layer of a `growing_cache` is a growing one: full attention, where positions can be dropped
    or masked out (a sliding window counts the positions it holds, masked or not)."""
    growing_layer = _growing_layer_class()
    return all(type(layer) is growing_layer for layer in cache.layers)


def rewind(cache: Any, positions: int) -> None:
    """Drop the last `positions` of every layer of a `rewindable` cache."""
    for layer in cache.layers:
        layer.crop(-positions)


@functools.cache
def _growing_layer_class() -> type:
    """The `GrowingLayer` class, built on first use so that importing this module does not import transformers."""
    from transformers.cache_utils import DynamicLayer

    class GrowingLayer(DynamicLayer):
        """A cache layer writing into a reserved buffer: appending a token copies that token only."""

        def __init__(self, capacity: int):
            super().__init__()
            self.capacity = capacity

        def lazy_initialization(self, key_states: Any, value_states: Any) -> None:
            super().lazy_initialization(key_states, value_states)
            self.filled = 0
            self.key_buffer = _buffer_like(key_states, self.capacity)
            self.value_buffer = _buffer_like(value_states, self.capacity)

        def update(self, key_states: Any, value_states: Any, *args: Any, **kwargs: Any) -> tuple[Any, Any]:
            if not self.is_initialized:
                self.lazy_initialization(key_states, value_states)
            end = self.filled + key_states.shape[-2]
            if end > self.key_buffer.shape[-2]:
                self.key_buffer = _grown(self.key_buffer, end)
                self.value_buffer = _grown(self.value_buffer, end)
            self.key_buffer[:, :, self.filled : end] = key_states
            self.value_buffer[:, :, self.filled : end] = value_states
            self.filled = end
            self._expose()
            return self.keys, self.values

        def crop(self, tokens_to_remove: int) -> None:
            """Forget the last `tokens_to_remove` positions (a negative count, as transformers' layers take it)."""
            if self.is_initialized and tokens_to_remove:
                self.filled -= abs(tokens_to_remove)
                self._expose()

        def batch_select_indices(self, indices: Any) -> None:
            if self.is_initialized:
                self.key_buffer = _rows_of(self.key_buffer, indices, self.filled)
                self.value_buffer = _rows_of(self.value_buffer, indices, self.filled)
                self._expose()

        def _expose(self) -> None:
            self.keys = self.key_buffer[:, :, : self.filled]
            self.values = self.value_buffer[:, :, : self.filled]

    return GrowingLayer


def _buffer_like(states: Any, capacity: int) -> Any:
    batch, heads, length, width = states.shape
    return states.new_empty((batch, heads, max(capacity, length), width))


def _rows_of(buffer: Any, indices: Any, filled: int) -> Any:
    """A buffer of the same capacity holding the filled positions of the rows at `indices` (the rest left unset)."""
    rows = buffer.new_empty((len(indices), *buffer.shape[1:]))
    rows[:, :, :filled] = buffer[indices, :, :filled]
    return rows


def _grown(buffer: Any, needed: int) -> Any:
    """The buffer with room for at least `needed` positions (doubling, so appends stay cheap on average)."""
    import torch

    batch, heads, length, width = buffer.shape
    extra = buffer.new_empty((batch, heads, max(needed, 2 * length) - length, width))
    return torch.cat([buffer, extra], dim=-2)
