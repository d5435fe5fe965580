"""The transformers engine's decoding before ragged batches: one `model.generate` call per batch of 8 rows, in
which every row waits for the longest. Kept only as the baseline of bench_scale.py."""

from __future__ import annotations

from sdd_data.engines.base import DecodingConfig, Generation
from sdd_data.engines.transformers_engine import TransformersEngine

BATCH_SIZE = 8


def generate_with_model_generate(
    engine: TransformersEngine, token_ids: list[list[int]], decoding: DecodingConfig
) -> list[Generation]:
    """Greedy generations of the given prompts, batches of 8 longest first, through `model.generate`."""
    import torch
    from transformers import GenerationConfig

    config = GenerationConfig(
        max_new_tokens=decoding.max_new_tokens,
        do_sample=False,
        eos_token_id=engine.eos_token_ids,
        pad_token_id=engine.pad_token_id,
    )
    order = sorted(range(len(token_ids)), key=lambda index: -len(token_ids[index]))
    results: list[Generation | None] = [None] * len(token_ids)
    for start in range(0, len(order), BATCH_SIZE):
        batch = order[start : start + BATCH_SIZE]
        width = max(len(token_ids[index]) for index in batch)
        input_ids = torch.full((len(batch), width), engine.pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, index in enumerate(batch):
            ids = token_ids[index]
            input_ids[row, width - len(ids) :] = torch.tensor(ids)
            attention_mask[row, width - len(ids) :] = 1
        with torch.inference_mode():
            output = engine.model.generate(input_ids=input_ids, attention_mask=attention_mask, generation_config=config)
        for row, index in enumerate(batch):
            results[index] = engine._to_generation(len(token_ids[index]), output[row, width:].tolist())
    return results  # type: ignore[return-value]
