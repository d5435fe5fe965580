"""The `transformers` engine: batched, left-padded decoding on CPU or one GPU; a row leaves its batch when it ends."""

from __future__ import annotations

import hashlib

from sdd_data.engines.base import (
    Capability,
    DecodingConfig,
    EngineConfig,
    Generation,
    Package,
    ProgressCallback,
    end_token_ids,
    model_context_length,
    resolve_context_length,
    tokenize_prompts,
)
from sdd_data.engines.decode_cache import register_grouped_decode
from sdd_data.engines.ragged_decode import DecodeCounts, Sampling, decode
from sdd_data.errors import SddError, require
from sdd_data.models.loading import load_causal_lm, load_tokenizer, resolve_device, resolve_dtype, stored_dtype


class TransformersEngine:
    """Teacher generation with a transformers causal LM, batching prompts of similar length (`ragged_decode`).

    Sampling seeds torch once per batch from the seeds of the rows in it, so a row's sample
    depends on its batch mates; per-row seeding is exact only in the vllm engine. As in vLLM, a
    row's generation ends at the end of the context (finish reason "length").
    """

    name = "transformers"
    options = frozenset(
        {"dtype", "device", "batch_size", "prompt_lookup", "max_model_len", "trust_remote_code", "extra"}
    )
    packages = (Package("torch", "hf"), Package("transformers", "hf"))
    capabilities = frozenset({Capability.CAUSAL_LM})

    def __init__(self, model_path: str, config: EngineConfig):
        self._torch = require("torch", "hf")
        transformers = require("transformers", "hf")
        self.config = config
        self.device = resolve_device(config.device)
        self.dtype = resolve_dtype(config.dtype, on_cpu=self.device == "cpu", stored=stored_dtype(model_path))

        self.tokenizer = load_tokenizer(model_path, trust_remote_code=config.trust_remote_code)
        options = {"attn_implementation": register_grouped_decode(), **config.extra}
        self.model = model = load_causal_lm(
            model_path, dtype=self.dtype, device=self.device, trust_remote_code=config.trust_remote_code, **options
        )

        self.context_length = resolve_context_length(
            model_context_length(model.config), config.max_model_len, model_path
        )
        self.eos_token_ids = end_token_ids(model.generation_config.eos_token_id, self.tokenizer.eos_token_id)
        if not self.eos_token_ids:
            raise SddError(f"{model_path}: neither the generation config nor the tokenizer names an eos token")
        pad_token_id = self.tokenizer.pad_token_id
        self.pad_token_id = pad_token_id if pad_token_id is not None else self.eos_token_ids[0]
        self._versions = {"transformers": transformers.__version__, "torch": self._torch.__version__}
        self.decode_counts = DecodeCounts()
        """Forward passes, tokens and drafts of every generation so far."""

    def generate(
        self,
        prompts: list[str],
        seeds: list[int],
        decoding: DecodingConfig,
        progress: ProgressCallback | None = None,
    ) -> list[Generation]:
        """Generate one completion per rendered prompt, in input order."""
        token_ids = tokenize_prompts(self.tokenizer, prompts, seeds, decoding, self.context_length)
        # Longest first: similar lengths share a batch (less padding) and memory errors show up early.
        order = sorted(range(len(prompts)), key=lambda index: len(token_ids[index]), reverse=True)
        sampling = Sampling() if decoding.greedy else Sampling(decoding.temperature, decoding.top_p, decoding.top_k)
        results: list[Generation | None] = [None] * len(prompts)
        batch_size = self.config.batch_size
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            if not decoding.greedy:
                self._torch.manual_seed(_batch_seed([seeds[index] for index in batch]))
            batch_token_ids = [token_ids[index] for index in batch]
            room = [self._room(len(ids), decoding.max_new_tokens) for ids in batch_token_ids]
            generated = decode(
                self.model,
                batch_token_ids,
                room,
                self.eos_token_ids,
                self.pad_token_id,
                sampling,
                self.device,
                self.config.prompt_lookup,
                self.decode_counts,
            )
            batch_results = [self._to_generation(len(ids), tokens) for ids, tokens in zip(batch_token_ids, generated)]
            for index, generation in zip(batch, batch_results):
                results[index] = generation
            if progress is not None:
                progress(len(batch))
        return results  # type: ignore[return-value]

    def _room(self, prompt_tokens: int, max_new_tokens: int) -> int:
        """How many tokens a row may generate: max_new_tokens, or fewer where the context ends first."""
        if self.context_length is None:
            return max_new_tokens
        return min(max_new_tokens, self.context_length - prompt_tokens)

    def _to_generation(self, prompt_tokens: int, generated: list[int]) -> Generation:
        """A row's new tokens as a generation: "stop" when they end with an end token, else "length"."""
        end = next((position for position, token in enumerate(generated) if token in self.eos_token_ids), None)
        if end is None:
            completion, finish_reason = generated, "length"
        else:
            completion, finish_reason = generated[: end + 1], "stop"
        return Generation(
            text=self.tokenizer.decode(completion, skip_special_tokens=True),
            finish_reason=finish_reason,
            prompt_tokens=prompt_tokens,
            completion_tokens=len(completion),
        )

    def describe(self) -> dict:
        """Engine name, library versions and settings, for provenance."""
        return {
            "engine": self.name,
            **self._versions,
            "dtype": self.dtype,
            "device": str(self.device),
            "batch_size": self.config.batch_size,
            "prompt_lookup": self.config.prompt_lookup,
            "context_length": self.context_length,
        }

    def close(self) -> None:
        """Free the model (and the GPU cache when on CUDA)."""
        self.model = None
        if self.device.startswith("cuda"):
            self._torch.cuda.empty_cache()


def _batch_seed(row_seeds: list[int]) -> int:
    """One torch seed for a batch, derived from the seeds of its rows."""
    digest = hashlib.sha256(",".join(str(seed) for seed in row_seeds).encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1
