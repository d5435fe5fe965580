"""Batched decoding in which a row leaves the batch as soon as it ends.

`model.generate` keeps every row of a batch in every step until the longest one is done, so a batch of
rows with ragged answer lengths spends most of its compute on rows that have already ended. Here a row
that reaches an end token or its token budget is dropped from the batch (and from the KV cache) at once:
each step costs what the rows still running cost, and a large batch is no longer a waste on CPU.
"""

from __future__ import annotations

from dataclasses import dataclass

from sdd_data.engines.decode_cache import growing_cache


@dataclass(frozen=True)
class Sampling:
    """How the next token is chosen: greedy when temperature is 0."""

    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0


def decode(
    model, token_ids: list[list[int]], room: list[int], end_ids: list[int], pad_id: int, sampling: Sampling, device
) -> list[list[int]]:
    """The new tokens of each prompt (an end token included, when reached), at most `room[i]` of them."""
    import torch

    width = max(len(ids) for ids in token_ids)
    input_ids = torch.full((len(token_ids), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(token_ids), width), dtype=torch.long)
    for row, ids in enumerate(token_ids):
        input_ids[row, width - len(ids) :] = torch.tensor(ids, dtype=torch.long)
        attention_mask[row, width - len(ids) :] = 1
    input_ids, attention_mask = input_ids.to(device), attention_mask.to(device)
    positions = (attention_mask.cumsum(-1) - 1).clamp(min=0)
    choose = _chooser(sampling)
    end = torch.tensor(end_ids, device=device)
    budget = torch.tensor(room, device=device)

    generated: list[list[int]] = [[] for _ in token_ids]
    running = list(range(len(token_ids)))  # rows still in the batch, in batch order
    cache = growing_cache(model.config, width + max(room))
    with torch.inference_mode():
        logits = model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=positions,
            past_key_values=cache,
            use_cache=True,
            logits_to_keep=1,
        ).logits[:, -1, :]
        next_position = positions[:, -1] + 1
        steps = 0
        while True:
            tokens = choose(logits)
            steps += 1
            for slot, row in enumerate(running):
                generated[row].append(int(tokens[slot]))
            going = ~torch.isin(tokens, end) & (budget > steps)
            if not bool(going.any()):
                break
            if not bool(going.all()):
                keep = going.nonzero().squeeze(1)
                cache.batch_select_indices(keep)
                attention_mask, next_position, budget = attention_mask[keep], next_position[keep], budget[keep]
                tokens = tokens[keep]
                running = [running[slot] for slot in keep.tolist()]
            attention_mask = torch.cat([attention_mask, attention_mask.new_ones((len(running), 1))], dim=1)
            logits = model(
                input_ids=tokens[:, None],
                attention_mask=attention_mask,
                position_ids=next_position[:, None],
                past_key_values=cache,
                use_cache=True,
            ).logits[:, -1, :]
            next_position = next_position + 1
    return generated


def _chooser(sampling: Sampling):
    """argmax for greedy decoding; otherwise temperature, top-k and top-p (in that order, as transformers does)."""
    import torch

    if sampling.temperature == 0.0:
        return lambda logits: logits.argmax(dim=-1)

    def sample(logits):
        scores = logits.float() / sampling.temperature
        if sampling.top_k > 0:
            kth = torch.topk(scores, min(sampling.top_k, scores.shape[-1]), dim=-1).values[:, -1:]
            scores = scores.masked_fill(scores < kth, float("-inf"))
        if sampling.top_p < 1.0:
            ordered, order = scores.sort(dim=-1, descending=True)
            mass_before = ordered.softmax(dim=-1).cumsum(dim=-1) - ordered.softmax(dim=-1)
            ordered = ordered.masked_fill(mass_before >= sampling.top_p, float("-inf"))
            scores = torch.full_like(scores, float("-inf")).scatter(-1, order, ordered)
        return torch.multinomial(scores.softmax(dim=-1), num_samples=1).squeeze(1)

    return sample
