"""Log-likelihoods of continuations with vLLM's prompt log-probabilities.

Each (context, continuation) pair is one prompt: the token ids `split_pair` gives the transformers scorer
(the same boundary, the same special-token prefix), joined. vLLM returns the log-probability of every
prompt token given the tokens before it; a pair's score is the sum over its continuation's tokens. vLLM
batches the prompts itself, so the eval stage's batch size does not apply; a context is computed once
per choice (prompts that ask for log-probabilities do not read vLLM's prefix cache).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sdd_data.errors import SddError
from sdd_data.evaluate.mc_scoring import split_pair


def span_logprob(prompt_logprobs: Sequence[Mapping[int, Any] | None], token_ids: Sequence[int], start: int) -> float:
    """Sum of the log-probabilities vLLM gave the prompt tokens `token_ids[start:]`.

    `prompt_logprobs` is one request's output: None for the first token, then per position a mapping
    from token id to an object with a `logprob`, holding at least that position's own token.
    """
    if not 0 < start < len(token_ids):
        raise SddError(f"a continuation must start after the first token and before the end, got {start}")
    if len(prompt_logprobs) != len(token_ids):
        raise SddError(
            f"vllm returned log-probabilities for {len(prompt_logprobs)} prompt tokens, expected {len(token_ids)}"
        )
    total = 0.0
    for position in range(start, len(token_ids)):
        entry = prompt_logprobs[position]
        token = token_ids[position]
        if entry is None or token not in entry:
            raise SddError(f"vllm returned no log-probability for prompt token {position} (id {token})")
        total += float(entry[token].logprob)
    return total


def vllm_continuation_logprobs(
    engine: Any,
    pairs: list[tuple[str, str]],
    batch_size: int,
    progress: Callable[[int], None] | None = None,
) -> list[float]:
    """Sum of log p(continuation token | everything before it) for each (context, continuation), by an engine's
    `prompt_logprobs` (vLLM's layout).

    `batch_size` is unused (vLLM schedules its own batches); `progress` is called with finished pairs.
    """
    encoded = [split_pair(engine.tokenizer, context, continuation) for context, continuation in pairs]
    prompts = [context + continuation for context, continuation in encoded]
    returned = engine.prompt_logprobs(prompts, progress)
    return [
        span_logprob(logprobs, prompt, len(context))
        for logprobs, prompt, (context, _) in zip(returned, prompts, encoded, strict=True)
    ]
