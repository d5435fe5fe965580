"""Named members found by name: engines, templates, checks, extractors, selection methods, eval tasks, stages.

The module that owns a registry lists its members. A member that pulls a heavy import is listed as a
`"module:attribute"` string and imported on first use, so listing names stays cheap; the member's module
never imports the registry's owner back, so registries make no import circles.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Generic, TypeVar

from sdd_data.errors import SddError

Member = TypeVar("Member")


def load_member(reference: str) -> Any:
    """The object named by `"package.module:attribute"`."""
    module_name, separator, attribute = reference.partition(":")
    if not separator or not module_name or not attribute:
        raise ValueError(f"a lazy member is written 'module:attribute', got {reference!r}")
    return getattr(importlib.import_module(module_name), attribute)


class Registry(Generic[Member]):
    """Name -> member, in the order the owner listed them; a `"module:attribute"` member loads on first use."""

    def __init__(self, kind: str, members: Mapping[str, Member | str] | None = None):
        self.kind = kind
        self._members: dict[str, Member | str] = {}
        for name, member in (members or {}).items():
            self.add(name, member)

    def add(self, name: str, member: Member | str) -> None:
        """Register `member` under `name`; a name registered twice is a programming error."""
        if name in self._members:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._members[name] = member

    def get(self, name: str) -> Member:
        """The member called `name` (imported now if it was listed lazily), or an error listing the known names."""
        if name not in self._members:
            raise SddError(f"unknown {self.kind} {name!r}; known {self.kind}s: {', '.join(self._members)}")
        member = self._members[name]
        if isinstance(member, str):
            member = self._members[name] = load_member(member)
        return member

    def names(self) -> list[str]:
        """Every registered name, in registration order."""
        return list(self._members)

    def items(self) -> Iterator[tuple[str, Member]]:
        """(name, member) pairs, loading lazy members."""
        return ((name, self.get(name)) for name in self._members)

    def __contains__(self, name: object) -> bool:
        return name in self._members

    def __iter__(self) -> Iterator[str]:
        return iter(self._members)

    def __len__(self) -> int:
        return len(self._members)


def lazy_exports(exports: Mapping[str, str]) -> Callable[[str], Any]:
    """A module `__getattr__` that imports each exported name from its `"module:attribute"` on first use.

    A stage package keeps its config importable without torch or pyarrow this way, while its stage
    function, which needs them, is still `from sdd_data.<stage> import <function>`.
    """

    def module_getattr(name: str) -> Any:
        if name not in exports:
            raise AttributeError(name)
        return load_member(exports[name])

    return module_getattr
