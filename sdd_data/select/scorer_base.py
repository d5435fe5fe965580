"""What a degradation scorer is: its options and the small interface every scorer engine implements."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from sdd_data.select.score_inputs import ScoringRow


@dataclass
class ScorerOptions:
    """How a scorer runs both models."""

    batch_size: int = 8
    dtype: str = "auto"
    device: str = "auto"
    trust_remote_code: bool = False
    top_k: int = 20
    padding_side: str = "left"


class Scorer(Protocol):
    """Scores rows: mean JSD per row between the original and the pruned model."""

    name: str
    exact: bool

    def score(self, rows: list[ScoringRow], progress: Callable[[int], None] | None = None) -> np.ndarray:
        """One score per row, in order."""
        ...

    def describe(self) -> dict:
        """Engine, settings and whether the score is exact, for provenance."""
        ...

    def close(self) -> None:
        """Free both models."""
        ...


class ScorerFactory(Protocol):
    """A scorer class: (original checkpoint path, pruned checkpoint path, options) -> scorer."""

    exact: bool
    """Whether its scores are exact (else they depend on `top_k`)."""

    def __call__(self, original_path: str, pruned_path: str, options: ScorerOptions) -> Scorer:
        """Load both models."""
        ...
