"""Eval stage on the real SmolLM2: speculative acceptance (itself vs a pruned draft), ARC-Easy and GSM8K."""

from __future__ import annotations

import pytest
from data_samples import ARC_EASY, GSM8K_TEST

from sdd_data.evaluate.speculative import speculative_generate
from sdd_data.evaluate.stage import EvalConfig, evaluate
from sdd_data.models import load_causal_lm, load_tokenizer


def load_model_and_tokenizer(path: str):
    """A checkpoint's model (fp32, CPU) and tokenizer, through the loader every stage uses."""
    return load_causal_lm(path, dtype="float32", device="cpu"), load_tokenizer(path)


QUESTION = (
    "A bakery sells muffins for $3 each. Nora buys 4 muffins and pays with a $20 bill. How much change does she get?"
)

pytestmark = pytest.mark.slow


def test_smollm2_accepts_itself_fully_and_a_pruned_draft_less(smollm2_path, pruned_smollm2_path):
    target, tokenizer = load_model_and_tokenizer(smollm2_path)
    pruned, _ = load_model_and_tokenizer(pruned_smollm2_path)
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": QUESTION}], tokenize=False, add_generation_prompt=True
    )
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    eos = [tokenizer.eos_token_id]
    own_tokens, own = speculative_generate(target, target, prompt_ids, 5, 48, eos)
    pruned_tokens, with_pruned = speculative_generate(target, pruned, prompt_ids, 5, 48, eos)
    print(
        f"\nSmolLM2 drafting for itself: {own.summary()}\npruned SmolLM2 (-4 blocks) drafting: {with_pruned.summary()}"
    )
    assert own.acceptance_rate == 1.0 and own.mean_accepted_length > 5
    assert with_pruned.acceptance_rate < 1.0 and with_pruned.mean_accepted_length < own.mean_accepted_length
    assert pruned_tokens == own_tokens  # the target's greedy text, whichever draft proposes


def test_smollm2_on_arc_easy_and_gsm8k(smollm2_path, tmp_path):
    arc = evaluate(
        EvalConfig(models=f"original={smollm2_path}", tasks=f"mc:{ARC_EASY}", limit=20, output=str(tmp_path / "arc"))
    )["tasks"]["mc:arc_easy"]
    gsm8k = evaluate(
        EvalConfig(
            models=f"original={smollm2_path}",
            tasks=f"gsm8k:{GSM8K_TEST}",
            limit=10,
            max_new_tokens=128,
            batch_size=10,
            output=str(tmp_path / "gsm8k"),
        )
    )["tasks"]["gsm8k:test"]
    print(
        f"\nSmolLM2-135M-Instruct ARC-Easy (20 rows): {arc['metrics']['original']}; "
        f"GSM8K (10 rows): {gsm8k['metrics']['original']}"
    )
    assert (arc["rows"], gsm8k["rows"]) == (20, 10)
    for task in (arc, gsm8k):
        assert all(0.0 <= value <= 1.0 for value in task["metrics"]["original"].values())
    assert (tmp_path / "arc" / "results.png").is_file() and (tmp_path / "gsm8k" / "results.json").is_file()
