"""Ragged decoding against transformers' own `generate` and logits warpers (tiny random Llama, no download)."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM, GenerationConfig
from transformers.generation.logits_process import TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

from sdd_data.engines.decode_cache import register_grouped_decode
from sdd_data.engines.ragged_decode import DecodeCounts, Sampling, _chooser, _Lookup, decode

PROMPTS = [[5, 9, 3], [7] * 11, [2, 4, 6, 8, 10, 12], [40, 41]]


@pytest.fixture(scope="module")
def tiny_model(tiny_llama_path):
    model = AutoModelForCausalLM.from_pretrained(tiny_llama_path, dtype=torch.float32)
    return model.eval()


@pytest.fixture(scope="module", params=["sdpa", "grouped"])
def any_attention_model(request, tiny_llama_path):
    """The tiny model with transformers' sdpa attention, and with the grouped decode attention the engine uses."""
    implementation = register_grouped_decode() if request.param == "grouped" else "sdpa"
    model = AutoModelForCausalLM.from_pretrained(
        tiny_llama_path, dtype=torch.float32, attn_implementation=implementation
    )
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


def decode_one_row(model, prompt: list[int], lookup: int) -> tuple[list[int], list[tuple[list[int], list[int]]]]:
    """A row's new tokens, and the token ids and positions each forward pass was fed (the prompt's pass first)."""
    fed = []

    def record(module, args, kwargs):
        fed.append((kwargs["input_ids"][0].tolist(), kwargs["position_ids"][0].tolist()))

    hook = model.register_forward_pre_hook(record, with_kwargs=True)
    try:
        (generated,) = decode(model, [prompt], [20], [99999], 0, Sampling(), "cpu", lookup)
    finally:
        hook.remove()
    return generated, fed


@pytest.mark.parametrize("lookup", [0, 4])
def test_each_row_continues_at_the_position_after_its_last_token(tiny_model, lookup):
    for prompt in LOOKUP_PROMPTS:  # one row at a time: its slot in the batch never moves
        generated, fed = decode_one_row(tiny_model, prompt, lookup)
        assert fed[1][1][0] == len(prompt)  # the first new token sits right after the prompt
        kept_tokens = []  # what the row fed and kept, step by step
        for (tokens, positions), (_, next_positions) in zip(fed[1:], fed[2:]):
            assert positions == list(range(positions[0], positions[0] + len(tokens)))
            kept = next_positions[0] - positions[0]
            assert 1 <= kept <= len(tokens)
            kept_tokens += tokens[:kept]
        assert kept_tokens == generated[: len(kept_tokens)]
        assert len(kept_tokens) + len(fed[-1][0]) >= len(generated) - 1  # the last new token is never fed


def test_a_draft_is_what_followed_the_last_tokens_before():
    lookup = _Lookup([1, 2, 3, 4, 5, 9, 2, 3])
    assert lookup.draft(2) == [4, 5]  # "2 3" was followed by "4 5"
    lookup.extend([7])
    assert lookup.draft(3) == []  # "3 7" and "7" alone (too short a match) were never seen
    lookup.extend([1, 2, 3, 4, 8, 1, 2, 3])
    assert lookup.draft(1) == [4]  # the latest "1 2 3" was followed by 4 too, then 8
    assert lookup.draft(0) == []


# Rows that repeat themselves (their drafts are then found in their own prompt or answer), and rows that do not.
LOOKUP_PROMPTS = [[5, 9, 3, 5, 9, 3, 5, 9], [7] * 11, [2, 4, 6, 8, 10, 12], [40, 41, 40, 41, 40], [3, 1, 4, 1, 5, 9]]


@pytest.mark.parametrize("lookup", [1, 4, 8])
def test_prompt_lookup_makes_the_tokens_plain_greedy_decoding_makes(any_attention_model, lookup):
    rooms = [40, 25, 33, 40, 7]
    plain_counts, counts = DecodeCounts(), DecodeCounts()
    plain = decode(any_attention_model, LOOKUP_PROMPTS, rooms, [99999], 0, Sampling(), "cpu", 0, plain_counts)
    drafted = decode(any_attention_model, LOOKUP_PROMPTS, rooms, [99999], 0, Sampling(), "cpu", lookup, counts)
    assert drafted == plain
    assert counts.tokens == plain_counts.tokens == sum(rooms)
    assert plain_counts.steps == max(rooms) - 1 and plain_counts.drafted == 0  # one token a step after the prompt's
    assert counts.accepted > 0, "some drafts should be right: the random model repeats itself"
    assert counts.steps < plain_counts.steps
    assert counts.drafted >= counts.accepted


def test_prompt_lookup_stops_each_row_at_its_end_token(any_attention_model):
    alone = decode(any_attention_model, LOOKUP_PROMPTS, [30] * 5, [99999], 0, Sampling(), "cpu")
    end_token = alone[0][len(alone[0]) // 2]  # a token met mid-way; rows without it run their whole room
    plain = decode(any_attention_model, LOOKUP_PROMPTS, [30] * 5, [end_token], 0, Sampling(), "cpu")
    counts = DecodeCounts()
    drafted = decode(any_attention_model, LOOKUP_PROMPTS, [30] * 5, [end_token], 0, Sampling(), "cpu", 6, counts)
    assert drafted == plain
    assert any(len(tokens) < 30 for tokens in drafted) and any(len(tokens) == 30 for tokens in drafted)
    assert counts.accepted > 0


def test_sampling_ignores_prompt_lookup(tiny_model):
    torch.manual_seed(3)
    plain = decode(tiny_model, PROMPTS, [9] * 4, [99999], 0, Sampling(0.9), "cpu")
    torch.manual_seed(3)
    counts = DecodeCounts()
    looked_up = decode(tiny_model, PROMPTS, [9] * 4, [99999], 0, Sampling(0.9), "cpu", 5, counts)
    assert looked_up == plain and counts.drafted == 0
