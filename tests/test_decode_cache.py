"""The decode cache and grouped attention compute what transformers' own cache and sdpa attention compute."""

from __future__ import annotations

import pytest
import torch
from transformers import DynamicCache, LlamaConfig, LlamaForCausalLM

from sdd_data.engines.decode_cache import growing_cache, register_grouped_decode
from sdd_data.engines.ragged_decode import Sampling, decode

PROMPTS = [[5, 9, 3], [7] * 11, [2, 4, 6, 8, 10, 12], [40, 41]]


def grouped_query_llama(attention: str) -> LlamaForCausalLM:
    """A random 2-layer Llama with 4 query heads sharing 2 key/value heads (the same weights for every call)."""
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=300,
        hidden_size=256,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=64,
        max_position_embeddings=256,
        attn_implementation=attention,
    )
    return LlamaForCausalLM(config).eval()


@pytest.fixture(scope="module")
def models() -> dict[str, LlamaForCausalLM]:
    return {"sdpa": grouped_query_llama("sdpa"), "grouped": grouped_query_llama(register_grouped_decode())}


def left_padded(prompts: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(map(len, prompts))
    ids = torch.zeros((len(prompts), width), dtype=torch.long)
    mask = torch.zeros_like(ids)
    for row, prompt in enumerate(prompts):
        ids[row, width - len(prompt) :] = torch.tensor(prompt)
        mask[row, width - len(prompt) :] = 1
    return ids, mask


def step_logits(model: LlamaForCausalLM, cache, steps: int = 6) -> list[torch.Tensor]:
    """Logits of the padded prompts and of `steps` fixed next tokens, fed one at a time through `cache`."""
    ids, mask = left_padded(PROMPTS)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    outputs = []
    with torch.inference_mode():
        outputs.append(model(input_ids=ids, attention_mask=mask, position_ids=positions, past_key_values=cache).logits)
        for step in range(steps):
            mask = torch.cat([mask, mask.new_ones((len(PROMPTS), 1))], dim=1)
            tokens = torch.full((len(PROMPTS), 1), 17 + step)
            position = positions[:, -1:] + step + 1
            outputs.append(
                model(input_ids=tokens, attention_mask=mask, position_ids=position, past_key_values=cache).logits
            )
    return outputs


def test_grouped_attention_and_growing_cache_give_sdpa_logits(models):
    expected = step_logits(models["sdpa"], DynamicCache(config=models["sdpa"].config))
    # capacity 2 is smaller than the prompt: the buffer grows on the first and later writes
    for capacity in (2, 64):
        got = step_logits(models["grouped"], growing_cache(models["grouped"].config, capacity))
        for want, have in zip(expected, got):
            torch.testing.assert_close(have[:, -1], want[:, -1], atol=1e-5, rtol=1e-5)


def checking_step_logits(model: LlamaForCausalLM, cache, steps: int = 4, fed: int = 3) -> list[torch.Tensor]:
    """Logits of steps that feed `fed` tokens per row, as drafts are checked: after each, every other row rejects
    its last token, which stays in the cache as a masked-out hole."""
    ids, mask = left_padded(PROMPTS)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    rejecting = torch.arange(len(PROMPTS)) % 2 == 0
    outputs = []
    with torch.inference_mode():
        model(input_ids=ids, attention_mask=mask, position_ids=positions, past_key_values=cache)
        next_position = positions[:, -1] + 1
        for step in range(steps):
            mask = torch.cat([mask, mask.new_ones((len(PROMPTS), fed))], dim=1)
            tokens = (torch.arange(fed) + 17 + 5 * step).expand(len(PROMPTS), fed)
            position_ids = next_position[:, None] + torch.arange(fed)
            outputs.append(
                model(input_ids=tokens, attention_mask=mask, position_ids=position_ids, past_key_values=cache).logits
            )
            mask[rejecting, -1] = 0
            next_position = next_position + fed - rejecting.long()
    return outputs


def test_grouped_attention_checks_several_tokens_with_holes_as_sdpa_does(models):
    expected = checking_step_logits(models["sdpa"], DynamicCache(config=models["sdpa"].config))
    got = checking_step_logits(models["grouped"], growing_cache(models["grouped"].config, 8))
    for want, have in zip(expected, got):
        torch.testing.assert_close(have, want, atol=1e-5, rtol=1e-5)


def test_padding_is_masked_out_in_the_grouped_step(models):
    """A row decoded alone and the same row left-padded beside longer rows get the same next-token logits."""
    alone = step_logits_for([PROMPTS[3]], models["grouped"])
    batched = step_logits_for(PROMPTS, models["grouped"])
    torch.testing.assert_close(batched[3], alone[0], atol=1e-5, rtol=1e-5)


def step_logits_for(prompts: list[list[int]], model: LlamaForCausalLM) -> torch.Tensor:
    ids, mask = left_padded(prompts)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    cache = growing_cache(model.config, ids.shape[1] + 1)
    with torch.inference_mode():
        model(input_ids=ids, attention_mask=mask, position_ids=positions, past_key_values=cache)
        mask = torch.cat([mask, mask.new_ones((len(prompts), 1))], dim=1)
        return model(
            input_ids=torch.full((len(prompts), 1), 23),
            attention_mask=mask,
            position_ids=positions[:, -1:] + 1,
            past_key_values=cache,
        ).logits[:, -1]


def test_rows_leaving_the_batch_keep_the_tokens_of_the_sdpa_model(models):
    rooms = [12, 5, 9, 3]
    unended = decode(models["sdpa"], PROMPTS, rooms, [-1], 0, Sampling(), "cpu")
    end_token = unended[0][2]  # the first row ends at its third token; others leave when they meet it or their room
    sdpa = decode(models["sdpa"], PROMPTS, rooms, [end_token], 0, Sampling(), "cpu")
    grouped = decode(models["grouped"], PROMPTS, rooms, [end_token], 0, Sampling(), "cpu")
    assert grouped == sdpa
    assert len(grouped[0]) <= 3 < rooms[0]


def test_auto_dtype_rounds_no_weights_on_cpu(monkeypatch):
    from sdd_data.models import loading

    monkeypatch.setattr(loading, "cpu_has_native_bfloat16", lambda: True)
    assert loading.resolve_dtype("auto", on_cpu=True, stored="float32") == "float32"
    assert loading.resolve_dtype("auto", on_cpu=True, stored="bfloat16") == "bfloat16"
    assert loading.resolve_dtype("auto", on_cpu=False, stored="float32") == "bfloat16"
    monkeypatch.setattr(loading, "cpu_has_native_bfloat16", lambda: False)
    assert loading.resolve_dtype("auto", on_cpu=True, stored="bfloat16") == "float32"


def test_the_stored_dtype_is_read_from_the_checkpoint_config(tmp_path):
    from sdd_data.models.loading import stored_dtype

    assert stored_dtype(tmp_path) is None
    (tmp_path / "config.json").write_text('{"torch_dtype": "bfloat16"}')
    assert stored_dtype(tmp_path) == "bfloat16"
    (tmp_path / "config.json").write_text('{"dtype": "float32", "torch_dtype": "bfloat16"}')
    assert stored_dtype(tmp_path) == "float32"
