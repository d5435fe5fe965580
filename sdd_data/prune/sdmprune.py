"""SDMPrune (self-distillation MLP pruning): MLP neurons scored by the Taylor term of a self-distillation loss.

The calibration prompts are completed by the original model itself (greedy). A neuron's importance is
the first-order estimate of how much removing it changes the loss on those completions: per row
|Σ_t a_t · ∂L/∂a_t| over the activation a entering down_proj, summed over rows.

The self-distillation loss is KL(original ‖ model) over the completion tokens. Its gradient is zero at
the original model itself (the two distributions are equal), so, as SDMPrune's own code does, a first
step prunes a small share of the neurons by the cross-entropy Taylor term of the same completions; the
KL Taylor term of that slightly pruned model against the original then chooses the rest. Blocks
removed before make the model differ already; the first step is kept all the same.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from tqdm.auto import tqdm

from sdd_data.data.records import user_prompt
from sdd_data.engines.base import end_token_ids
from sdd_data.engines.ragged_decode import Sampling, decode
from sdd_data.errors import SddError
from sdd_data.prune.mlp_width import prune_mlp_neurons
from sdd_data.prune.plan import rounded
from sdd_data.prune.width_scores import keep_top


@dataclass(frozen=True)
class SdmpruneSettings:
    """The calibration completions and the share of the cut the cross-entropy step takes."""

    ffn_size: int
    completion_tokens: int
    warmup_share: float
    max_length: int
    batch_size: int


def prompt_ids(rows: list[dict], tokenizer: Any, room: int) -> tuple[list[list[int]], int]:
    """Token ids of each row's user turn, ready for the answer; rows longer than `room` are left out (counted)."""
    template = getattr(tokenizer, "chat_template", None)
    prompts = []
    for row in rows:
        text = user_prompt(row["instruction"], row["input"])
        if template:
            messages = [{"role": "user", "content": text}]
            rendered = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
            prompts.append(tokenizer(rendered, add_special_tokens=False)["input_ids"])
        else:
            prompts.append(tokenizer(f"{text}\n\n")["input_ids"])
    fitting = [ids for ids in prompts if 0 < len(ids) <= room]
    return fitting, len(prompts) - len(fitting)


def complete(model: Any, tokenizer: Any, prompts: list[list[int]], settings: SdmpruneSettings, show_progress: bool):
    """The model's own greedy completion of every prompt: a list of (prompt ids, completion ids)."""
    ends = end_token_ids(model.generation_config.eos_token_id, tokenizer.eos_token_id)
    if not ends:
        raise SddError("the model names no end token: cannot complete the calibration prompts")
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else ends[0]
    device = next(model.parameters()).device
    order = sorted(range(len(prompts)), key=lambda index: len(prompts[index]), reverse=True)
    completions: list[list[int]] = [[] for _ in prompts]
    with tqdm(total=len(prompts), unit="row", desc="original's completions", disable=not show_progress) as bar:
        for start in range(0, len(order), settings.batch_size):
            batch = order[start : start + settings.batch_size]
            room = [settings.completion_tokens] * len(batch)
            generated = decode(model, [prompts[i] for i in batch], room, ends, pad_id, Sampling(), device)
            for index, tokens in zip(batch, generated):
                completions[index] = tokens
            bar.update(len(batch))
    return list(zip(prompts, completions)), pad_id


