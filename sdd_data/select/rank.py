"""PASER's Instruction Efficiency Score: degradation per unit of (log) training cost."""

from __future__ import annotations

import numpy as np

from sdd_data.errors import SddError


def instruction_efficiency(
    degradation: np.ndarray, prompt_tokens: np.ndarray, response_tokens: np.ndarray
) -> np.ndarray:
    """IES = degradation / log(cost), cost = (prompt_tokens + response_tokens)², both token counts.

    log(cost) is floored at 1 (cost below e, i.e. fewer than 2 tokens in all), so a tiny or empty
    row never divides by zero or by a negative number.
    """
    degradation = np.asarray(degradation, dtype=np.float64)
    prompt_tokens = np.asarray(prompt_tokens)
    response_tokens = np.asarray(response_tokens)
    if not (degradation.shape == prompt_tokens.shape == response_tokens.shape):
        raise SddError("degradation, prompt_tokens and response_tokens must have one value per row")
    if (prompt_tokens < 0).any() or (response_tokens < 0).any():
        raise SddError("token counts must be non-negative")
    cost = (prompt_tokens.astype(np.float64) + response_tokens) ** 2
    return degradation / np.maximum(np.log(np.maximum(cost, 1.0)), 1.0)
