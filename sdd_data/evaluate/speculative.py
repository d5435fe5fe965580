"""Speculative-decoding acceptance of a draft model for a target model, measured with greedy decoding.

Each step the draft proposes `draft_tokens` tokens greedily (always that many: no confidence cut-off;
fewer only when the token budget ends or the draft proposes an end of turn), the target checks them
all in one forward pass, the longest prefix that equals the target's own greedy choices is accepted,
and the target's next token is added. The text produced is exactly the target's greedy output.

- acceptance rate α = accepted draft tokens / proposed draft tokens;
- mean accepted length τ = tokens produced per target forward = 1 + accepted / steps.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

from sdd_data.engines.base import end_token_ids
from sdd_data.errors import SddError, first_line, require
from sdd_data.models.loading import check_same_tokenizer, load_causal_lm, load_tokenizer, resolve_device, resolve_dtype


@dataclass
class AcceptanceCounts:
    """Counts of one speculative decoding run (or a sum of runs)."""

    proposed: int = 0
    """Draft tokens proposed."""
    accepted: int = 0
    """Draft tokens accepted by the target."""
    steps: int = 0
    """Target verification forwards (one per draft proposal)."""
    generated: int = 0
    """Tokens produced (after the max_new_tokens cut)."""

    def add(self, other: AcceptanceCounts) -> None:
        """Add another run's counts to these."""
        self.proposed += other.proposed
        self.accepted += other.accepted
        self.steps += other.steps
        self.generated += other.generated

    @property
    def acceptance_rate(self) -> float:
        """α: accepted / proposed draft tokens."""
        return self.accepted / self.proposed if self.proposed else 0.0

    @property
    def mean_accepted_length(self) -> float:
        """τ: tokens per target forward, accepted draft tokens plus the target's own token."""
        return 1.0 + self.accepted / self.steps if self.steps else 0.0

    def summary(self) -> dict:
        """The counts with α and τ, JSON-ready."""
        return {
            **asdict(self),
            "acceptance_rate": self.acceptance_rate,
            "mean_accepted_length": self.mean_accepted_length,
        }


def _next_logits(model, tokens: list[int], cache):
    """Logits for every position of `tokens`, fed after what `cache` holds (which it then holds too)."""
    import torch

    device = next(model.parameters()).device
    with torch.inference_mode():
        output = model(input_ids=torch.tensor([tokens], device=device), past_key_values=cache, use_cache=True)
    return output.logits[0]


def _keep_first(cache, length: int) -> None:
    """Drop every cached position from `length` on."""
    surplus = cache.get_seq_length() - length
    if surplus > 0:
        cache.crop(-surplus)


def speculative_generate(
    target, draft, prompt_ids: list[int], draft_tokens: int, max_new_tokens: int, eos_token_ids: list[int]
) -> tuple[list[int], AcceptanceCounts]:
    """Greedy speculative decoding of one prompt: the target's greedy tokens and the acceptance counts."""
    from transformers import DynamicCache

    if draft_tokens < 1 or max_new_tokens < 1:
        raise SddError(f"draft_tokens and max_new_tokens must be at least 1, got {draft_tokens} and {max_new_tokens}")
    end = set(eos_token_ids)
    sequence = list(prompt_ids)
    target_cache, draft_cache = DynamicCache(), DynamicCache()
    target_seen = draft_seen = 0
    counts = AcceptanceCounts()
    produced: list[int] = []
    while len(produced) < max_new_tokens and not (produced and produced[-1] in end):
        proposal: list[int] = []
        while len(proposal) < min(draft_tokens, max_new_tokens - len(produced)):
            context = sequence + proposal
            logits = _next_logits(draft, context[draft_seen:], draft_cache)
            draft_seen = len(context)
            proposal.append(int(logits[-1].argmax()))
            if proposal[-1] in end:
                break
        checked = sequence + proposal
        logits = _next_logits(target, checked[target_seen:], target_cache)
        first = len(sequence) - 1 - target_seen  # the row predicting the first proposed token
        choices = logits[first : first + len(proposal) + 1].argmax(dim=-1).tolist()
        accepted = 0
        while accepted < len(proposal) and proposal[accepted] == choices[accepted]:
            accepted += 1
        new_tokens = proposal[:accepted]
        if not (new_tokens and new_tokens[-1] in end):
            new_tokens.append(choices[accepted])
        counts.add(AcceptanceCounts(len(proposal), accepted, 1, 0))
        # Both caches keep only the accepted tokens; the target's own token is fed next step.
        target_seen = len(sequence) + accepted
        _keep_first(target_cache, target_seen)
        draft_seen = min(draft_seen, target_seen)
        _keep_first(draft_cache, draft_seen)
        sequence.extend(new_tokens)
        produced.extend(new_tokens)
    produced = produced[:max_new_tokens]
    counts.generated = len(produced)
    return produced, counts


