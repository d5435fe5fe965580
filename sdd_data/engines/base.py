"""The small interface every teacher engine implements."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from enum import Enum
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

    def __post_init__(self) -> None:
        if self.temperature < 0:
            raise SddError(f"temperature must be 0 (greedy) or more, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise SddError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.top_k < 0:
            raise SddError(f"top_k must be 0 (off) or more, got {self.top_k}")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0


@dataclass
class EngineConfig:
    """Where and how the teacher runs."""

    dtype: str = "auto"
    """Weights dtype: auto (bfloat16 on GPU; on CPU float32, or bfloat16 for a bfloat16 checkpoint on a CPU with
    native bfloat16), float32, bfloat16 or float16."""
    device: str = "auto"
    """transformers engine: auto, cpu, cuda or cuda:N."""
    batch_size: int = 32
    """transformers engine: rows decoded together (a row leaves the batch as soon as it ends, so a large batch
    costs little more than the tokens it makes)."""
    prompt_lookup: int = 8
    """transformers engine, greedy decoding: most tokens a row drafts per step from its own prompt and answer
    (where its last tokens appeared before), checked in the same forward pass; 0 drafts nothing. The text is the
    greedy one either way; a rewrite that quotes its reference is made in fewer steps."""
    tensor_parallel_size: int = 1
    """vllm engine: GPUs per model replica."""
    data_parallel_size: int = 1
    """vllm engine: model replicas."""
    gpu_memory_utilization: float = 0.9
    """vllm engine: fraction of GPU memory for weights and KV cache."""
    max_model_len: int | None = None
    """Context length of the teacher in tokens, prompt and generation together (defaults to the model's).
    A prompt must leave room for at least one new token; generation stops at the end of the context."""
    trust_remote_code: bool = False
    """Run model code from the checkpoint. Off unless you trust the model's authors."""
    extra: dict = field(default_factory=dict)
    """Extra keyword arguments passed as they are to the engine constructor."""

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise SddError(f"batch_size must be at least 1, got {self.batch_size}")
        if self.prompt_lookup < 0:
            raise SddError(f"prompt_lookup must be 0 (off) or more, got {self.prompt_lookup}")


class Capability(Enum):
    """What an engine can do beyond `generate`. The stages ask for these, never for an engine's name."""

    STREAM = "stream"
    """`generate_stream(requests)`: distill feeds it the rows of every shard as one continuous stream."""
    PROMPT_LOGPROBS = "prompt-logprobs"
    """`prompt_logprobs(token_ids, progress)`: eval scores log-likelihoods (mc, nll) through it."""
    CAUSAL_LM = "causal-lm"
    """It generates with a transformers causal LM, held as `model`: eval scores log-likelihoods exactly on it and
    verifies drafts exactly with the same loader; select computes exact full-vocabulary JSD the same way."""
    TOP_LOGPROBS = "top-logprobs"
    """It runs vLLM, whose top-k log-probabilities of every prompt position select's approximate JSD reads."""
    DRAFT_MODEL = "draft-model"
    """It runs vLLM, which decodes speculatively with a draft model and counts the accepted tokens: eval measures
    drafts that way."""
    DATA_PARALLEL = "data-parallel"
    """`data_parallel_size` above 1 runs that many replicas on this machine, one process each (distill)."""
    GPU_REPLICAS = "gpu-replicas"
    """On a Ray cluster with GPUs, each of its replicas asks for `tensor_parallel_size` of them (distill)."""


METHOD_CAPABILITIES = {Capability.STREAM: "generate_stream", Capability.PROMPT_LOGPROBS: "prompt_logprobs"}
"""Capabilities an engine has by defining the method; it declares the others in `capabilities`."""


@dataclass(frozen=True)
class Package:
    """An optional package an engine imports, and the sdd-data extra that installs it."""

    module: str
    extra: str


@dataclass(frozen=True)
class EngineTraits:
    """What an engine class declares as class attributes, beside its `name`.

    `options`: the `EngineConfig` fields it reads (the others are no part of what a run with it makes);
    `packages`: the optional packages it imports; `capabilities`: what it can do beyond `generate`.
    """

    options: frozenset[str]
    packages: tuple[Package, ...]
    capabilities: frozenset[Capability]

    @classmethod
    def of(cls, engine_class: object) -> EngineTraits:
        """The traits `engine_class` declares; one that declares none reads no option, needs no package and can
        do what its methods give (`METHOD_CAPABILITIES`)."""
        declared = frozenset(getattr(engine_class, "capabilities", ()))
        methods = {
            capability
            for capability, method in METHOD_CAPABILITIES.items()
            if callable(getattr(engine_class, method, None))
        }
        return cls(
            options=frozenset(getattr(engine_class, "options", ())),
            packages=tuple(getattr(engine_class, "packages", ())),
            capabilities=declared | methods,
        )

    def can(self, capability: Capability) -> bool:
        """Whether the engine has `capability`."""
        return capability in self.capabilities


ProgressCallback = Callable[[int], None]

StreamRequest = tuple[Hashable, str, int, "DecodingConfig"]
"""One request of a streaming engine's feed: a key of the caller's, the rendered prompt, the row's seed and how
to decode it (a retry of a rejected rewrite samples where the first attempt was greedy).

An engine that can keep itself full across groups of rows has a `generate_stream(requests)` method yielding
`(key, Generation)` as each request finishes, in any order; the distill stage uses it when present. The feed
may run dry and yield again later (retries join it as earlier requests finish): the engine reads it again
whenever it has room, and stops once the feed is dry and no request of it is left running."""


class Engine(Protocol):
    """A teacher: turns rendered prompts into generations."""

    name: str
    tokenizer: object  # a transformers tokenizer; templates render prompts with it
    context_length: int | None  # tokens of prompt and generation together; None when unknown

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


CONTEXT_LENGTH_KEYS = ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length")
"""Model config fields that give the context length, by name, most common first."""


def model_context_length(model_config) -> int | None:
    """The context length a transformers model config declares (of its text model), or None when it names none."""
    text_config = model_config.get_text_config() if hasattr(model_config, "get_text_config") else model_config
    for key in CONTEXT_LENGTH_KEYS:
        value = getattr(text_config, key, None)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def resolve_context_length(model_limit: int | None, max_model_len: int | None, model_path: str) -> int | None:
    """The context to work in: `max_model_len` when set (no longer than the model's), else the model's own."""
    if max_model_len is None:
        return model_limit
    if max_model_len < 2:
        raise SddError(f"max_model_len must be at least 2, got {max_model_len}")
    if model_limit is not None and max_model_len > model_limit:
        raise SddError(
            f"max_model_len {max_model_len} is longer than the context of {model_path} ({model_limit} tokens); "
            "lower it or leave it unset"
        )
    return max_model_len


def prompt_fits(prompt_tokens: int, context_length: int | None) -> bool:
    """Whether a prompt leaves room in the context for at least one new token."""
    return context_length is None or prompt_tokens + 1 <= context_length


def count_tokens(tokenizer, text: str) -> int:
    """Tokens of a rendered prompt as the engines feed it (no special tokens added: they are in the text)."""
    return len(tokenizer(text, add_special_tokens=False).input_ids)


def tokenize_prompts(
    tokenizer, prompts: list[str], seeds: list[int], decoding: DecodingConfig, context_length: int | None = None
) -> list[list[int]]:
    """Check a generate() call and tokenize its rendered prompts (no special tokens added: they are in the text)."""
    if len(prompts) != len(seeds):
        raise SddError(f"got {len(prompts)} prompts but {len(seeds)} seeds")
    if decoding.max_new_tokens < 1:
        raise SddError(f"max_new_tokens must be at least 1, got {decoding.max_new_tokens}")
    token_ids = [tokenizer(prompt, add_special_tokens=False)["input_ids"] for prompt in prompts]
    empty = [index for index, ids in enumerate(token_ids) if not ids]
    if empty:
        raise SddError(f"cannot generate from empty prompts (rows {empty[:5]})")
    too_long = [index for index, ids in enumerate(token_ids) if not prompt_fits(len(ids), context_length)]
    if too_long:
        raise SddError(
            f"prompts of rows {too_long[:5]} leave no room for a new token in the {context_length}-token context; "
            "shorten them or raise max_model_len"
        )
    return token_ids
