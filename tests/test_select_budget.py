"""Budget resolution and the CDS-proportional allocation with redistribution."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sdd_data.errors import SddError
from sdd_data.select.budget import allocate_budget, largest_remainder, resolve_budget


def test_allocations_sum_exactly_and_respect_capacities_in_random_cases():
    rng = np.random.default_rng(0)
    for _ in range(500):
        n_clusters = int(rng.integers(1, 12))
        capacities = rng.integers(0, 50, n_clusters)
        scores = rng.gamma(1.0, 1.0, n_clusters) * (rng.random(n_clusters) > 0.2)
        budget = int(rng.integers(1, 400))
        quotas = allocate_budget(budget, scores, capacities)
        assert quotas.sum() == min(budget, capacities.sum())
        assert (quotas >= 0).all() and (quotas <= capacities).all()


def test_shares_follow_the_scores_with_largest_remainder():
    assert largest_remainder(10, np.array([1.0, 1.0, 1.0])).tolist() == [4, 3, 3]
    assert allocate_budget(100, np.array([3.0, 1.0]), np.array([1000, 1000])).tolist() == [75, 25]


def test_small_clusters_give_back_what_they_cannot_use():
    quotas = allocate_budget(100, np.array([10.0, 1.0, 1.0]), np.array([5, 200, 200]))
    assert quotas.tolist() == [5, 48, 47]


def test_zero_degradation_clusters_only_get_rows_once_the_others_are_exhausted():
    assert allocate_budget(10, np.array([1.0, 0.0]), np.array([20, 20])).tolist() == [10, 0]
    assert allocate_budget(30, np.array([1.0, 0.0, 0.0]), np.array([20, 30, 10])).tolist() == [20, 8, 2]
    assert allocate_budget(5, np.zeros(2), np.array([8, 2])).tolist() == [4, 1]


def test_a_budget_above_the_rows_takes_every_row():
    assert allocate_budget(1000, np.array([1.0, 2.0]), np.array([3, 4])).tolist() == [3, 4]


@pytest.mark.parametrize(
    "budget, expected",
    [
        (5, 5),
        (1, 1),
        (0.25, 25),
        (1.0, 100),
        (0.001, 1),
        (500, 100),
        ("30", 30),
        ("1", 1),
        ("1.0", 100),
        ("0.2", 20),
        ("20%", 20),
        ("100%", 100),
        ("2_000", 100),
        (" 7 ", 7),
        ("0.5%", 1),
    ],
)
def test_budgets_are_row_counts_or_fractions(budget, expected):
    assert resolve_budget(budget, 100) == expected


@pytest.mark.parametrize(
    "budget",
    [
        0,
        -3,
        0.0,
        -0.5,
        math.nan,
        math.inf,
        None,
        True,
        2.5,
        30.0,
        "0",
        "-3",
        "abc",
        "",
        "1.5",
        "150%",
        "nan",
        "inf",
        "20 %%",
    ],
)
def test_bad_budgets_are_refused(budget):
    with pytest.raises(SddError, match="budget"):
        resolve_budget(budget, 100)


def test_negative_scores_are_refused():
    with pytest.raises(SddError, match="non-negative"):
        allocate_budget(3, np.array([1.0, -1.0]), np.array([2, 2]))
