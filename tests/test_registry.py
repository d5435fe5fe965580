"""The generic registry: members listed by their owner, lazy `module:attribute` members, clear errors."""

from __future__ import annotations

import sys

import pytest

from sdd_data.errors import SddError
from sdd_data.registry import Registry, lazy_exports, load_member


def test_members_are_found_by_name_in_listed_order():
    registry = Registry("colour", {"red": 1, "green": 2})
    registry.add("blue", 3)
    assert registry.names() == ["red", "green", "blue"]
    assert registry.get("green") == 2 and "blue" in registry and "pink" not in registry
    assert dict(registry.items()) == {"red": 1, "green": 2, "blue": 3} and len(registry) == 3


def test_a_name_registered_twice_is_an_error():
    registry = Registry("colour", {"red": 1})
    with pytest.raises(ValueError, match="colour 'red' is already registered"):
        registry.add("red", 2)
    assert registry.get("red") == 1


def test_an_unknown_name_lists_the_known_ones():
    with pytest.raises(SddError, match=r"unknown colour 'pink'; known colours: red, green"):
        Registry("colour", {"red": 1, "green": 2}).get("pink")


def test_a_lazy_member_is_imported_on_first_use_only(monkeypatch):
    monkeypatch.delitem(sys.modules, "json.tool", raising=False)
    registry = Registry("tool", {"json": "json.tool:main"})
    assert "json.tool" not in sys.modules
    main = registry.get("json")
    assert "json.tool" in sys.modules and main is sys.modules["json.tool"].main
    assert registry.get("json") is main


def test_malformed_lazy_references_are_refused():
    with pytest.raises(ValueError, match="module:attribute"):
        load_member("json.tool")
    with pytest.raises(AttributeError):
        load_member("json:no_such_function")


def test_lazy_exports_resolve_names_and_refuse_others():
    module_getattr = lazy_exports({"dumps": "json:dumps"})
    import json

    assert module_getattr("dumps") is json.dumps
    with pytest.raises(AttributeError):
        module_getattr("loads")


@pytest.mark.parametrize(
    ("owner", "name"),
    [
        ("sdd_data.engines:ENGINES", "vllm"),
        ("sdd_data.select.selectors:SELECTORS", "paser"),
        ("sdd_data.select.scorers:SCORERS", "vllm"),
        ("sdd_data.evaluate.tasks:TASKS", "lm-eval"),
        ("sdd_data.stages:STAGES", "train"),
    ],
)
def test_every_listed_member_of_the_project_registries_loads(owner, name):
    registry = load_member(owner)
    assert name in registry
    assert all(member is not None for _, member in registry.items())
