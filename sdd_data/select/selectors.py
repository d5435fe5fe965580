"""Selection methods found by name: PASER and the baselines, sharing one config, input bundle and result."""

from __future__ import annotations

import time

import numpy as np

from sdd_data.registry import Registry
from sdd_data.select.budget import resolve_budget
from sdd_data.select.config import SelectConfig
from sdd_data.select.selection import SelectionResult, Selector, validated_inputs

SELECTORS: Registry[Selector] = Registry(
    "selection method",
    {
        "paser": "sdd_data.select.paser:paser_selection",
        "random": "sdd_data.select.baselines:random_selection",
        "longest": "sdd_data.select.baselines:longest_selection",
        "degradation": "sdd_data.select.baselines:degradation_selection",
    },
)
"""Method name -> function (inputs, config, budget in rows) -> result."""


def select_rows(
    embeddings: np.ndarray,
    degradation: np.ndarray,
    prompt_tokens: np.ndarray,
    response_tokens: np.ndarray,
    instructions: list[str],
    texts: list[str] | None = None,
    config: SelectConfig | None = None,
) -> SelectionResult:
    """Pick `config.budget` rows with `config.method`; texts default to the instructions."""
    config = config or SelectConfig()
    selector = SELECTORS.get(config.method)
    inputs = validated_inputs(embeddings, degradation, prompt_tokens, response_tokens, instructions, texts)
    budget = resolve_budget(config.budget, len(inputs.degradation))
    started = time.perf_counter()
    result = selector(inputs, config, budget)
    result.report.setdefault("seconds", {})["total"] = time.perf_counter() - started
    return result
