"""JSD maths, scoring inputs, the transformers scorer and the tokenizer check, on a tiny random Llama."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest
import torch
import transformers

from sdd_data.errors import SddError
from sdd_data.models import check_same_tokenizer
from sdd_data.select.degrade import LN2, jsd_from_logits, masked_mean_jsd, topk_jsd
from sdd_data.select.score_inputs import scoring_rows
from sdd_data.select.scorer_base import ScorerOptions
from sdd_data.select.scorers import cached_scores, row_key
from sdd_data.select.transformers_scorer import TransformersScorer
from sdd_data.select.vector_cache import VectorCache

ROWS = [
    {"id": "a", "instruction": "What is 12 + 30?", "input": "", "response": "The answer is 42."},
    {
        "id": "b",
        "instruction": "Give three tips for staying healthy.",
        "input": "",
        "response": "Eat well, sleep, and move every day.",
    },
    {"id": "c", "instruction": "Rewrite the response", "input": "The quick brown fox.", "response": "A fox jumps."},
]


def numpy_jsd(logits_p: np.ndarray, logits_q: np.ndarray) -> np.ndarray:
    """JSD per position in float64 straight from the definition."""

    def softmax(logits):
        shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
        return shifted / shifted.sum(axis=-1, keepdims=True)

    p, q = softmax(logits_p.astype(np.float64)), softmax(logits_q.astype(np.float64))
    m = (p + q) / 2
    return 0.5 * (p * np.log(p / m)).sum(-1) + 0.5 * (q * np.log(q / m)).sum(-1)


def test_jsd_matches_float64_numpy_is_symmetric_and_bounded():
    rng = np.random.default_rng(0)
    logits_p = rng.normal(scale=3.0, size=(6, 5, 300)).astype(np.float32)
    logits_q = rng.normal(scale=3.0, size=(6, 5, 300)).astype(np.float32)
    ours = jsd_from_logits(torch.from_numpy(logits_p), torch.from_numpy(logits_q)).numpy()
    assert np.allclose(ours, numpy_jsd(logits_p, logits_q), atol=1e-5)
    assert np.allclose(ours, jsd_from_logits(torch.from_numpy(logits_q), torch.from_numpy(logits_p)).numpy())
    assert jsd_from_logits(torch.from_numpy(logits_p), torch.from_numpy(logits_p)).abs().max() < 1e-6
    assert (ours >= 0).all() and (ours <= LN2).all()
    disjoint = torch.full((2, 4), -1e4)
    disjoint[0, 0] = disjoint[1, 3] = 1e4
    assert jsd_from_logits(disjoint[0], disjoint[1]).item() == pytest.approx(math.log(2), abs=1e-6)


def test_jsd_of_masked_tokens_is_finite():
    logits_p = torch.tensor([[0.0, 1.0, -math.inf], [0.0, 0.0, 0.0]])
    logits_q = torch.tensor([[0.0, 1.0, -math.inf], [0.0, -math.inf, 0.0]])
    values = jsd_from_logits(logits_p, logits_q)
    assert torch.isfinite(values).all() and values[0] == 0 and values[1] > 0


def test_masked_mean_ignores_padding():
    rng = np.random.default_rng(1)
    logits_p = torch.from_numpy(rng.normal(size=(2, 6, 50)).astype(np.float32))
    logits_q = torch.from_numpy(rng.normal(size=(2, 6, 50)).astype(np.float32))
    mask = torch.tensor([[1, 1, 1, 0, 0, 0], [0, 0, 1, 1, 1, 1]])
    means = masked_mean_jsd(logits_p, logits_q, mask)
    garbage = logits_p.clone()
    garbage[mask == 0] = 1e3
    assert torch.allclose(masked_mean_jsd(garbage, logits_q, mask), means)
    expected = numpy_jsd(logits_p.numpy(), logits_q.numpy())
    assert means[0].item() == pytest.approx(expected[0, :3].mean(), abs=1e-5)
    assert means[1].item() == pytest.approx(expected[1, 2:].mean(), abs=1e-5)


def test_topk_jsd_is_exact_with_the_whole_vocabulary_and_a_lower_bound_with_less():
    rng = np.random.default_rng(2)
    logits_p, logits_q = rng.normal(scale=2, size=(2, 40))
    exact = numpy_jsd(logits_p, logits_q)
    log_p = logits_p - np.log(np.exp(logits_p).sum())
    log_q = logits_q - np.log(np.exp(logits_q).sum())
    everything = np.arange(40)
    assert topk_jsd(everything, log_p, everything, log_q) == pytest.approx(exact, abs=1e-9)
    top_p, top_q = np.argsort(-log_p)[:8], np.argsort(-log_q)[:8]
    approx = topk_jsd(top_p, log_p[top_p], top_q, log_q[top_q])
    assert 0 <= approx <= exact


@pytest.fixture(scope="module")
def tokenizer(tiny_llama_path):
    return transformers.AutoTokenizer.from_pretrained(tiny_llama_path)


def test_response_positions_cover_the_response_and_end_of_turn(tokenizer):
    rows = scoring_rows(tokenizer, ROWS, "response", max_length=512)
    for row, source in zip(rows, ROWS):
        predicted = tokenizer.decode(row.token_ids[row.first + 1 : row.last + 2])
        assert predicted == source["response"] + "<|im_end|>"
        assert row.prompt_tokens + row.response_tokens == len(row.token_ids) and not row.truncated
    instruction = scoring_rows(tokenizer, ROWS, "instruction", max_length=512)[0]
    assert tokenizer.decode(instruction.token_ids) == ROWS[0]["instruction"]
    assert (instruction.first, instruction.last) == (0, len(instruction.token_ids) - 1)


def test_long_rows_keep_the_start_of_the_response(tokenizer):
    long_row = {**ROWS[1], "response": "Eat well. " * 60}
    full = scoring_rows(tokenizer, [long_row], max_length=4096)[0]
    cut = scoring_rows(tokenizer, [long_row], max_length=40)[0]
    assert len(cut.token_ids) == 40 and cut.truncated
    assert (cut.prompt_tokens, cut.response_tokens) == (full.prompt_tokens, full.response_tokens)
    assert cut.token_ids[cut.first + 1 :] == full.token_ids[full.first + 1 : full.first + 1 + 40 - cut.first - 1]


def test_identical_models_score_zero_and_different_ones_do_not(tiny_llama_path, tiny_llama_variant_path, tokenizer):
    rows = scoring_rows(tokenizer, ROWS, "response", max_length=512)
    same = TransformersScorer(tiny_llama_path, tiny_llama_path, ScorerOptions(batch_size=2)).score(rows)
    assert np.abs(same).max() <= 1e-6
    scorer = TransformersScorer(tiny_llama_path, tiny_llama_variant_path, ScorerOptions(batch_size=3))
    different = scorer.score(rows)
    assert (different > 1e-4).all() and (different <= LN2).all()


def test_scores_do_not_depend_on_padding_side_or_batching(tiny_llama_path, tiny_llama_variant_path, tokenizer):
    rows = scoring_rows(tokenizer, ROWS, "response", max_length=512)
    left = TransformersScorer(tiny_llama_path, tiny_llama_variant_path, ScorerOptions(batch_size=3)).score(rows)
    right = TransformersScorer(
        tiny_llama_path, tiny_llama_variant_path, ScorerOptions(batch_size=3, padding_side="right")
    ).score(rows)
    single = TransformersScorer(tiny_llama_path, tiny_llama_variant_path, ScorerOptions(batch_size=1)).score(rows)
    assert np.allclose(left, right, atol=1e-5) and np.allclose(left, single, atol=1e-5)


def test_scores_match_a_direct_float64_computation(tiny_llama_path, tiny_llama_variant_path, tokenizer):
    row = scoring_rows(tokenizer, ROWS[:1], "response", max_length=512)[0]
    ids = torch.tensor([row.token_ids])
    logits = [
        transformers.AutoModelForCausalLM.from_pretrained(path)(input_ids=ids).logits[0].detach().numpy()
        for path in (tiny_llama_path, tiny_llama_variant_path)
    ]
    expected = numpy_jsd(logits[0], logits[1])[row.first : row.last + 1].mean()
    score = TransformersScorer(tiny_llama_path, tiny_llama_variant_path, ScorerOptions()).score([row])[0]
    assert score == pytest.approx(expected, abs=1e-5)


def test_scores_are_cached_and_computed_once(tiny_llama_path, tiny_llama_variant_path, tokenizer, tmp_path):
    rows = scoring_rows(tokenizer, ROWS, "response", max_length=512)
    cache = VectorCache(tmp_path)
    built = []

    def make():
        built.append(1)
        return TransformersScorer(tiny_llama_path, tiny_llama_variant_path, ScorerOptions())

    first, info = cached_scores(rows[:2], cache, make, show_progress=False)
    assert info["scored_rows"] == 2 and len(built) == 1
    again, info = cached_scores(rows, cache, make, show_progress=False)
    assert info == {**info, "scored_rows": 1, "cached_rows": 2} and len(built) == 2
    assert np.array_equal(again[:2], first)
    cached_scores(rows, cache, make, show_progress=False)
    assert len(built) == 2
    assert set(cache.get_many([row_key(row) for row in rows])) == {row_key(row) for row in rows}


def _copy_with_tokenizer_change(source: str, target, change) -> str:
    shutil.copytree(source, target)
    config_path = target / "tokenizer_config.json"
    config = json.loads(config_path.read_text())
    change(config)
    config_path.write_text(json.dumps(config))
    return str(target)


def test_different_tokenizers_are_named(tiny_llama_path, tokenizer, tmp_path):
    other_eos = _copy_with_tokenizer_change(
        tiny_llama_path, tmp_path / "eos", lambda config: config.update(eos_token="<|endoftext|>")
    )
    with pytest.raises(SddError, match=r"differ in: special token eos_token \('<\|im_end\|>' vs '<\|endoftext\|>'\)"):
        check_same_tokenizer(tokenizer, transformers.AutoTokenizer.from_pretrained(other_eos), "a", "b")
    template_file = tmp_path / "template" / "chat_template.jinja"
    shutil.copytree(tiny_llama_path, tmp_path / "template")
    template_file.write_text("{{ messages[0]['content'] }}")
    other_template = transformers.AutoTokenizer.from_pretrained(tmp_path / "template")
    with pytest.raises(SddError, match="differ in: chat template$"):
        check_same_tokenizer(tokenizer, other_template, "a", "b")
    check_same_tokenizer(tokenizer, transformers.AutoTokenizer.from_pretrained(tiny_llama_path), "a", "b")
