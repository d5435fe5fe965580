"""Teacher engines, registered by name.

An engine is a class taking `(model_path, engine_config)` and implementing the `Engine`
protocol of `sdd_data.engines.base`. Engine modules import their heavy libraries (torch,
vllm) only when an engine is built, so listing engines stays cheap.
"""

from __future__ import annotations

from typing import Callable, TypeVar

from sdd_data.engines.base import (
    DecodingConfig,
    Engine,
    EngineConfig,
    Generation,
    ProgressCallback,
)
from sdd_data.errors import SddError

EngineFactory = Callable[[str, EngineConfig], Engine]
FactoryT = TypeVar("FactoryT", bound=EngineFactory)

ENGINES: dict[str, EngineFactory] = {}
"""Engine name -> engine class (or factory)."""


def register_engine(name: str) -> Callable[[FactoryT], FactoryT]:
    """Class decorator that makes an engine available to `load_engine` under `name`."""

    def register(factory: FactoryT) -> FactoryT:
        if name in ENGINES:
            raise ValueError(f"engine {name!r} is already registered")
        ENGINES[name] = factory
        return factory

    return register


def load_engine(name: str, model_path: str, engine_config: EngineConfig | None = None) -> Engine:
    """Build the engine registered as `name` on the checkpoint directory `model_path`."""
    if name not in ENGINES:
        raise SddError(f"unknown engine {name!r}; known engines: {', '.join(sorted(ENGINES))}")
    return ENGINES[name](model_path, engine_config or EngineConfig())


# Imported last: these modules register themselves with the decorator above.
from sdd_data.engines import hf, vllm_engine  # noqa: E402,F401

__all__ = [
    "ENGINES",
    "DecodingConfig",
    "Engine",
    "EngineConfig",
    "Generation",
    "ProgressCallback",
    "load_engine",
    "register_engine",
]
