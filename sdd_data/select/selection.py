"""Selection methods registered by name, sharing one config, one input bundle and one result shape."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ..errors import SddError
from .budget import resolve_budget
from .cluster import ClusterConfig


@dataclass
class SelectConfig:
    """Everything row selection needs; every field is also a CLI flag and a YAML key."""

    budget: str = "20%"
    """Rows to keep: digits only are a row count (2000; 1 is one row), a number with a decimal point is a
    fraction of the rows (0.2), a number ending in % is a percentage (20%)."""
    method: str = "paser"
    """Selection method: paser, random, longest (longest responses) or degradation (highest, unclustered)."""
    seed: int = 0
    """Seed for clustering and the random baseline."""
    dedupe: bool = True
    """Drop near-duplicate instructions before selecting (paser only)."""
    dedupe_threshold: float = 95.0
    """rapidfuzz token_sort_ratio (0-100) at which two instructions are near-duplicates."""
    concepts: bool = True
    """Skip rows whose key concepts conflict with the concept graph of accepted rows (paser only)."""
    phrases_per_row: int = 6
    """Key phrases (concepts) taken from each row for the concept graph."""
    concept_merge_score: float = 90.0
    """rapidfuzz ratio (0-100) at which a new concept merges into an existing one."""
    clustering: ClusterConfig = field(default_factory=ClusterConfig)


@dataclass
class SelectionInputs:
    """Per-row inputs, all of length N; `texts` feed the concept graph (instruction + input + output)."""

    embeddings: np.ndarray
    degradation: np.ndarray
    prompt_tokens: np.ndarray
    response_tokens: np.ndarray
    instructions: list[str]
    texts: list[str]


@dataclass
class SelectionResult:
    """Per-row outcome of a selection and a JSON-ready report.

    `rank` is the row's 1-based place in the method's preference order within its group: its
    cluster for paser (by IES), all rows for the baselines. `cluster` is -1 for unclustered methods.
    `reason` is `selected`, `budget_exhausted`, `concept_conflict:<a>|<b>` or `near_duplicate_of:<row>`.
    """

    method: str
    budget: int
    selected: np.ndarray
    cluster: np.ndarray
    degradation: np.ndarray
    ies: np.ndarray
    rank: np.ndarray
    reason: list[str]
    report: dict

    @property
    def selected_indices(self) -> np.ndarray:
        """Indices of the selected rows, ascending."""
        return np.flatnonzero(self.selected)

    def columns(self) -> dict[str, list]:
        """The per-row outcome as plain columns (for a table or a parquet file)."""
        return {"selected": self.selected.tolist(), "cluster": self.cluster.tolist(),
                "degradation": self.degradation.tolist(), "ies": self.ies.tolist(),
                "rank": self.rank.tolist(), "reason": list(self.reason)}


Selector = Callable[[SelectionInputs, SelectConfig, int], SelectionResult]

SELECTORS: dict[str, Selector] = {}
"""Method name -> function (inputs, config, budget in rows) -> result."""


def register_selector(name: str) -> Callable[[Selector], Selector]:
    """Add a selection method to `SELECTORS` under `name`."""

    def add(selector: Selector) -> Selector:
        SELECTORS[name] = selector
        return selector

    return add


def _validated(embeddings, degradation, prompt_tokens, response_tokens, instructions, texts) -> SelectionInputs:
    inputs = SelectionInputs(
        embeddings=np.asarray(embeddings, dtype=np.float32),
        degradation=np.asarray(degradation, dtype=np.float64),
        prompt_tokens=np.asarray(prompt_tokens, dtype=np.int64),
        response_tokens=np.asarray(response_tokens, dtype=np.int64),
        instructions=list(instructions), texts=list(instructions if texts is None else texts))
    n_rows = len(inputs.degradation)
    if n_rows == 0:
        raise SddError("there are no rows to select from")
    lengths = {"embeddings": len(inputs.embeddings), "prompt_tokens": len(inputs.prompt_tokens),
               "response_tokens": len(inputs.response_tokens), "instructions": len(inputs.instructions),
               "texts": len(inputs.texts)}
    wrong = [name for name, length in lengths.items() if length != n_rows]
    if wrong:
        raise SddError(f"{', '.join(wrong)} must have one entry per row ({n_rows} degradation scores)")
    if inputs.degradation.ndim != 1 or not np.isfinite(inputs.degradation).all() or (inputs.degradation < 0).any():
        raise SddError("degradation scores must be a vector of finite, non-negative numbers")
    return inputs


def select_rows(embeddings: np.ndarray, degradation: np.ndarray, prompt_tokens: np.ndarray,
                response_tokens: np.ndarray, instructions: list[str], texts: list[str] | None = None,
                config: SelectConfig | None = None) -> SelectionResult:
    """Pick `config.budget` rows with `config.method`; texts default to the instructions."""
    config = config or SelectConfig()
    if config.method not in SELECTORS:
        raise SddError(f"unknown selection method {config.method!r}; known: {', '.join(SELECTORS)}")
    inputs = _validated(embeddings, degradation, prompt_tokens, response_tokens, instructions, texts)
    budget = resolve_budget(config.budget, len(inputs.degradation))
    started = time.perf_counter()
    result = SELECTORS[config.method](inputs, config, budget)
    result.report.setdefault("seconds", {})["total"] = time.perf_counter() - started
    return result


# Imported last: these modules register their selectors with the decorator above.
from . import baselines, paser  # noqa: E402,F401
