"""Speculative-decoding acceptance: exact greedy verification, α and τ, tokenizer checks."""

from __future__ import annotations

import shutil

import pytest

from sdd_data.errors import SddError
from sdd_data.evaluate.speculative import (
    AcceptanceCounts,
    measure_acceptance,
    speculative_generate,
)
from sdd_data.models import load_causal_lm, load_tokenizer


def load_model_and_tokenizer(path: str):
    """A checkpoint's model (fp32, CPU) and tokenizer, through the loader every stage uses."""
    return load_causal_lm(path, dtype="float32", device="cpu"), load_tokenizer(path)


PROMPT = "<|im_start|>user\nWhat is 12 + 30?<|im_end|>\n<|im_start|>assistant\n"


@pytest.fixture(scope="module")
def target(tiny_llama_path):
    return load_model_and_tokenizer(tiny_llama_path)


@pytest.fixture(scope="module")
def other_draft_path(tiny_llama_path, tmp_path_factory):
    """The tiny Llama's tokenizer, other random weights and an untied output layer.

    (A random model with tied embeddings mostly repeats its last token, whatever its weights.)
    """
    import torch
    import transformers

    model = transformers.AutoModelForCausalLM.from_pretrained(tiny_llama_path, use_safetensors=True)
    model.config.tie_word_embeddings = False
    torch.manual_seed(1)
    other = transformers.LlamaForCausalLM(model.config)
    other.generation_config = model.generation_config
    path = tmp_path_factory.mktemp("other-draft")
    other.save_pretrained(path, safe_serialization=True)
    transformers.AutoTokenizer.from_pretrained(tiny_llama_path).save_pretrained(path)
    return str(path)


def greedy(model, tokenizer, prompt_ids, max_new_tokens):
    import torch

    output = model.generate(
        torch.tensor([prompt_ids]),
        max_new_tokens=max_new_tokens,
        do_sample=False,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.eos_token_id,
    )
    return output[0, len(prompt_ids) :].tolist()


def test_counts_give_alpha_and_tau():
    counts = AcceptanceCounts(proposed=10, accepted=4, steps=3, generated=7)
    assert counts.acceptance_rate == pytest.approx(0.4)
    assert counts.mean_accepted_length == pytest.approx(1 + 4 / 3)
    assert AcceptanceCounts().acceptance_rate == 0.0


def test_model_drafting_for_itself_accepts_everything(tiny_llama_path, target):
    model, tokenizer = target
    draft, _ = load_model_and_tokenizer(tiny_llama_path)
    prompt_ids = tokenizer(PROMPT, add_special_tokens=False)["input_ids"]
    tokens, counts = speculative_generate(model, draft, prompt_ids, 4, 21, [tokenizer.eos_token_id])
    assert counts.acceptance_rate == 1.0 and counts.accepted == counts.proposed > 0
    assert counts.steps == 5 and counts.mean_accepted_length == pytest.approx(1 + counts.accepted / 5)
    assert tokens == greedy(model, tokenizer, prompt_ids, 21)


def test_other_draft_is_accepted_less_and_output_stays_the_targets(target, other_draft_path):
    model, tokenizer = target
    draft, _ = load_model_and_tokenizer(other_draft_path)
    prompt_ids = tokenizer(PROMPT, add_special_tokens=False)["input_ids"]
    tokens, counts = speculative_generate(model, draft, prompt_ids, 5, 20, [tokenizer.eos_token_id])
    assert counts.acceptance_rate < 1.0
    assert counts.mean_accepted_length < 6
    assert tokens == greedy(model, tokenizer, prompt_ids, 20)  # speculative decoding changes no token


def test_measure_acceptance_over_prompts(tiny_llama_path, other_draft_path):
    prompts = [PROMPT, PROMPT.replace("12 + 30", "the quick brown fox")]
    seen = []
    same = measure_acceptance(tiny_llama_path, tiny_llama_path, prompts, 3, 8, "float32", "cpu", progress=seen.append)
    other = measure_acceptance(tiny_llama_path, other_draft_path, prompts, 3, 8, "float32", "cpu")
    assert same.acceptance_rate == 1.0 and other.acceptance_rate < same.acceptance_rate
    assert same.generated == other.generated == 16 and seen == [1, 1]


