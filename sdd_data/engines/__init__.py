"""Teacher engines, found by name.

An engine is a class taking `(model_path, engine_config)` and implementing the `Engine` protocol of
`sdd_data.engines.base`. Each is listed here by import path and loaded on first use, so listing the
engines imports neither torch nor vLLM.
"""

from __future__ import annotations

from collections.abc import Callable

from sdd_data.engines.base import DecodingConfig, Engine, EngineConfig, Generation, ProgressCallback
from sdd_data.registry import Registry

EngineFactory = Callable[[str, EngineConfig], Engine]

ENGINES: Registry[EngineFactory] = Registry(
    "engine",
    {
        "transformers": "sdd_data.engines.transformers_engine:TransformersEngine",
        "vllm": "sdd_data.engines.vllm_engine:VllmEngine",
    },
)
"""Engine name -> engine class."""

ENGINE_OPTIONS: dict[str, frozenset[str]] = {
    "transformers": frozenset({"dtype", "device", "batch_size", "max_model_len", "trust_remote_code", "extra"}),
    "vllm": frozenset(
        {"dtype", "tensor_parallel_size", "gpu_memory_utilization", "max_model_len", "trust_remote_code", "extra"}
    ),
}
"""The `EngineConfig` fields each engine reads (data_parallel_size is the executor's): the others are no part of
what a run with that engine makes."""


def load_engine(name: str, model_path: str, engine_config: EngineConfig | None = None) -> Engine:
    """Build the engine registered as `name` on the checkpoint directory `model_path`."""
    return ENGINES.get(name)(model_path, engine_config or EngineConfig())


__all__ = [
    "ENGINES",
    "ENGINE_OPTIONS",
    "DecodingConfig",
    "Engine",
    "EngineConfig",
    "Generation",
    "ProgressCallback",
    "load_engine",
]
