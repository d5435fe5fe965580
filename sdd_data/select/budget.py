"""Share a selection budget across clusters in proportion to their mean degradation (CDS).

Quotas are B·CDS_k/ΣCDS rounded by largest remainder, then capped by what each cluster can give;
what capped clusters cannot use goes back to the others in the same proportions, round after round,
so the quotas always add up to min(B, Σ capacity) exactly. Clusters whose CDS is 0 get rows only
once every cluster with a positive CDS is exhausted; they then share the rest in proportion to
their remaining capacity.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from sdd_data.errors import SddError


def parse_budget(budget: str | float) -> int | float:
    """A budget as a row count (int) or a fraction in (0, 1] (float).

    Strings: digits only are a row count ("2000", and "1" is one row); a number with a decimal point
    is a fraction ("0.2"); a number ending in `%` is a percentage ("20%"). Python ints are row counts
    and floats are fractions.
    """
    if isinstance(budget, str):
        text = budget.strip().replace("_", "")
        try:
            if text.endswith("%"):
                budget = float(text[:-1]) / 100
            elif text.isdigit():
                budget = int(text)
            else:
                budget = float(text)
        except ValueError:
            raise SddError(
                f"the budget must be a row count (2000), a fraction (0.2) or a percentage (20%), got {budget!r}"
            ) from None
    if isinstance(budget, bool) or not isinstance(budget, numbers.Real):
        raise SddError(f"the budget must be a row count, a fraction or a percentage, got {budget!r}")
    if not math.isfinite(budget) or budget <= 0:
        raise SddError(f"the budget must be positive, got {budget!r}")
    if isinstance(budget, numbers.Integral):
        return int(budget)
    if budget > 1:
        raise SddError(
            f"a fractional budget must be in (0, 1] (100%), got {budget!r}; "
            "a row count is written without a decimal point"
        )
    return float(budget)


def resolve_budget(budget: str | float, n_rows: int) -> int:
    """The budget (see `parse_budget`) as a row count, capped at n_rows; a fraction keeps at least 1 row."""
    parsed = parse_budget(budget)
    if isinstance(parsed, int):
        return min(parsed, n_rows)
    return min(n_rows, max(1, round(parsed * n_rows)))


def largest_remainder(total: int, weights: np.ndarray) -> np.ndarray:
    """Integers proportional to `weights` (all ≥ 0, sum > 0) that add up to `total` exactly.

    Ties in the remainders go to the larger weight, then to the lower index.
    """
    quotas = total * weights / weights.sum()
    shares = np.floor(quotas).astype(np.int64)
    left = total - int(shares.sum())
    if left > 0:
        order = np.lexsort((np.arange(len(weights)), -weights, -(quotas - shares)))
        shares[order[:left]] += 1
    return shares


def allocate_budget(budget: int, scores: np.ndarray, capacities: np.ndarray) -> np.ndarray:
    """Per-cluster quotas: proportional to `scores`, never above `capacities`, summing to min(budget, Σcap)."""
    scores = np.asarray(scores, dtype=np.float64)
    capacities = np.asarray(capacities, dtype=np.int64)
    if scores.shape != capacities.shape:
        raise SddError("one score and one capacity per cluster are needed")
    if not np.isfinite(scores).all() or (scores < 0).any():
        raise SddError("cluster scores must be finite and non-negative")
    if (capacities < 0).any():
        raise SddError("cluster capacities must be non-negative")
    quotas = np.zeros_like(capacities)
    remaining = min(int(budget), int(capacities.sum()))
    while remaining > 0:
        room = capacities - quotas
        open_positive = (room > 0) & (scores > 0)
        weights = (
            np.where(open_positive, scores, 0.0)
            if open_positive.any()
            else np.where(room > 0, room, 0).astype(np.float64)
        )
        shares = np.minimum(largest_remainder(remaining, weights), room)
        quotas += shares
        remaining -= int(shares.sum())
    return quotas
