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

from .errors import SddError, first_line, require


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
        return {**asdict(self), "acceptance_rate": self.acceptance_rate,
                "mean_accepted_length": self.mean_accepted_length}


def check_tokenizers_match(target_tokenizer, draft_tokenizer) -> None:
    """Raise an error naming the difference when the draft's tokenizer is not the target's."""
    target_vocab, draft_vocab = target_tokenizer.get_vocab(), draft_tokenizer.get_vocab()
    if target_vocab != draft_vocab:
        differing = sorted(set(target_vocab.items()) ^ set(draft_vocab.items()), key=lambda item: item[1])
        token, index = differing[0]
        side = "target" if target_vocab.get(token) == index else "draft"
        raise SddError(f"draft and target tokenizers differ: vocabularies of {len(draft_vocab)} and "
                       f"{len(target_vocab)} tokens; first difference: {token!r} is id {index} only in the {side}")
    for name in ("eos_token_id", "bos_token_id"):
        target_id, draft_id = getattr(target_tokenizer, name), getattr(draft_tokenizer, name)
        if target_id != draft_id:
            raise SddError(f"draft and target tokenizers differ: {name} is {draft_id} in the draft, {target_id} in the target")


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


def speculative_generate(target, draft, prompt_ids: list[int], draft_tokens: int, max_new_tokens: int,
                         eos_token_ids: list[int]) -> tuple[list[int], AcceptanceCounts]:
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
        choices = logits[first:first + len(proposal) + 1].argmax(dim=-1).tolist()
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


def load_model_and_tokenizer(path: str, dtype: str, device: str, trust_remote_code: bool):
    """A model (eval mode) and tokenizer from a checkpoint folder, safetensors only."""
    torch = require("torch", "hf")
    transformers = require("transformers", "hf")
    from safetensors import SafetensorError

    from .engines.base import resolve_device, resolve_dtype

    device = resolve_device(device)
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
        model = transformers.AutoModelForCausalLM.from_pretrained(
            path, dtype=getattr(torch, resolve_dtype(dtype, on_cpu=device == "cpu")), use_safetensors=True,
            trust_remote_code=trust_remote_code)
    except (OSError, ValueError, KeyError, RuntimeError, SafetensorError) as error:
        raise SddError(f"model {path} could not be loaded: {first_line(error)}") from None
    return model.to(device).eval(), tokenizer


def measure_acceptance(target_path: str, draft_path: str, prompts: list[str], draft_tokens: int = 5,
                       max_new_tokens: int = 128, dtype: str = "auto", device: str = "auto",
                       trust_remote_code: bool = False,
                       progress: Callable[[int], None] | None = None) -> AcceptanceCounts:
    """Acceptance of `draft_path` drafting for `target_path` over rendered prompts (special tokens included)."""
    from .engines.base import end_token_ids

    if not prompts:
        raise SddError("no prompts to measure speculative decoding on")
    target, tokenizer = load_model_and_tokenizer(target_path, dtype, device, trust_remote_code)
    draft, draft_tokenizer = load_model_and_tokenizer(draft_path, dtype, device, trust_remote_code)
    check_tokenizers_match(tokenizer, draft_tokenizer)
    eos = end_token_ids(target.generation_config.eos_token_id, tokenizer.eos_token_id)
    total = AcceptanceCounts()
    for prompt in prompts:
        prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        _, counts = speculative_generate(target, draft, prompt_ids, draft_tokens, max_new_tokens, eos)
        total.add(counts)
        if progress is not None:
            progress(1)
    return total


def measure_acceptance_vllm(target_path: str, draft_path: str, prompts: list[str], draft_tokens: int = 5,
                            max_new_tokens: int = 128, dtype: str = "auto",
                            trust_remote_code: bool = False) -> AcceptanceCounts:
    """The same measurement with vLLM's draft-model speculative decoding, read from `LLM.get_metrics()`.

    `vllm.LLM` starts worker processes: call this under `if __name__ == "__main__":` in scripts.
    """
    vllm = require("vllm", "vllm")
    try:
        llm = vllm.LLM(model=target_path, dtype="float32" if dtype == "auto" else dtype,
                       trust_remote_code=trust_remote_code, disable_log_stats=False, enforce_eager=True,
                       speculative_config={"method": "draft_model", "model": draft_path,
                                           "num_speculative_tokens": draft_tokens})
    except Exception as error:  # noqa: BLE001  (vLLM reports unsupported set-ups with many exception types)
        raise SddError(f"vLLM could not start speculative decoding with draft {draft_path}: "
                       f"{first_line(error)}") from None
    sampling = vllm.SamplingParams(temperature=0.0, max_tokens=max_new_tokens)
    outputs = llm.generate([{"prompt_token_ids": llm.get_tokenizer()(prompt, add_special_tokens=False)["input_ids"]}
                            for prompt in prompts], sampling, use_tqdm=False)
    values = {metric.name: metric.value for metric in llm.get_metrics() if hasattr(metric, "value")}
    if "vllm:spec_decode_num_drafts" not in values:
        raise SddError("vLLM reported no speculative-decoding metrics (was the draft used?)")
    return AcceptanceCounts(
        proposed=int(values["vllm:spec_decode_num_draft_tokens"]),
        accepted=int(values["vllm:spec_decode_num_accepted_tokens"]),
        steps=int(values["vllm:spec_decode_num_drafts"]),
        generated=sum(len(output.outputs[0].token_ids) for output in outputs),
    )