def test_different_tokenizers_are_refused(tiny_llama_path, tmp_path):
    import transformers

    draft = tmp_path / "draft"
    shutil.copytree(tiny_llama_path, draft)
    tokenizer = transformers.AutoTokenizer.from_pretrained(draft)
    tokenizer.add_tokens(["<extra_token>"])
    tokenizer.save_pretrained(draft)
    with pytest.raises(SddError, match="must share one tokenizer.*'<extra_token>' is id .* only in the draft"):
        measure_acceptance(tiny_llama_path, str(draft), [PROMPT], 2, 4, "float32", "cpu")


def test_bad_draft_settings(tiny_llama_path, target):
    model, tokenizer = target
    with pytest.raises(SddError, match="at least 1"):
        speculative_generate(model, model, [1, 2], 0, 5, [tokenizer.eos_token_id])
    with pytest.raises(SddError, match="no prompts"):
        measure_acceptance(tiny_llama_path, tiny_llama_path, [], 2, 4)


def test_each_speculative_engine_measures_drafts_the_way_it_can(tiny_llama_path, monkeypatch):
    from sdd_data.evaluate import drafts
    from sdd_data.evaluate.config import EvalConfig

    native = AcceptanceCounts(proposed=6, accepted=3, steps=2, generated=9)
    monkeypatch.setattr(drafts, "measure_acceptance_vllm", lambda *arguments: native)
    config = EvalConfig(models="m", tasks="gsm8k", dtype="float32", device="cpu", speculative_limit=2)
    config.speculative_max_new_tokens = 4
    exact = drafts.measure_drafts(config, tiny_llama_path, "original", {"itself": tiny_llama_path})["itself"]
    assert (exact["engine"], exact["prompts"], exact["acceptance_rate"]) == ("transformers", 2, 1.0)
    config.speculative_engine = "vllm"
    measured = drafts.measure_drafts(config, tiny_llama_path, "original", {"itself": tiny_llama_path})["itself"]
    assert measured == {"target": "original", "draft_tokens": 5, "engine": "vllm", "prompts": 2, **native.summary()}
    config.speculative_engine = "sglang"
    with pytest.raises(SddError, match="unknown speculative_engine 'sglang'; use transformers or vllm"):
        drafts.measure_drafts(config, tiny_llama_path, "original", {"itself": tiny_llama_path})


VLLM_SCRIPT = """
import json, sys
from sdd_data.evaluate.speculative import measure_acceptance_vllm

if __name__ == "__main__":
    counts = measure_acceptance_vllm(sys.argv[1], sys.argv[1], json.loads(sys.argv[2]), 3, 16)
    print("COUNTS " + json.dumps(counts.summary()))
"""


@pytest.mark.slow
def test_vllm_draft_model_accepts_itself_fully(tiny_llama_path, tmp_path):
    import json
    import os
    import subprocess
    import sys

    script = tmp_path / "vllm_acceptance.py"
    script.write_text(VLLM_SCRIPT)
    environment = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1", "OMP_NUM_THREADS": "1"}
    prompts = [PROMPT, PROMPT.replace("12 + 30", "7 + 5")]
    finished = subprocess.run(
        [sys.executable, str(script), tiny_llama_path, json.dumps(prompts)],
        check=False,
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert finished.returncode == 0, finished.stderr[-3000:]
    line = next(line for line in finished.stdout.splitlines() if line.startswith("COUNTS "))
    counts = json.loads(line[len("COUNTS ") :])
    assert counts["acceptance_rate"] == 1.0 and counts["proposed"] > 0
    assert counts["generated"] == 32 and counts["mean_accepted_length"] == pytest.approx(
        1 + counts["accepted"] / counts["steps"]
    )