def measure_acceptance(
    target_path: str,
    draft_path: str,
    prompts: list[str],
    draft_tokens: int = 5,
    max_new_tokens: int = 128,
    dtype: str = "auto",
    device: str = "auto",
    trust_remote_code: bool = False,
    progress: Callable[[int], None] | None = None,
) -> AcceptanceCounts:
    """Acceptance of `draft_path` drafting for `target_path` over rendered prompts (special tokens included)."""
    if not prompts:
        raise SddError("no prompts to measure speculative decoding on")
    device = resolve_device(device)
    dtype = resolve_dtype(dtype, on_cpu=device == "cpu")
    tokenizer = load_tokenizer(target_path, trust_remote_code=trust_remote_code)
    check_same_tokenizer(
        tokenizer,
        load_tokenizer(draft_path, trust_remote_code=trust_remote_code),
        f"the target {target_path}",
        f"the draft {draft_path}",
        chat_template=False,
    )
    target, draft = (
        load_causal_lm(path, dtype=dtype, device=device, trust_remote_code=trust_remote_code)
        for path in (target_path, draft_path)
    )
    eos = end_token_ids(target.generation_config.eos_token_id, tokenizer.eos_token_id)
    total = AcceptanceCounts()
    for prompt in prompts:
        prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        _, counts = speculative_generate(target, draft, prompt_ids, draft_tokens, max_new_tokens, eos)
        total.add(counts)
        if progress is not None:
            progress(1)
    return total


def measure_acceptance_vllm(
    target_path: str,
    draft_path: str,
    prompts: list[str],
    draft_tokens: int = 5,
    max_new_tokens: int = 128,
    dtype: str = "auto",
    trust_remote_code: bool = False,
) -> AcceptanceCounts:
    """The same measurement with vLLM's draft-model speculative decoding, read from `LLM.get_metrics()`.

    `vllm.LLM` starts worker processes: call this under `if __name__ == "__main__":` in scripts.
    """
    vllm = require("vllm", "vllm")
    try:
        llm = vllm.LLM(
            model=target_path,
            dtype="float32" if dtype == "auto" else dtype,
            trust_remote_code=trust_remote_code,
            disable_log_stats=False,
            enforce_eager=True,
            speculative_config={"method": "draft_model", "model": draft_path, "num_speculative_tokens": draft_tokens},
        )
    except Exception as error:  # noqa: BLE001  (vLLM reports unsupported set-ups with many exception types)
        raise SddError(
            f"vLLM could not start speculative decoding with draft {draft_path}: {first_line(error)}"
        ) from None
    sampling = vllm.SamplingParams(temperature=0.0, max_tokens=max_new_tokens)
    outputs = llm.generate(
        [
            {"prompt_token_ids": llm.get_tokenizer()(prompt, add_special_tokens=False)["input_ids"]}
            for prompt in prompts
        ],
        sampling,
        use_tqdm=False,
    )
    values = {metric.name: metric.value for metric in llm.get_metrics() if hasattr(metric, "value")}
    if "vllm:spec_decode_num_drafts" not in values:
        raise SddError("vLLM reported no speculative-decoding metrics (was the draft used?)")
    return AcceptanceCounts(
        proposed=int(values["vllm:spec_decode_num_draft_tokens"]),
        accepted=int(values["vllm:spec_decode_num_accepted_tokens"]),
        steps=int(values["vllm:spec_decode_num_drafts"]),
        generated=sum(len(output.outputs[0].token_ids) for output in outputs),
    )
