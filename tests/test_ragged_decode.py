"""Ragged decoding against transformers' own `generate` and logits warpers (tiny random Llama, no download)."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM, GenerationConfig
from transformers.generation.logits_process import TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

from sdd_data.engines.ragged_decode import Sampling, _chooser, decode

PROMPTS = [[5, 9, 3], [7] * 11, [2, 4, 6, 8, 10, 12], [40, 41]]


@pytest.fixture(scope="module")
def tiny_model(tiny_llama_path):
    model = AutoModelForCausalLM.from_pretrained(tiny_llama_path, dtype=torch.float32)
    return model.eval()


def generate_alone(model, prompt: list[int], max_new_tokens: int, end_ids: list[int]) -> list[int]:
    config = GenerationConfig(max_new_tokens=max_new_tokens, do_sample=False, eos_token_id=end_ids, pad_token_id=0)
    with torch.inference_mode():
        output = model.generate(input_ids=torch.tensor([prompt]), generation_config=config)
    return output[0, len(prompt) :].tolist()


def test_greedy_rows_equal_generate_on_each_row_alone(tiny_model):
    rooms = [12, 5, 9, 1]
    batched = decode(tiny_model, PROMPTS, rooms, [99999], 0, Sampling(), "cpu")
    for prompt, room, tokens in zip(PROMPTS, rooms, batched):
        assert tokens == generate_alone(tiny_model, prompt, room, [99999])
        assert len(tokens) == room  # no end token in this vocabulary's reach: every row uses its whole room


def test_a_row_leaves_the_batch_at_its_end_token(tiny_model):
    alone = [generate_alone(tiny_model, prompt, 10, [99999]) for prompt in PROMPTS]
    end_token = alone[1][0]  # the second row ends at once; the rows without this token run on without it
    batched = decode(tiny_model, PROMPTS, [10] * 4, [end_token], 0, Sampling(), "cpu")
    assert batched[1] == [end_token]
    for tokens, reference in zip(batched, alone):
        stop = reference.index(end_token) + 1 if end_token in reference else len(reference)
        assert tokens == reference[:stop]
    assert any(len(tokens) == 10 for tokens in batched), "some row should outlive the one that ended"


@pytest.mark.parametrize("sampling", [Sampling(0.7, 1.0, 5), Sampling(1.3, 0.8, 0), Sampling(1.0, 0.5, 20)])
def test_sampling_keeps_the_tokens_transformers_would_keep(sampling):
    torch.manual_seed(0)
    logits = torch.randn(6, 300) * 3
    scores = TemperatureLogitsWarper(sampling.temperature)(None, logits.clone())
    if sampling.top_k:
        scores = TopKLogitsWarper(sampling.top_k)(None, scores)
    if sampling.top_p < 1:
        scores = TopPLogitsWarper(sampling.top_p)(None, scores)
    allowed = torch.isfinite(scores)
    choose = _chooser(sampling)
    for _ in range(200):
        picked = choose(logits)
        assert allowed[torch.arange(6), picked].all()
