"""The small interface every teacher engine implements."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from sdd_data.errors import SddError


@dataclass(frozen=True)
class Generation:
    """One teacher output: the text, why it stopped and how many tokens it took."""

    text: str
    finish_reason: str  # "stop" (end of turn) or "length" (hit max_new_tokens)
    prompt_tokens: int
    completion_tokens: int


@dataclass
class DecodingConfig:
    """How the teacher decodes. Greedy (temperature 0) unless told otherwise."""

    max_new_tokens: int = 512
    """Most tokens generated per row; a rewrite that hits it is truncated and never kept."""
    temperature: float = 0.0
    """0 means greedy decoding."""
    top_p: float = 1.0
    """Nucleus sampling mass (ignored when greedy)."""
    top_k: int = 0
    """Top-k sampling cut-off; 0 disables it (ignored when greedy)."""
    seed: int = 0
    """Base seed; each row's seed is derived from it and the row id."""

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0.0


@dataclass
class EngineConfig:
    """Where and how the teacher runs."""

    dtype: str = "auto"
    """Weights dtype: auto (float32 on CPU, bfloat16 on GPU), float32, bfloat16 or float16."""
    device: str = "auto"
    """transformers engine: auto, cpu, cuda or cuda:N."""
    batch_size: int = 8
    """transformers engine: rows per generate() call."""
    tensor_parallel_size: int = 1
    """vllm engine: GPUs per model replica."""
    data_parallel_size: int = 1
    """vllm engine: model replicas."""
    gpu_memory_utilization: float = 0.9
    """vllm engine: fraction of GPU memory for weights and KV cache."""
    max_model_len: int | None = None
    """vllm engine: context length cap (defaults to the model's)."""
    trust_remote_code: bool = False
    """Run model code from the checkpoint. Off unless you trust the model's authors."""
    extra: dict = field(default_factory=dict)
    """Extra keyword arguments passed as they are to the engine constructor."""


ProgressCallback = Callable[[int], None]


class Engine(Protocol):
    """A teacher: turns rendered prompts into generations."""

    name: str
    tokenizer: object  # a transformers tokenizer; templates render prompts with it

    def generate(
        self,
        prompts: list[str],
        seeds: list[int],
        decoding: DecodingConfig,
        progress: ProgressCallback | None = None,
    ) -> list[Generation]:
        """Generate one completion per fully rendered prompt (special tokens included), in order."""
        ...

    def describe(self) -> dict:
        """Engine name, version and settings, for provenance."""
        ...

    def close(self) -> None:
        """Free the model."""
        ...


def end_token_ids(generation_eos: int | list[int] | None, tokenizer_eos: int | None) -> list[int]:
    """All end-of-sequence token ids (generation config first, then the tokenizer's), without duplicates."""
    ids = generation_eos if isinstance(generation_eos, list) else [generation_eos]
    return list(dict.fromkeys(token for token in [*ids, tokenizer_eos] if token is not None))


def tokenize_prompts(tokenizer, prompts: list[str], seeds: list[int], decoding: DecodingConfig) -> list[list[int]]:
    """Check a generate() call and tokenize its rendered prompts (no special tokens added: they are in the text)."""
    if len(prompts) != len(seeds):
        raise SddError(f"got {len(prompts)} prompts but {len(seeds)} seeds")
    if decoding.max_new_tokens < 1:
        raise SddError(f"max_new_tokens must be at least 1, got {decoding.max_new_tokens}")
    token_ids = [tokenizer(prompt, add_special_tokens=False)["input_ids"] for prompt in prompts]
    empty = [index for index, ids in enumerate(token_ids) if not ids]
    if empty:
        raise SddError(f"cannot generate from empty prompts (rows {empty[:5]})")
    return token_ids
