"""What every selection method shares: the per-row input bundle and the result shape."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from sdd_data.errors import SddError
from sdd_data.select.config import SelectConfig


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
        return {
            "selected": self.selected.tolist(),
            "cluster": self.cluster.tolist(),
            "degradation": self.degradation.tolist(),
            "ies": self.ies.tolist(),
            "rank": self.rank.tolist(),
            "reason": list(self.reason),
        }


Selector = Callable[[SelectionInputs, SelectConfig, int], SelectionResult]


def validated_inputs(embeddings, degradation, prompt_tokens, response_tokens, instructions, texts) -> SelectionInputs:
    inputs = SelectionInputs(
        embeddings=np.asarray(embeddings, dtype=np.float32),
        degradation=np.asarray(degradation, dtype=np.float64),
        prompt_tokens=np.asarray(prompt_tokens, dtype=np.int64),
        response_tokens=np.asarray(response_tokens, dtype=np.int64),
        instructions=list(instructions),
        texts=list(instructions if texts is None else texts),
    )
    n_rows = len(inputs.degradation)
    if n_rows == 0:
        raise SddError("there are no rows to select from")
    lengths = {
        "embeddings": len(inputs.embeddings),
        "prompt_tokens": len(inputs.prompt_tokens),
        "response_tokens": len(inputs.response_tokens),
        "instructions": len(inputs.instructions),
        "texts": len(inputs.texts),
    }
    wrong = [name for name, length in lengths.items() if length != n_rows]
    if wrong:
        raise SddError(f"{', '.join(wrong)} must have one entry per row ({n_rows} degradation scores)")
    if inputs.degradation.ndim != 1 or not np.isfinite(inputs.degradation).all() or (inputs.degradation < 0).any():
        raise SddError("degradation scores must be a vector of finite, non-negative numbers")
    return inputs
