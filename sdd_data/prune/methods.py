"""The prune methods found by name (`--method`): each is one `PruneMethod` object, listed here."""

from __future__ import annotations

from sdd_data.prune.method import PruneMethod
from sdd_data.registry import Registry

PRUNE_METHODS: Registry[PruneMethod] = Registry(
    "prune method",
    {
        "angular": "sdd_data.prune.depth_methods:ANGULAR",
        "block-influence": "sdd_data.prune.depth_methods:BLOCK_INFLUENCE",
        "minitron": "sdd_data.prune.width_methods:MINITRON",
        "sdmprune": "sdd_data.prune.width_methods:SDMPRUNE",
    },
)
"""Method name -> method object."""


def method_names(kind: str) -> list[str]:
    """The registered methods of one kind (`depth` or `width`), in registration order."""
    return [name for name, method in PRUNE_METHODS.items() if method.kind == kind]


def methods_help() -> str:
    """One sentence per registered method, for the `--method` help."""
    described = " ".join(f"`{name}` ({method.kind}): {method.help}." for name, method in PRUNE_METHODS.items())
    return f"The registered methods: {described}"
