"""The multiple-choice scorer the eval stage used before packed rows: one padded sequence per (context,
continuation) pair, every context computed again for each of its choices. Kept only as the baseline of
bench_mc_scoring.py."""

from __future__ import annotations

from collections.abc import Callable

from sdd_data.errors import SddError
from sdd_data.evaluate.mc_scoring import split_pair


def continuation_logprobs(
    model, tokenizer, pairs: list[tuple[str, str]], batch_size: int, progress: Callable[[int], None] | None = None
) -> list[float]:
    """Sum of log p(continuation token | everything before it) for each (context, continuation), in fp32."""
    import torch

    if batch_size < 1:
        raise SddError(f"batch_size must be at least 1, got {batch_size}")
    encoded = [split_pair(tokenizer, context, continuation) for context, continuation in pairs]
    order = sorted(range(len(encoded)), key=lambda index: -sum(map(len, encoded[index])))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else encoded[0][0][0]
    device = next(model.parameters()).device
    scores = [0.0] * len(encoded)
    for start in range(0, len(order), batch_size):
        batch = order[start : start + batch_size]
        inputs = [(encoded[index][0] + encoded[index][1])[:-1] for index in batch]
        width = max(len(ids) for ids in inputs)
        input_ids = torch.full((len(batch), width), pad, dtype=torch.long)
        attention_mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, ids in enumerate(inputs):
            input_ids[row, : len(ids)] = torch.tensor(ids)
            attention_mask[row, : len(ids)] = 1
        with torch.inference_mode():
            logits = model(input_ids=input_ids.to(device), attention_mask=attention_mask.to(device)).logits
        for row, index in enumerate(batch):
            context_ids, continuation_ids = encoded[index]
            first = len(context_ids) - 1  # the position whose logits predict the first continuation token
            positions = logits[row, first : first + len(continuation_ids)].float()
            targets = torch.tensor(continuation_ids, device=positions.device)
            log_probs = torch.log_softmax(positions, dim=-1).gather(1, targets[:, None])
            scores[index] = float(log_probs.sum())
        if progress is not None:
            progress(len(batch))
    return scores
