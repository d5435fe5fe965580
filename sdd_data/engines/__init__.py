"""Teacher engines, found by name: one class per engine, one registry.

An engine is a class taking `(model_path, engine_config)` that implements the `Engine` protocol of
`sdd_data.engines.base` and declares, as class attributes, its `name`, the `options` it reads, the optional
`packages` it imports and its `capabilities` (`EngineTraits`). Each is listed here by import path and loaded on
first use, so listing the engines imports nothing; an engine module imports torch or vLLM only inside its
methods, so reading an engine's traits imports neither. Stages ask an engine's traits (or an `EngineTable`
keyed by capability), never its name.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Generic, TypeVar

from sdd_data.engines.base import (
    Capability,
    DecodingConfig,
    Engine,
    EngineConfig,
    EngineTraits,
    Generation,
    Package,
    ProgressCallback,
)
from sdd_data.errors import SddError
from sdd_data.registry import Registry

EngineFactory = Callable[[str, EngineConfig], Engine]
Member = TypeVar("Member")

ENGINES: Registry[EngineFactory] = Registry(
    "engine",
    {
        "transformers": "sdd_data.engines.transformers_engine:TransformersEngine",
        "vllm": "sdd_data.engines.vllm_engine:VllmEngine",
    },
)
"""Engine name -> engine class."""


def engine_traits(name: str) -> EngineTraits:
    """What the engine registered as `name` declares: its options, packages and capabilities."""
    return EngineTraits.of(ENGINES.get(name))


def engines_that_can(capability: Capability) -> list[str]:
    """The registered engines with `capability`, in registration order."""
    return [name for name in ENGINES if engine_traits(name).can(capability)]


def load_engine(name: str, model_path: str, engine_config: EngineConfig | None = None) -> Engine:
    """Build the engine registered as `name` on the checkpoint directory `model_path`."""
    return ENGINES.get(name)(model_path, engine_config or EngineConfig())


class EngineTable(Generic[Member]):
    """A stage's way of doing one thing with an engine, by capability: an engine's member is the one of the first
    capability listed that the engine has. It reads `ENGINES` when asked, so an engine registered later with a
    listed capability is in the table at once. Members may be `"module:attribute"` strings, loaded on first use.
    """

    def __init__(self, kind: str, action: str, members: Mapping[Capability, Member | str]):
        self.kind = kind
        """What the table's names are, in messages (`scorer engine`)."""
        self.action = action
        """What its members do, in messages (`score log-likelihoods`)."""
        self._order = tuple(members)
        self._members: Registry[Member] = Registry(
            kind, {capability.value: member for capability, member in members.items()}
        )

    def capability(self, name: str) -> Capability | None:
        """The capability through which engine `name` is in the table, or None when it is not."""
        if name not in ENGINES:
            return None
        traits = engine_traits(name)
        return next((capability for capability in self._order if traits.can(capability)), None)

    def get(self, name: str) -> Member:
        """The member for engine `name`, or an error naming the engines that can."""
        capability = self.capability(name)
        if capability is None:
            reason = f"engine {name!r} cannot {self.action}" if name in ENGINES else f"unknown {self.kind} {name!r}"
            raise SddError(f"{reason}; known {self.kind}s: {', '.join(self.names())}")
        return self._members.get(capability.value)

    def names(self) -> list[str]:
        """The engines in the table, in registration order."""
        return [name for name in ENGINES if self.capability(name) is not None]

    def items(self) -> Iterator[tuple[str, Member]]:
        """(engine name, member) pairs, loading lazy members."""
        return ((name, self.get(name)) for name in self.names())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.capability(name) is not None

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())


__all__ = [
    "ENGINES",
    "Capability",
    "DecodingConfig",
    "Engine",
    "EngineConfig",
    "EngineTable",
    "EngineTraits",
    "Generation",
    "Package",
    "ProgressCallback",
    "engine_traits",
    "engines_that_can",
    "load_engine",
]