def completion_batches(pairs: list[tuple[list[int], list[int]]], pad_id: int, batch_size: int) -> list[dict]:
    """Right-padded prompt + completion batches; `labels` holds the next token where it is a completion token."""
    order = sorted(range(len(pairs)), key=lambda index: sum(map(len, pairs[index])), reverse=True)
    batches = []
    for start in range(0, len(order), batch_size):
        rows = [pairs[index] for index in order[start : start + batch_size]]
        width = max(len(prompt) + len(completion) for prompt, completion in rows)
        input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
        attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
        labels = torch.full((len(rows), width), -100, dtype=torch.long)
        for position, (prompt, completion) in enumerate(rows):
            ids = prompt + completion
            input_ids[position, : len(ids)] = torch.tensor(ids)
            attention_mask[position, : len(ids)] = 1
            labels[position, len(prompt) - 1 : len(ids) - 1] = torch.tensor(completion)
        batches.append({"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels})
    return batches


def _selected_log_probs(model: Any, batch: dict, device) -> torch.Tensor:
    """Log-probabilities (fp32) at the positions that predict a completion token: [tokens, vocab]."""
    hidden = model.model(
        input_ids=batch["input_ids"].to(device), attention_mask=batch["attention_mask"].to(device), use_cache=False
    ).last_hidden_state
    selected = hidden[batch["labels"].to(device) != -100]
    return model.lm_head(selected).float().log_softmax(dim=-1)


def taylor_importance(
    model: Any, batches: list[dict], original: Any | None, show_progress: bool, desc: str
) -> torch.Tensor:
    """[layers, neurons]: Σ over rows of |Σ_t a · ∂L/∂a| at each down_proj input.

    L is each row's mean cross-entropy of its completion (`original` None) or its mean KL(original ‖ model)
    over the completion tokens. Only activation gradients are taken; no weight gets a gradient.
    """
    device = next(model.parameters()).device
    layers = model.model.layers
    sums = [torch.zeros(layer.mlp.down_proj.in_features, dtype=torch.float64) for layer in layers]

    def capture(index: int):
        def hook(module, args) -> None:
            activation = args[0]

            def fold(gradient: torch.Tensor) -> None:
                per_row = (activation.detach().float() * gradient.float()).sum(dim=1)  # Σ over tokens
                sums[index] += per_row.abs().sum(dim=0).double().cpu()

            activation.register_hook(fold)

        return hook

    model.eval()
    model.requires_grad_(False)
    handles = [layer.mlp.down_proj.register_forward_pre_hook(capture(index)) for index, layer in enumerate(layers)]
    embedding_hook = model.get_input_embeddings().register_forward_hook(
        lambda module, args, output: output.requires_grad_()
    )
    try:
        for batch in tqdm(batches, unit="batch", desc=desc, disable=not show_progress):
            rows = (batch["labels"] != -100).nonzero()[:, 0].to(device)
            tokens_per_row = torch.bincount(rows, minlength=len(batch["labels"])).clamp(min=1).float()
            log_probs = _selected_log_probs(model, batch, device)
            if original is None:
                targets = batch["labels"][batch["labels"] != -100].to(device)
                per_token = -log_probs.gather(-1, targets[:, None]).squeeze(-1)
            else:
                with torch.no_grad():
                    reference = _selected_log_probs(original, batch, device)
                per_token = (reference.exp() * (reference - log_probs)).sum(dim=-1)
            per_row = torch.zeros(len(batch["labels"]), device=device).index_add(0, rows, per_token)
            (per_row / tokens_per_row).sum().backward()
    finally:
        embedding_hook.remove()
        for handle in handles:
            handle.remove()
    return torch.stack(sums).float()


def sdmprune_neurons(
    original: Any,
    student: Any,
    tokenizer: Any,
    rows: list[dict],
    settings: SdmpruneSettings,
    show_progress: bool = True,
):
    """(kept neurons [layers, ffn_size] in the student's numbering, scores) for `student`, cut from `original`.

    `student` is a copy of `original`, perhaps with blocks removed; the first step prunes it in place.
    """
    prompts, too_long = prompt_ids(rows, tokenizer, settings.max_length - settings.completion_tokens)
    if not prompts:
        raise SddError(
            f"no calibration prompt fits max_length {settings.max_length} with {settings.completion_tokens} "
            "completion tokens; raise max_length"
        )
    if too_long:
        print(f"sdmprune: {too_long} calibration prompts are too long for max_length {settings.max_length}; left out")
    pairs, pad_id = complete(original, tokenizer, prompts, settings, show_progress)
    batches = completion_batches(pairs, pad_id, settings.batch_size)

    neurons = student.config.intermediate_size
    first_cut = max(1, round(settings.warmup_share * (neurons - settings.ffn_size)))
    cross_entropy = taylor_importance(student, batches, None, show_progress, "sdmprune cross-entropy Taylor")
    first_kept = keep_top(cross_entropy, neurons - first_cut, "ffn_size", "the model's intermediate size")
    prune_mlp_neurons(student, first_kept)
    distillation = taylor_importance(student, batches, original, show_progress, "sdmprune self-distillation Taylor")
    final = keep_top(distillation, settings.ffn_size, "ffn_size", "the model's intermediate size")
    kept = torch.gather(first_kept, 1, final)
    scores = {
        "cross_entropy_taylor": rounded(cross_entropy),
        "first_step_kept": first_kept.tolist(),
        "self_distillation_taylor": rounded(distillation),
        "completions": {
            "rows": len(pairs),
            "left_out_too_long": too_long,
            "tokens": sum(len(completion) for _, completion in pairs),
        },
    }
    return kept, scores
