"""The eval stage's options: one dataclass, from which its CLI flags and YAML keys are made."""

from __future__ import annotations

from dataclasses import dataclass

from sdd_data.evaluate.loglikelihood import SCORING_ENGINES
from sdd_data.evaluate.mc_scoring import DEFAULT_DELIMITER

EVAL_ENGINES = SCORING_ENGINES
"""Engines every built-in task runs on: those that score log-likelihoods (every engine generates, so a task that
only generates, gsm8k, runs on any engine)."""


@dataclass
class EvalConfig:
    """Everything the eval stage needs; every field is also a CLI flag and a YAML key."""

    models: str
    """Models to compare as name=model pairs, comma-separated: original=smollm2,pruned=runs/pruned,recovered=runs/sft.
    A model is `smollm2`, a local checkpoint folder or a Hub id; a bare entry is named after itself."""
    tasks: str
    """Comma-separated tasks: gsm8k[:data], mc:<file.jsonl>, nll:<answers.jsonl> (held-out NLL of given answers),
    lm-eval:<task>[:shots], lm-eval-mc:<file.jsonl> (a multiple-choice file through lm-eval), leaderboard-v1."""
    baseline: str | None = None
    """Name of the model retention is measured against; default: the model named original, else the first."""
    limit: int | None = 200
    """Rows per task (the same seeded random subset for every model); null for every row."""
    seed: int = 0
    """Seed of the row subset (and of lm-eval's few-shot sampling)."""
    engine: str = "transformers"
    """Engine of the built-in tasks (gsm8k, mc, nll): transformers (packed exact scoring, batched generation) or
    vllm (prompt log-probabilities, one prompt per choice; vLLM batches on its own). lm-eval tasks load their own."""
    batch_size: int = 8
    """Sequences per forward pass (questions for mc, prompts for gsm8k, lm-eval's batch size); the vllm engine
    batches on its own."""
    max_new_tokens: int = 256
    """Most tokens generated per gsm8k answer."""
    mc_delimiter: str = DEFAULT_DELIMITER
    """Text between a {query, choices, gold} row's query and each choice (its trailing spaces go to the choice)."""
    dtype: str = "auto"
    """Weights dtype: auto (float32 on CPU, bfloat16 on GPU), float32, bfloat16 or float16."""
    device: str = "auto"
    """auto, cpu, cuda or cuda:N."""
    output: str = "runs/eval"
    """Folder for results.json and results.png (replaced when they exist)."""
    speculative: str | None = None
    """Comma-separated drafts (model names from --models, or checkpoints) whose speculative-decoding
    acceptance is measured with the baseline as the target."""
    draft_tokens: int = 5
    """Tokens the draft proposes per step (γ), always that many: no early stop."""
    speculative_prompts: str = "example"
    """Prompts for speculative decoding: any data source (file, saved dataset, Hub id, or the built-in example),
    rendered with the target's chat template."""
    speculative_limit: int = 8
    """Prompts used for speculative decoding (the first N)."""
    speculative_max_new_tokens: int = 128
    """Tokens generated per prompt when measuring speculative decoding."""
    speculative_engine: str = "transformers"
    """transformers (exact greedy verification written out here) or vllm (draft_model speculative decoding)."""
    trust_remote_code: bool = False
    """Run model code from the checkpoints. Off unless you trust the models' authors."""
