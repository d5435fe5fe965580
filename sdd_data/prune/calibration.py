"""Scoring decoder blocks on calibration text: render the rows, run the model, record every block with hooks.

One forward hook per decoder block sees the block's input and output; from them it keeps the
last-token inputs (angular distance) and the token-wise cosine sums (block influence). The output of
the last block is taken from its hook, not from `hidden_states[-1]`, which comes after the final norm.
Batches are right-padded so real tokens keep their positions; the mask excludes the padding.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from tqdm.auto import tqdm

from sdd_data.data.records import sft_messages, user_prompt
from sdd_data.errors import SddError
from sdd_data.prune.block_scores import (
    block_influence,
    last_token_states,
    layer_distances,
    masked_cosine_sum,
)


@dataclass
class BlockScores:
    """Mean scores over the calibration rows."""

    angular_distance: list[float]
    """Mean d(ℓ, n) for each start block ℓ = 0 … L − n (removing blocks ℓ…ℓ+n−1)."""
    block_influence: list[float]
    """BI of each block 0 … L − 1."""
    rows: int
    """Calibration rows scored."""
    tokens: int
    """Non-pad tokens seen by each block."""


def calibration_texts(rows: list[dict], tokenizer: Any) -> list[str]:
    """Each row as the model sees a conversation: the chat template over instruction and response, else plain text."""
    if getattr(tokenizer, "chat_template", None):
        return [tokenizer.apply_chat_template(sft_messages(row, row["response"]), tokenize=False) for row in rows]
    return [f"{user_prompt(row['instruction'], row['input'])}\n\n{row['response']}" for row in rows]


class _BlockRecorder:
    """Forward hooks that fold each block's input and output into running sums for the current batch mask."""

    def __init__(self, num_blocks: int):
        self.num_blocks = num_blocks
        self.attention_mask: torch.Tensor | None = None
        self.last_states: list[torch.Tensor | None] = [None] * (num_blocks + 1)
        self.cosine_sums = [0.0] * num_blocks
        self.token_counts = [0] * num_blocks

    def hook(self, index: int):
        def record(module, args, kwargs, output) -> None:
            block_input = args[0] if args else kwargs["hidden_states"]
            block_output = output[0] if isinstance(output, tuple) else output
            self.last_states[index] = last_token_states(block_input, self.attention_mask)
            if index == self.num_blocks - 1:
                self.last_states[index + 1] = last_token_states(block_output, self.attention_mask)
            cosine_sum, count = masked_cosine_sum(block_input, block_output, self.attention_mask)
            self.cosine_sums[index] += cosine_sum
            self.token_counts[index] += count

        return record


def score_blocks(model: Any, batches: list[dict], n: int, show_progress: bool = True) -> BlockScores:
    """Angular distances d(ℓ, n) and block influence of every decoder block, averaged over the rows of
    `batches` (`calibration_batches`)."""
    rows = sum(int(batch["input_ids"].shape[0]) for batch in batches)
    if not rows:
        raise SddError("no calibration texts to score the blocks on")
    blocks = model.model.layers
    recorder = _BlockRecorder(len(blocks))
    distance_sums: torch.Tensor | None = None
    device = next(model.parameters()).device
    handles = [
        block.register_forward_hook(recorder.hook(index), with_kwargs=True) for index, block in enumerate(blocks)
    ]
    try:
        for batch in tqdm(batches, unit="batch", desc="calibration", disable=not show_progress):
            recorder.attention_mask = batch["attention_mask"].to(device)
            with torch.inference_mode():
                model.model(
                    input_ids=batch["input_ids"].to(device), attention_mask=recorder.attention_mask, use_cache=False
                )
            distances = layer_distances(torch.stack(recorder.last_states), n).sum(dim=1).double().cpu()
            distance_sums = distances if distance_sums is None else distance_sums + distances
    finally:
        for handle in handles:
            handle.remove()
    return BlockScores(
        angular_distance=(distance_sums / rows).tolist(),
        block_influence=block_influence(recorder.cosine_sums, recorder.token_counts),
        rows=rows,
        tokens=recorder.token_counts[0],
    )


def calibration_batches(tokenizer: Any, texts: list[str], max_length: int, batch_size: int) -> list[dict]:
    """Right-padded batches of similar lengths (longest first, so memory errors show up at once)."""
    if batch_size < 1 or max_length < 2:
        raise SddError(f"batch_size must be at least 1 and max_length at least 2, got {batch_size} and {max_length}")
    add_special_tokens = not getattr(tokenizer, "chat_template", None)  # a template writes its own BOS
    encoded = [
        tokenizer(text, add_special_tokens=add_special_tokens, truncation=True, max_length=max_length)["input_ids"]
        for text in texts
    ]
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    if pad_id is None:
        raise SddError("the tokenizer has neither a pad token nor an eos token to pad calibration batches with")
    order = sorted(range(len(encoded)), key=lambda index: len(encoded[index]), reverse=True)
    batches = []
    for start in range(0, len(order), batch_size):
        rows = [encoded[index] for index in order[start : start + batch_size]]
        width = max(len(ids) for ids in rows)
        input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
        attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
        for position, ids in enumerate(rows):
            input_ids[position, : len(ids)] = torch.tensor(ids, dtype=torch.long)
            attention_mask[position, : len(ids)] = 1
        batches.append({"input_ids": input_ids, "attention_mask": attention_mask})
    return batches
