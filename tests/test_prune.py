"""Depth pruning: block-score maths, checkpoint surgery, the stage, and real SmolLM2 / vLLM round trips."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import transformers
from cores import engine_environment
from data_samples import ALPACA, ALPACA_HELD_OUT

from sdd_data.errors import SddError
from sdd_data.models import load_causal_lm
from sdd_data.prune import PruneConfig, prune, save_pruned_checkpoint
from sdd_data.prune.block_scores import (
    angular_distance,
    block_influence,
    choose_contiguous,
    choose_lowest,
    last_token_index,
    last_token_states,
    layer_distances,
    masked_cosine_sum,
    row_cosine,
)
from sdd_data.prune.calibration import calibration_batches, calibration_texts, score_blocks
from sdd_data.prune.checkpoint import remove_blocks

# --- the maths, on hand-made tensors ---------------------------------------------------------------


def test_angular_distance_of_parallel_orthogonal_and_antiparallel_vectors():
    a = torch.tensor([[1.0, 2.0, 0.0], [1.0, 0.0, 0.0], [1.0, 2.0, 3.0]])
    b = torch.tensor([[2.0, 4.0, 0.0], [0.0, 5.0, 0.0], [-1.0, -2.0, -3.0]])
    # arccos is steep near ±1: one fp32 rounding of the cosine (6e-8) moves d by up to 1.1e-4 there.
    assert angular_distance(a, b).tolist() == pytest.approx([0.0, 0.5, 1.0], abs=2e-4)


def test_cosine_is_clamped_so_equal_vectors_never_give_nan():
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(2000, 64, generator=generator)
    unclamped = (a * 3 * a).sum(-1) / (a.norm(dim=-1) * (3 * a).norm(dim=-1))
    assert (unclamped > 1).any(), "fp32 rounding should push some raw cosines past 1"
    assert row_cosine(a, 3 * a).max() <= 1.0
    distances = angular_distance(a, 3 * a)
    assert torch.isfinite(distances).all()
    assert distances.max() < 1e-3


def test_scores_are_computed_in_fp32_and_a_zero_vector_is_not_nan():
    a = torch.tensor([[1.0, 0.5], [0.0, 0.0]], dtype=torch.bfloat16)
    b = torch.tensor([[1.0, 0.5], [1.0, 1.0]], dtype=torch.bfloat16)
    assert row_cosine(a, b).dtype == torch.float32
    assert angular_distance(a, b).tolist() == pytest.approx([0.0, 0.5], abs=1e-3)


@pytest.mark.parametrize(
    "mask, expected",
    [
        ([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], [2, 4]),  # right padding
        ([[0, 0, 1, 1, 1], [0, 0, 0, 0, 1]], [4, 4]),  # left padding
    ],
)
def test_last_token_index_handles_left_and_right_padding(mask, expected):
    assert last_token_index(torch.tensor(mask)).tolist() == expected


def test_last_token_states_picks_the_last_real_token_of_each_row():
    hidden = torch.arange(2 * 4 * 3, dtype=torch.float32).reshape(2, 4, 3)
    mask = torch.tensor([[1, 1, 0, 0], [0, 1, 1, 1]])
    picked = last_token_states(hidden, mask)
    assert torch.equal(picked, torch.stack([hidden[0, 1], hidden[1, 3]]))


def test_a_row_of_only_padding_is_refused():
    with pytest.raises(SddError, match="no tokens"):
        last_token_index(torch.tensor([[1, 1], [0, 0]]))


def test_layer_distances_compare_inputs_n_blocks_apart():
    # 4 blocks: 5 states of one row, rotating by 45° per block, so d(l, n) = n / 4.
    states = torch.tensor([[[math.cos(k * math.pi / 4), math.sin(k * math.pi / 4)]] for k in range(5)])
    assert layer_distances(states, 1)[:, 0].tolist() == pytest.approx([0.25] * 4, abs=1e-6)
    assert layer_distances(states, 2)[:, 0].tolist() == pytest.approx([0.5] * 3, abs=1e-6)
    assert layer_distances(states, 3).shape == (2, 1)
    for n in (0, 4):
        with pytest.raises(SddError, match="can remove 1 to 3"):
            layer_distances(states, n)


def test_choose_contiguous_takes_the_smallest_distance_and_works_for_one_block():
    assert choose_contiguous([0.4, 0.1, 0.3], 1) == [1]
    assert choose_contiguous([0.4, 0.3, 0.2, 0.25], 3) == [2, 3, 4]


def test_masked_cosine_sum_ignores_padding():
    block_input = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]])
    block_output = torch.tensor([[[1.0, 0.0], [1.0, 0.0], [-1.0, -1.0]]])  # cos 1, 0, and -1 on the pad
    total, count = masked_cosine_sum(block_input, block_output, torch.tensor([[1, 1, 0]]))
    assert (total, count) == (pytest.approx(1.0), 2)
    left_total, left_count = masked_cosine_sum(block_input, block_output, torch.tensor([[0, 1, 1]]))
    assert (left_total, left_count) == (pytest.approx(-1.0), 2)


def test_block_influence_and_lowest_blocks_need_not_be_contiguous():
    influence = block_influence([9.0, 5.0, 8.0, 2.0], [10, 10, 10, 10])
    assert influence == pytest.approx([0.1, 0.5, 0.2, 0.8])
    assert choose_lowest(influence, 2) == [0, 2]
    assert choose_lowest(influence, 1) == [0]
    with pytest.raises(SddError):
        choose_lowest(influence, 4)


# --- checkpoint surgery on small random models ----------------------------------------------------

ARCHITECTURES = {
    "llama": (transformers.LlamaConfig, {}),
    "mistral": (transformers.MistralConfig, {}),
    "qwen2": (transformers.Qwen2Config, {"use_sliding_window": True, "sliding_window": 8, "max_window_layers": 2}),
    "qwen3": (transformers.Qwen3Config, {}),
    "smollm3": (transformers.SmolLM3Config, {"no_rope_layers": [1, 1, 0, 1, 1, 0]}),
}


def build_model(
    folder: Path,
    tokenizer_path: str,
    model_type: str = "llama",
    layers: int = 6,
    heads: tuple[int, int, int] = (2, 2, 64),
    tied: bool = True,
) -> str:
    """A random model of `layers` blocks and (query heads, KV heads, head_dim) `heads`, with the tiny ChatML
    tokenizer, saved to `folder`."""
    config_class, extra = ARCHITECTURES[model_type]
    tokenizer = transformers.AutoTokenizer.from_pretrained(tokenizer_path)
    end_of_turn = tokenizer.convert_tokens_to_ids("<|im_end|>")
    config = config_class(
        vocab_size=len(tokenizer),
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=layers,
        num_attention_heads=heads[0],
        num_key_value_heads=heads[1],
        head_dim=heads[2],
        max_position_embeddings=512,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=end_of_turn,
        pad_token_id=end_of_turn,
        tie_word_embeddings=tied,
        **extra,
    )
    torch.manual_seed(1)
    model = transformers.AutoModelForCausalLM.from_config(config)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="module")
def six_block_llama(tiny_llama_path, tmp_path_factory) -> str:
    """A random 6-block Llama sharing the tiny ChatML tokenizer."""
    return build_model(tmp_path_factory.mktemp("six-block-llama"), tiny_llama_path)


class SkippedBlock(torch.nn.Module):
    """Stands in for a removed decoder block: returns its input."""

    def forward(self, hidden_states, *args, **kwargs):
        return hidden_states


def logits_skipping(model_path: str, blocks: list[int], input_ids):
    """Logits of the unpruned model with `blocks` replaced by identities (no cache)."""
    model = transformers.AutoModelForCausalLM.from_pretrained(model_path).eval()
    for block in blocks:
        model.model.layers[block] = SkippedBlock()
    with torch.inference_mode():
        return model(input_ids=input_ids, use_cache=False).logits


@pytest.mark.parametrize("model_type", sorted(ARCHITECTURES))
def test_pruned_model_equals_the_original_forward_that_skips_those_blocks(model_type, tiny_llama_path, tmp_path):
    source = build_model(tmp_path / "source", tiny_llama_path, model_type)
    blocks = [1, 2, 5]
    output = save_pruned_checkpoint(source, blocks, tmp_path / "pruned")

    before, after = (json.loads((path / "config.json").read_text()) for path in (Path(source), output))
    assert after["num_hidden_layers"] == 3
    for key, value in before.items():
        if isinstance(value, list) and len(value) == 6:  # every per-layer list keeps the kept layers' entries
            assert after[key] == [value[index] for index in (0, 3, 4)], key
    pruned = transformers.AutoModelForCausalLM.from_pretrained(output).eval()
    assert [layer.self_attn.layer_idx for layer in pruned.model.layers] == [0, 1, 2]
    input_ids = torch.tensor([[1, 5, 9, 30, 2, 7, 11, 40, 3, 6, 12, 50]])
    with torch.inference_mode():
        pruned_logits = pruned(input_ids=input_ids, use_cache=False).logits
    torch.testing.assert_close(pruned_logits, logits_skipping(source, blocks, input_ids), atol=1e-5, rtol=1e-5)


def test_qwen2_and_smollm3_keep_their_per_layer_lists(tiny_llama_path, tmp_path):
    qwen2 = save_pruned_checkpoint(build_model(tmp_path / "q", tiny_llama_path, "qwen2"), [0, 3], tmp_path / "qp")
    assert json.loads((qwen2 / "config.json").read_text())["layer_types"] == (
        ["full_attention"] + ["sliding_attention"] * 3
    )
    smollm3 = save_pruned_checkpoint(build_model(tmp_path / "s", tiny_llama_path, "smollm3"), [2], tmp_path / "sp")
    assert json.loads((smollm3 / "config.json").read_text())["no_rope_layers"] == [1, 1, 1, 1, 0]


@pytest.mark.parametrize("reload", [False, True], ids=["in-memory", "reloaded"])
def test_generation_with_the_kv_cache_works_after_renumbering(reload, six_block_llama, tmp_path):
    if reload:
        output = save_pruned_checkpoint(six_block_llama, [0, 2, 3], tmp_path / "pruned")
        model = transformers.AutoModelForCausalLM.from_pretrained(output).eval()
    else:
        model = load_causal_lm(six_block_llama)
        assert remove_blocks(model, [0, 2, 3]) == [1, 4, 5]
    assert [layer.self_attn.layer_idx for layer in model.model.layers] == [0, 1, 2]
    prompt = torch.tensor([[1, 5, 9, 30, 2]])
    settings = {"max_new_tokens": 12, "min_new_tokens": 12, "do_sample": False, "pad_token_id": 2}
    with torch.inference_mode():
        cached = model.generate(prompt, use_cache=True, **settings)
        uncached = model.generate(prompt, use_cache=False, **settings)
    assert cached.shape[1] == prompt.shape[1] + 12
    assert torch.equal(cached, uncached)


def test_the_checkpoint_keeps_dtype_tokenizer_chat_template_and_generation_config(six_block_llama, tmp_path):
    source = tmp_path / "bf16"
    transformers.AutoModelForCausalLM.from_pretrained(six_block_llama, dtype=torch.bfloat16).save_pretrained(source)
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        if (Path(six_block_llama) / name).exists():
            shutil.copy(Path(six_block_llama) / name, source / name)
    output = save_pruned_checkpoint(str(source), [4], tmp_path / "pruned")
    assert json.loads((output / "config.json").read_text())["dtype"] == "bfloat16"
    assert (output / "generation_config.json").is_file()
    assert list(output.glob("*.safetensors")) and not list(output.glob("*.bin"))
    tokenizer = transformers.AutoTokenizer.from_pretrained(output)
    assert "<|im_start|>assistant" in tokenizer.apply_chat_template(
        [{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True
    )
    assert not [path.name for path in tmp_path.iterdir() if path.name.startswith(".")], "no staging folder left"


def test_unsupported_architecture_is_refused_by_name(tmp_path):
    (tmp_path / "gpt2").mkdir()
    (tmp_path / "gpt2" / "config.json").write_text(
        json.dumps({"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"]})
    )
    with pytest.raises(SddError, match="GPT2LMHeadModel.*llama, mistral, qwen2"):
        save_pruned_checkpoint(str(tmp_path / "gpt2"), [0], tmp_path / "out")


@pytest.mark.parametrize(
    "blocks, message",
    [
        ([6], "do not exist.*0..5"),
        ([-1], "do not exist"),
        ([1, 1], "more than once"),
        (list(range(6)), "all 6 blocks"),
        ([], "no blocks"),
    ],
)
def test_bad_block_requests_are_refused(six_block_llama, tmp_path, blocks, message):
    with pytest.raises(SddError, match=message):
        save_pruned_checkpoint(six_block_llama, blocks, tmp_path / "pruned")
    assert not list(tmp_path.iterdir()), "nothing is written for a refused request"


def test_an_existing_output_is_not_overwritten(six_block_llama, tmp_path):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "keep.txt").write_text("mine")
    with pytest.raises(SddError, match="already exists"):
        save_pruned_checkpoint(six_block_llama, [0], tmp_path / "taken")
    assert (tmp_path / "taken" / "keep.txt").read_text() == "mine"


# --- scoring plumbing and the stage ---------------------------------------------------------------


def calibration_rows() -> list[dict]:
    return [
        {
            "instruction": f"Question {index}: what is {index} + {index}?",
            "input": "" if index % 2 else "context",
            "response": "The answer is " + str(2 * index) + "." * (index % 5),
        }
        for index in range(7)
    ]


def test_hooked_scores_equal_scores_from_hidden_states_without_the_final_norm(six_block_llama):
    tokenizer = transformers.AutoTokenizer.from_pretrained(six_block_llama)
    texts = calibration_texts(calibration_rows(), tokenizer)
    assert texts[0].startswith("<|im_start|>user\n") and "<|im_start|>assistant\nThe answer is 0" in texts[0]
    model = transformers.AutoModelForCausalLM.from_pretrained(six_block_llama).eval()
    scores = score_blocks(model, calibration_batches(tokenizer, texts, 64, 3), n=2, show_progress=False)

    model.model.norm = torch.nn.Identity()  # so hidden_states[-1] is the last block's raw output
    distance_sums, cosine_sums, tokens = torch.zeros(5), [0.0] * 6, 0
    for text in texts:
        input_ids = tokenizer(text, add_special_tokens=False, return_tensors="pt")["input_ids"]
        mask = torch.ones_like(input_ids)
        with torch.inference_mode():
            states = model(input_ids=input_ids, output_hidden_states=True).hidden_states
        last = torch.stack([last_token_states(state, mask) for state in states])
        distance_sums += layer_distances(last, 2)[:, 0]
        for block in range(6):
            cosine_sums[block] += masked_cosine_sum(states[block], states[block + 1], mask)[0]
        tokens += input_ids.shape[1]
    assert scores.rows == len(texts) and scores.tokens == tokens
    assert scores.angular_distance == pytest.approx((distance_sums / len(texts)).tolist(), abs=1e-5)
    assert scores.block_influence == pytest.approx(block_influence(cosine_sums, [tokens] * 6), abs=1e-5)


def test_scores_do_not_depend_on_padding(six_block_llama):
    tokenizer = transformers.AutoTokenizer.from_pretrained(six_block_llama)
    model = transformers.AutoModelForCausalLM.from_pretrained(six_block_llama).eval()
    texts = calibration_texts(calibration_rows(), tokenizer)
    one = score_blocks(model, calibration_batches(tokenizer, texts, 64, 1), 1, show_progress=False)
    padded = score_blocks(model, calibration_batches(tokenizer, texts, 64, 7), 1, show_progress=False)
    assert padded.angular_distance == pytest.approx(one.angular_distance, abs=1e-5)
    assert padded.block_influence == pytest.approx(one.block_influence, abs=1e-5)


def test_plain_text_is_used_when_there_is_no_chat_template(six_block_llama):
    tokenizer = transformers.AutoTokenizer.from_pretrained(six_block_llama)
    tokenizer.chat_template = None
    assert calibration_texts(calibration_rows()[:1], tokenizer) == [
        "Question 0: what is 0 + 0?\ncontext\n\nThe answer is 0"
    ]


@pytest.mark.parametrize("method", ["angular", "block-influence"])
def test_prune_stage_scores_removes_and_records(method, six_block_llama, tmp_path, capsys):
    output = tmp_path / "pruned"
    result = prune(
        PruneConfig(
            model=six_block_llama,
            output=str(output),
            blocks_to_remove=2,
            method=method,
            calibration_rows=12,
            batch_size=4,
            max_length=64,
        ),
        show_progress=False,
    )
    printed = capsys.readouterr().out
    assert len(result.angular_distance) == 5 and len(result.block_influence) == 6
    if method == "angular":
        start = min(range(5), key=result.angular_distance.__getitem__)
        assert result.removed_blocks == [start, start + 1]
        assert "<- removed" in printed and "start  blocks" in printed
    else:
        assert result.removed_blocks == sorted(sorted(range(6), key=result.block_influence.__getitem__)[:2])
        assert printed.count("<- removed") == 2
    assert f"removing 0-based blocks {result.removed_blocks[0]}, {result.removed_blocks[1]} of 6" in printed
    record = json.loads((output / "sdd_data_prune.json").read_text())
    assert record["method"] == method and record["removed_blocks"] == result.removed_blocks
    assert record["calibration"]["source"] == "example.jsonl" and record["calibration"]["rows"] == 12
    assert record["scores"]["block_influence"] == pytest.approx(result.block_influence)
    assert len(transformers.AutoModelForCausalLM.from_pretrained(output).model.layers) == 4


def test_prune_stage_with_explicit_blocks_skips_scoring(six_block_llama, tmp_path):
    result = prune(
        PruneConfig(model=six_block_llama, output=str(tmp_path / "pruned"), blocks="4, 1"), show_progress=False
    )
    assert result.removed_blocks == [1, 4] and result.method == "explicit" and result.block_influence is None
    record = json.loads((tmp_path / "pruned" / "sdd_data_prune.json").read_text())
    assert record["calibration"] is None and record["num_blocks_after"] == 4


def test_scoring_in_bfloat16_still_saves_the_checkpoint_dtype(six_block_llama, tmp_path):
    result = prune(
        PruneConfig(
            model=six_block_llama,
            output=str(tmp_path / "pruned"),
            blocks_to_remove=1,
            dtype="bfloat16",
            calibration_rows=4,
        ),
        show_progress=False,
    )
    assert json.loads((result.output / "config.json").read_text())["dtype"] == "float32"
    assert transformers.AutoModelForCausalLM.from_pretrained(result.output).dtype == torch.float32


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({}, "how many blocks"),
        ({"blocks_to_remove": 2, "method": "random"}, "unknown method"),
        ({"blocks_to_remove": 6}, "can remove 1 to 5"),
        ({"blocks": "1,x"}, "comma list"),
        ({"blocks": "1,2", "blocks_to_remove": 3}, "blocks_to_remove is 3"),
        ({"blocks": "9"}, "do not exist"),
        ({"blocks_to_remove": 1, "calibration_data": "missing/rows.json"}, "does not exist"),
        ({"blocks_to_remove": 1, "dtype": "int8"}, "unknown dtype"),
    ],
)
def test_prune_stage_refuses_bad_configs(overrides, message, six_block_llama, tmp_path):
    with pytest.raises(SddError, match=message):
        prune(PruneConfig(model=six_block_llama, output=str(tmp_path / "pruned"), **overrides), show_progress=False)
    assert not (tmp_path / "pruned").exists()


# --- the real SmolLM2 and vLLM (slow) -------------------------------------------------------------


@pytest.fixture(scope="module")
def smollm2_pruned_by_angle(smollm2_path, tmp_path_factory):
    output = tmp_path_factory.mktemp("smollm2-angular") / "pruned"
    config = PruneConfig(
        model=smollm2_path,
        output=str(output),
        blocks_to_remove=4,
        calibration_data=str(ALPACA),
        calibration_rows=64,
        max_length=128,
    )
    return prune(config, show_progress=False)


def greedy_answer(model_path: Path | str, question: str, max_new_tokens: int = 40) -> str:
    tokenizer = transformers.AutoTokenizer.from_pretrained(model_path)
    model = transformers.AutoModelForCausalLM.from_pretrained(model_path).eval()
    inputs = tokenizer.apply_chat_template(
        [{"role": "user", "content": question}], add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    with torch.inference_mode():
        output = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
    return tokenizer.decode(output[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)


def looks_like_english(text: str) -> bool:
    words = text.split()
    alphabetic = [word for word in words if word.strip(".,;:!?'\"()").isalpha()]
    return len(words) >= 5 and len(alphabetic) >= 0.7 * len(words) and len(set(words)) >= 0.3 * len(words)


def held_out_nll(model, tokenizer) -> float:
    """Mean next-token NLL on the 8 held-out Alpaca rows (never calibration rows), rendered with the chat template."""
    from sdd_data.data.sources import SourceSpec, load_rows

    rows = load_rows(SourceSpec(data=str(ALPACA))).rows[-ALPACA_HELD_OUT:]
    total, count = 0.0, 0
    with torch.inference_mode():
        for text in calibration_texts(rows, tokenizer):
            input_ids = tokenizer(text, add_special_tokens=False, truncation=True, max_length=128, return_tensors="pt")[
                "input_ids"
            ]
            total += model(input_ids=input_ids, labels=input_ids).loss.item() * (input_ids.shape[1] - 1)
            count += input_ids.shape[1] - 1
    return total / count


@pytest.mark.slow
def test_smollm2_pruned_by_angular_distance_reloads_and_generates(smollm2_pruned_by_angle, smollm2_path):
    result = smollm2_pruned_by_angle
    assert result.num_blocks == 30 and len(result.removed_blocks) == 4
    start = result.removed_blocks[0]
    assert result.removed_blocks == list(range(start, start + 4))
    assert len(result.angular_distance) == 27 and all(0 <= value <= 1 for value in result.angular_distance)
    assert result.angular_distance[start] == min(result.angular_distance)

    tokenizer = transformers.AutoTokenizer.from_pretrained(result.output)
    model = transformers.AutoModelForCausalLM.from_pretrained(result.output).eval()
    assert model.config.num_hidden_layers == 26 and len(model.model.layers) == 26
    # Unhealed, the model is damaged but still a language model, far better than cutting where the
    # angular distance is largest (uniform guessing would be ln(49152) = 10.8 nats).
    pruned_nll = held_out_nll(model, tokenizer)
    worst_start = max(range(27), key=result.angular_distance.__getitem__)
    worst = load_causal_lm(smollm2_path)
    remove_blocks(worst, range(worst_start, worst_start + 4))
    assert pruned_nll < held_out_nll(worst, tokenizer) - 2.0
    assert pruned_nll < 8.0

    inputs = tokenizer("The capital of France is", return_tensors="pt")
    settings = {"max_new_tokens": 24, "min_new_tokens": 24, "do_sample": False}
    with torch.inference_mode():
        cached = model.generate(**inputs, use_cache=True, **settings)
        uncached = model.generate(**inputs, use_cache=False, **settings)
    assert torch.equal(cached, uncached)
    assert len(tokenizer.decode(cached[0, inputs["input_ids"].shape[1] :]).split()) >= 5


VLLM_SCRIPT = textwrap.dedent(
    """
    import json, sys
    from vllm import LLM, SamplingParams

    if __name__ == "__main__":
        model_path, output_file = sys.argv[1:3]
        llm = LLM(model=model_path, dtype="float32", enforce_eager=True, max_model_len=512, seed=0)
        messages = [{"role": "user", "content": "Give three tips for staying healthy."}]
        outputs = llm.chat([messages], SamplingParams(temperature=0.0, max_tokens=40))
        layers = llm.llm_engine.model_config.hf_config.num_hidden_layers
        json.dump({"text": outputs[0].outputs[0].text, "layers": layers}, open(output_file, "w"))
    """
)


def vllm_greedy_answer(model_path: str | Path, tmp_path: Path) -> dict:
    """VLLM_SCRIPT's answer (text, number of layers) for a checkpoint, in a fresh process."""
    script, output_file = tmp_path / "run_vllm.py", tmp_path / "out.json"
    script.write_text(VLLM_SCRIPT)
    environment = engine_environment(VLLM_CPU_KVCACHE_SPACE="1")
    completed = subprocess.run(
        [sys.executable, str(script), str(model_path), str(output_file)],
        check=False,
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    return json.loads(output_file.read_text())


@pytest.mark.slow
def test_pruned_smollm2_runs_in_vllm(pruned_smollm2_path, tmp_path):
    result = vllm_greedy_answer(pruned_smollm2_path, tmp_path)
    assert result["layers"] == 26
    assert looks_like_english(result["text"]), result["text"]
    transformers_answer = greedy_answer(pruned_smollm2_path, "Give three tips for staying healthy.")
    assert result["text"].split()[:5] == transformers_answer.split()[:5]


def test_config_lists_that_are_not_per_layer_keep_every_entry(tiny_llama_path, tmp_path):
    folder = Path(build_model(tmp_path / "l", tiny_llama_path, "llama", layers=4))
    config = json.loads((folder / "config.json").read_text())
    config["my_scores"] = [0.1, 0.2, 0.3, 0.4]  # as long as the layer stack, by chance
    (folder / "config.json").write_text(json.dumps(config))
    pruned = save_pruned_checkpoint(str(folder), [1], tmp_path / "lp")
    saved = json.loads((pruned / "config.json").read_text())
    assert saved["my_scores"] == [0.1, 0.2, 0.3, 0.4] and saved["num_hidden_layers"] == 3
