"""Log-likelihoods of continuations, with every shared context computed once and many items in one batch.

Pairs whose context tokenizes the same (the choices of one question) form one packed row: the context
once, then each continuation after it. A 4D attention mask lets a continuation see the context and its
own earlier tokens only, and position ids restart after the context for each continuation, so every
continuation is scored exactly as if it followed the context alone. Rows of similar length share a
padded batch. Only the positions that predict continuation tokens go through the output layer, in fp32.

Scores equal one forward pass per (context, continuation) pair up to floating-point reordering.
`engine_logprobs` scores through whichever engine the eval stage loaded, by what it can do: this packed
scorer for an engine that runs a transformers causal LM, its prompt log-probabilities (`vllm_loglikelihood`)
for one that gives them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sdd_data.engines import Capability, EngineTable
from sdd_data.errors import SddError, require
from sdd_data.evaluate.mc_scoring import split_pair

MAX_BATCH_TOKENS = 8192
"""Padded tokens per forward pass (rows x longest row): a few very long rows go in batches of their own
instead of padding `batch_size` rows to their length (one 4,500-token prompt made a batch of 8 rows 20x slower)."""
LOGIT_CHUNK = 1024
"""Scored positions per fp32 log-softmax: bounds the [positions, vocabulary] temporaries."""
PLAIN_HEAD_MODEL_TYPES = frozenset({"llama", "mistral", "qwen2", "qwen3", "smollm3"})
"""Models whose logits are exactly the output layer applied to the last hidden state (no scaling or capping)."""


@dataclass
class PackedRow:
    """One context and the continuations that follow it, laid out as a single sequence."""

    context: list[int]
    continuations: list[tuple[int, list[int]]]
    """(pair index, continuation token ids)."""

    @property
    def length(self) -> int:
        return len(self.context) + sum(len(ids) for _, ids in self.continuations)


def pack_pairs(encoded: list[tuple[list[int], list[int]]]) -> list[PackedRow]:
    """One row per distinct context token sequence, holding every continuation that follows it."""
    rows: dict[tuple[int, ...], PackedRow] = {}
    for index, (context, continuation) in enumerate(encoded):
        row = rows.setdefault(tuple(context), PackedRow(list(context), []))
        row.continuations.append((index, list(continuation)))
    return list(rows.values())


def row_layout(row: PackedRow) -> tuple[list[int], list[int], list[int], list[tuple[int, list[int], list[int]]]]:
    """Token ids, position ids and branch per token (-1 for the context), and for each continuation its pair
    index, the sequence positions whose logits predict its tokens, and those tokens."""
    tokens, positions, branches = list(row.context), list(range(len(row.context))), [-1] * len(row.context)
    targets = []
    for branch, (index, ids) in enumerate(row.continuations):
        start = len(tokens)
        tokens += ids
        positions += range(len(row.context), len(row.context) + len(ids))
        branches += [branch] * len(ids)
        # The first token is predicted by the context's last position, each later one by the token before it.
        predicting = [len(row.context) - 1, *range(start, start + len(ids) - 1)]
        targets.append((index, predicting, ids))
    return tokens, positions, branches, targets


def _batch_tensors(torch: Any, layouts: list, pad_id: int, dtype: Any) -> tuple[Any, Any, Any]:
    """Right-padded input ids, position ids and the additive 4D mask of a batch of packed rows."""
    width = max(len(layout[0]) for layout in layouts)
    input_ids = torch.full((len(layouts), width), pad_id, dtype=torch.long)
    position_ids = torch.zeros((len(layouts), width), dtype=torch.long)
    branch = torch.full((len(layouts), width), -2, dtype=torch.long)  # -2: padding
    for row, (tokens, positions, branches, _) in enumerate(layouts):
        input_ids[row, : len(tokens)] = torch.tensor(tokens)
        position_ids[row, : len(tokens)] = torch.tensor(positions)
        branch[row, : len(tokens)] = torch.tensor(branches)
    query, key = branch[:, :, None], branch[:, None, :]
    causal = torch.ones((width, width), dtype=torch.bool).tril()
    allowed = causal & (key != -2) & ((key == -1) | (key == query))
    allowed |= torch.eye(width, dtype=torch.bool)  # padding rows attend to themselves: no all-masked softmax
    mask = torch.zeros(allowed.shape, dtype=dtype).masked_fill(~allowed, torch.finfo(dtype).min)
    return input_ids, position_ids, mask[:, None]


def _scored_logits(model: Any, input_ids: Any, position_ids: Any, mask: Any, rows: Any, columns: Any) -> Any:
    """Logits at the (row, column) positions only: the output layer runs on those hidden states alone."""
    if getattr(model.config, "model_type", None) in PLAIN_HEAD_MODEL_TYPES:
        hidden = model.get_decoder()(
            input_ids=input_ids, attention_mask=mask, position_ids=position_ids, use_cache=False
        ).last_hidden_state
        return model.get_output_embeddings()(hidden[rows, columns])
    logits = model(input_ids=input_ids, attention_mask=mask, position_ids=position_ids, use_cache=False).logits
    return logits[rows, columns]


def token_budget_batches(rows: list[PackedRow], batch_size: int, max_tokens: int) -> list[list[PackedRow]]:
    """Consecutive batches of at most `batch_size` rows whose padded size (rows x longest) stays within
    `max_tokens`; a row longer than that is a batch of its own. Rows come sorted longest first."""
    batches: list[list[PackedRow]] = []
    for row in rows:
        current = batches[-1] if batches else None
        fits = current is not None and len(current) < batch_size
        if current and fits and max(current[0].length, row.length) * (len(current) + 1) <= max_tokens:
            current.append(row)
        else:
            batches.append([row])
    return batches


def continuation_logprobs(
    model: Any,
    tokenizer: Any,
    pairs: list[tuple[str, str]],
    batch_size: int,
    progress: Callable[[int], None] | None = None,
) -> list[float]:
    """Sum of log p(continuation token | everything before it) for each (context, continuation), in fp32.

    `batch_size` is the most packed rows (distinct contexts, e.g. questions) per forward pass, fewer when
    they are long (`MAX_BATCH_TOKENS`);
    `progress` is called with the number of pairs each batch finished.
    """
    torch = require("torch", "hf")
    if batch_size < 1:
        raise SddError(f"batch_size must be at least 1, got {batch_size}")
    encoded = [split_pair(tokenizer, context, continuation) for context, continuation in pairs]
    packed = sorted(pack_pairs(encoded), key=lambda row: -row.length)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    parameter = next(model.parameters())
    scores = [0.0] * len(pairs)
    for batch in token_budget_batches(packed, batch_size, MAX_BATCH_TOKENS):
        layouts = [row_layout(row) for row in batch]
        input_ids, position_ids, mask = _batch_tensors(torch, layouts, pad_id, parameter.dtype)
        owners, rows, columns, targets = [], [], [], []
        for row, (_, _, _, continuations) in enumerate(layouts):
            for index, predicting, ids in continuations:
                owners += [index] * len(ids)
                rows += [row] * len(ids)
                columns += predicting
                targets += ids
        with torch.inference_mode():
            device = parameter.device
            logits = _scored_logits(
                model,
                input_ids.to(device),
                position_ids.to(device),
                mask.to(device),
                torch.tensor(rows, device=device),
                torch.tensor(columns, device=device),
            )
            target_ids = torch.tensor(targets, device=logits.device)
            token_scores = (
                torch.cat(
                    [
                        torch.log_softmax(logits[chunk : chunk + LOGIT_CHUNK].float(), dim=-1).gather(
                            1, target_ids[chunk : chunk + LOGIT_CHUNK, None]
                        )[:, 0]
                        for chunk in range(0, len(targets), LOGIT_CHUNK)
                    ]
                )
                .double()
                .cpu()
            )
        totals = torch.zeros(len(pairs), dtype=torch.float64).index_add_(0, torch.tensor(owners), token_scores)
        for index in set(owners):
            scores[index] = float(totals[index])
        if progress is not None:
            progress(sum(len(layout[3]) for layout in layouts))
    return scores


def transformers_continuation_logprobs(
    engine: Any, pairs: list[tuple[str, str]], batch_size: int, progress: Callable[[int], None] | None = None
) -> list[float]:
    """`continuation_logprobs` with the model and tokenizer of an engine that runs a transformers causal LM."""
    return continuation_logprobs(engine.model, engine.tokenizer, pairs, batch_size, progress)


ScoringFunction = Callable[[Any, list[tuple[str, str]], int, Callable[[int], None] | None], list[float]]

SCORING_ENGINES: EngineTable[ScoringFunction] = EngineTable(
    "scoring engine",
    "score log-likelihoods",
    {
        Capability.CAUSAL_LM: transformers_continuation_logprobs,
        Capability.PROMPT_LOGPROBS: "sdd_data.evaluate.vllm_loglikelihood:vllm_continuation_logprobs",
    },
)
"""Engine name -> function(engine, pairs, batch_size, progress) giving each pair's continuation log-likelihood,
by what the engine can do."""


def engine_logprobs(
    engine: Any, pairs: list[tuple[str, str]], batch_size: int, progress: Callable[[int], None] | None = None
) -> list[float]:
    """Sum of log p(continuation token | everything before it) per (context, continuation), by a loaded engine."""
    return SCORING_ENGINES.get(engine.name)(engine, pairs, batch_size, progress)
