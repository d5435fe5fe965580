"""Teacher engines: plumbing on a tiny random Llama, real generation on SmolLM2 (slow)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from dataclasses import replace

import pytest
from cores import engine_environment

from sdd_data.engines import DecodingConfig, EngineConfig, load_engine

QUESTIONS = [
    "What is the capital of France?",
    "Explain photosynthesis in one sentence.",
    "What is 12 + 30?",
    "Translate 'good morning' to Spanish.",
    "Name a primary color.",
    "Summarize: The cat sat on the mat all day long.",
]
AGREEMENT_MAX_NEW_TOKENS = 96


def render(tokenizer, question: str) -> str:
    return tokenizer.apply_chat_template(
        [{"role": "user", "content": question}], tokenize=False, add_generation_prompt=True
    )


def test_engines_are_found_by_name():
    from sdd_data.engines import ENGINES
    from sdd_data.engines.transformers_engine import TransformersEngine

    assert ENGINES.get("transformers") is TransformersEngine


def test_each_engine_declares_what_it_reads_needs_and_can_do():
    from sdd_data.engines import Capability, EngineTraits, engine_traits

    transformers, vllm = engine_traits("transformers"), engine_traits("vllm")
    assert transformers.capabilities == {Capability.CAUSAL_LM}
    assert vllm.can(Capability.STREAM) and vllm.can(Capability.PROMPT_LOGPROBS)  # by their methods
    assert vllm.can(Capability.DATA_PARALLEL) and not transformers.can(Capability.DATA_PARALLEL)
    assert "batch_size" in transformers.options and "batch_size" not in vllm.options
    assert {package.module for package in vllm.packages} == {"vllm", "transformers"}

    class GenerateOnly:
        def generate(self, prompts, seeds, decoding, progress=None): ...

    class Streaming(GenerateOnly):
        def generate_stream(self, requests): ...

    assert EngineTraits.of(GenerateOnly) == EngineTraits(frozenset(), (), frozenset())
    assert EngineTraits.of(Streaming).capabilities == {Capability.STREAM}


def test_an_engine_table_chooses_by_capability_and_says_who_can(monkeypatch):
    from sdd_data.engines import ENGINES, Capability, EngineTable
    from sdd_data.errors import SddError

    class Streaming:
        name = "streamer"

        def generate_stream(self, requests): ...

    monkeypatch.setattr(ENGINES, "_members", dict(ENGINES._members))  # the registration ends with the test
    ENGINES.add("streamer", Streaming)
    table = EngineTable("streaming engine", "stream", {Capability.STREAM: 1, Capability.CAUSAL_LM: 2})
    assert table.get("streamer") == 1 and table.get("vllm") == 1 and table.get("transformers") == 2
    assert {"streamer", "vllm", "transformers"} <= set(table)
    narrow = EngineTable("scoring engine", "score log-likelihoods", {Capability.PROMPT_LOGPROBS: 3})
    assert "streamer" not in narrow and "vllm" in narrow
    with pytest.raises(SddError, match="engine 'streamer' cannot score log-likelihoods; known scoring engines: vllm"):
        narrow.get("streamer")
    with pytest.raises(SddError, match="unknown scoring engine 'sglang'; known scoring engines: vllm"):
        narrow.get("sglang")


@pytest.fixture(scope="module")
def tiny_engine(tiny_llama_path):
    engine = load_engine("transformers", tiny_llama_path, EngineConfig(batch_size=3))
    yield engine
    engine.close()


def test_tiny_generation_keeps_input_order_and_reports_progress(tiny_engine):
    prompts = [render(tiny_engine.tokenizer, "hi " * length) for length in (1, 9, 3, 12, 5)]
    done: list[int] = []
    generations = tiny_engine.generate(prompts, [0] * 5, DecodingConfig(max_new_tokens=8), progress=done.append)

    assert done == [3, 2]
    expected_lengths = [len(tiny_engine.tokenizer(p, add_special_tokens=False)["input_ids"]) for p in prompts]
    assert [g.prompt_tokens for g in generations] == expected_lengths
    for generation in generations:
        assert generation.finish_reason in ("stop", "length")
        assert 1 <= generation.completion_tokens <= 8
        if generation.finish_reason == "length":
            assert generation.completion_tokens == 8
    unbatched = [tiny_engine.generate([p], [0], DecodingConfig(max_new_tokens=8))[0] for p in prompts]
    assert [g.text for g in unbatched] == [g.text for g in generations]


def test_tiny_sampling_is_reproducible_from_seeds(tiny_engine):
    prompts = [render(tiny_engine.tokenizer, question) for question in QUESTIONS[:4]]
    sampling = DecodingConfig(max_new_tokens=12, temperature=1.0, top_p=0.95, top_k=50)
    first = tiny_engine.generate(prompts, [1, 2, 3, 4], sampling)
    again = tiny_engine.generate(prompts, [1, 2, 3, 4], sampling)
    other = tiny_engine.generate(prompts, [5, 6, 7, 8], sampling)
    assert first == again
    assert first != other


def test_transformers_describe(tiny_engine):
    import torch

    on_gpu = torch.cuda.is_available()
    description = tiny_engine.describe()
    assert description["engine"] == "transformers"
    assert description["dtype"] == ("bfloat16" if on_gpu else "float32")
    assert description["device"] == ("cuda" if on_gpu else "cpu")
    assert description["batch_size"] == 3
    assert {"transformers", "torch"} <= set(description)


@pytest.fixture(scope="module")
def smollm2_engine(smollm2_path):
    engine = load_engine("transformers", smollm2_path, EngineConfig(batch_size=4))
    yield engine
    engine.close()


@pytest.fixture(scope="module")
def smollm2_prompts(smollm2_engine) -> list[str]:
    return [render(smollm2_engine.tokenizer, question) for question in QUESTIONS]


@pytest.fixture(scope="module")
def smollm2_greedy(smollm2_engine, smollm2_prompts):
    return smollm2_engine.generate(
        smollm2_prompts, list(range(len(smollm2_prompts))), DecodingConfig(max_new_tokens=AGREEMENT_MAX_NEW_TOKENS)
    )


@pytest.mark.slow
def test_smollm2_greedy_stops_at_end_of_turn(smollm2_greedy):
    assert [g.finish_reason for g in smollm2_greedy] == ["stop"] * len(QUESTIONS)
    assert "Paris" in smollm2_greedy[0].text
    for generation in smollm2_greedy:
        assert "<|im_end|>" not in generation.text
        assert generation.completion_tokens < AGREEMENT_MAX_NEW_TOKENS


@pytest.mark.slow
def test_smollm2_small_budget_ends_with_length(smollm2_engine, smollm2_prompts):
    generations = smollm2_engine.generate(smollm2_prompts[1:3], [0, 0], DecodingConfig(max_new_tokens=5))
    assert [g.finish_reason for g in generations] == ["length", "length"]
    assert [g.completion_tokens for g in generations] == [5, 5]


@pytest.mark.slow
def test_smollm2_batched_greedy_equals_unbatched(smollm2_engine, smollm2_prompts, smollm2_greedy):
    unbatched = [
        smollm2_engine.generate([prompt], [0], DecodingConfig(max_new_tokens=AGREEMENT_MAX_NEW_TOKENS))[0]
        for prompt in smollm2_prompts
    ]
    assert unbatched == smollm2_greedy


QUOTING = (
    "Rewrite this answer in your own words, keeping its facts: Photosynthesis is the process by which green plants "
    "use sunlight, water and carbon dioxide to make glucose and release oxygen into the air."
)


@pytest.mark.slow
def test_smollm2_prompt_lookup_keeps_the_greedy_text(smollm2_engine, smollm2_prompts, smollm2_greedy):
    """The default drafts tokens from each prompt; without drafts the text is the same, made in more steps."""
    prompts = [*smollm2_prompts, render(smollm2_engine.tokenizer, QUOTING)]
    decoding = DecodingConfig(max_new_tokens=AGREEMENT_MAX_NEW_TOKENS)
    counts = smollm2_engine.decode_counts
    before = replace(counts)
    drafted = smollm2_engine.generate(prompts, [0] * len(prompts), decoding)
    with_drafts = replace(counts)
    smollm2_engine.config.prompt_lookup = 0
    try:
        plain = smollm2_engine.generate(prompts, [0] * len(prompts), decoding)
    finally:
        smollm2_engine.config.prompt_lookup = EngineConfig().prompt_lookup
    assert drafted == plain
    assert drafted[: len(smollm2_greedy)] == smollm2_greedy
    import torch

    inputs = smollm2_engine.tokenizer(prompts[-1], add_special_tokens=False, return_tensors="pt")
    with torch.inference_mode():  # transformers' own greedy loop, with its own positions and cache
        reference = smollm2_engine.model.generate(**inputs, max_new_tokens=decoding.max_new_tokens, do_sample=False)
    new_tokens = reference[0, inputs["input_ids"].shape[1] :]
    assert drafted[-1].text == smollm2_engine.tokenizer.decode(new_tokens, skip_special_tokens=True)
    assert with_drafts.accepted - before.accepted > 0
    assert counts.accepted == with_drafts.accepted and counts.drafted == with_drafts.drafted  # none without lookup
    assert with_drafts.steps - before.steps < counts.steps - with_drafts.steps


VLLM_SCRIPT = textwrap.dedent(
    """
    import json, sys
    from sdd_data.engines import DecodingConfig, EngineConfig, load_engine

    if __name__ == "__main__":
        model_path, prompts_file, output_file, max_new_tokens = sys.argv[1:5]
        prompts = json.load(open(prompts_file))
        engine = load_engine("vllm", model_path, EngineConfig())
        done = []
        generations = engine.generate(
            prompts, list(range(len(prompts))), DecodingConfig(max_new_tokens=int(max_new_tokens)), done.append
        )
        token_ids = [engine.tokenizer(g.text, add_special_tokens=False)["input_ids"] for g in generations]
        sampling = DecodingConfig(max_new_tokens=16, temperature=1.0, top_p=0.9)
        sampled_together = engine.generate(prompts[:3], [7, 8, 9], sampling)
        sampled_alone = engine.generate(prompts[1:2], [8], sampling)
        # Seeded sampling of prompts too long to prefill together in one step (vLLM on CPU once stopped on these).
        long_prompts = [prompt + " and then" * 800 for prompt in prompts]
        long_sampled = engine.generate(
            long_prompts, list(range(len(long_prompts))), DecodingConfig(max_new_tokens=4, temperature=1.0)
        )
        json.dump(
            {
                "generations": [g.__dict__ for g in generations],
                "token_ids": token_ids,
                "progress": done,
                "describe": engine.describe(),
                "row_seed_is_exact": sampled_together[1] == sampled_alone[0],
                "long_sampled": len(long_sampled),
            },
            open(output_file, "w"),
        )
        engine.close()
    """
)


@pytest.mark.slow
def test_vllm_greedy_agrees_with_transformers(smollm2_path, smollm2_engine, smollm2_prompts, smollm2_greedy, tmp_path):
    script = tmp_path / "run_vllm.py"
    script.write_text(VLLM_SCRIPT)
    prompts_file, output_file = tmp_path / "prompts.json", tmp_path / "out.json"
    prompts_file.write_text(json.dumps(smollm2_prompts))
    environment = engine_environment(VLLM_CPU_KVCACHE_SPACE="1")
    completed = subprocess.run(
        [sys.executable, str(script), smollm2_path, str(prompts_file), str(output_file), str(AGREEMENT_MAX_NEW_TOKENS)],
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    result = json.loads(output_file.read_text())

    assert sum(result["progress"]) == len(smollm2_prompts)
    assert result["describe"]["engine"] == "vllm"
    assert result["describe"]["enforce_eager"] is True
    assert result["row_seed_is_exact"], "a row's sample should not depend on its batch mates"
    assert result["long_sampled"] == len(smollm2_prompts) and result["describe"]["chunked_prefill"] is False
    exact_matches = 0
    for vllm_generation, hf_generation, vllm_ids in zip(result["generations"], smollm2_greedy, result["token_ids"]):
        hf_ids = smollm2_engine.tokenizer(hf_generation.text, add_special_tokens=False)["input_ids"]
        assert vllm_generation["prompt_tokens"] == hf_generation.prompt_tokens
        common_prefix = next(
            (i for i, (a, b) in enumerate(zip(vllm_ids, hf_ids)) if a != b), min(len(vllm_ids), len(hf_ids))
        )
        # Both engines run fp32; different kernels may flip a late near-tie, never an early token.
        assert common_prefix >= min(32, len(hf_ids)), (vllm_generation["text"], hf_generation.text)
        exact_matches += vllm_generation == hf_generation.__dict__
    assert exact_matches >= len(QUESTIONS) - 1
