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


def load_engine(name: str, model_path: str, engine_config: EngineConfig | None = None) -> Engine:
    """Build the engine registered as `name` on the checkpoint directory `model_path`."""
    return ENGINES.get(name)(model_path, engine_config or EngineConfig())


__all__ = ["ENGINES", "DecodingConfig", "Engine", "EngineConfig", "Generation", "ProgressCallback", "load_engine"]
