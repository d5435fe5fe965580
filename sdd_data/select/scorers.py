"""Degradation scorers (one per engine capability) and the cached scoring of rows.

A scorer takes both checkpoints and returns each row's mean JSD over its scored positions
(`score_inputs.ScoringRow`). An engine that runs a transformers causal LM gets the exact scorer, over the full
vocabulary; one that gives top-k log-probabilities gets the approximate one (`vllm_scorer.py`). Scores are
cached on disk per pair of models, engine, dtype and mode, keyed by the scored token ids, so a row is scored once.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from sdd_data.engines import Capability, EngineTable
from sdd_data.select.score_inputs import ScoringRow
from sdd_data.select.scorer_base import Scorer, ScorerFactory
from sdd_data.select.vector_cache import VectorCache, content_key

SCORERS: EngineTable[ScorerFactory] = EngineTable(
    "scorer engine",
    "score degradation",
    {
        Capability.CAUSAL_LM: "sdd_data.select.transformers_scorer:TransformersScorer",
        Capability.TOP_LOGPROBS: "sdd_data.select.vllm_scorer:VllmScorer",
    },
)
"""Engine name -> scorer class taking (original path, pruned path, options), by what the engine can do."""


def score_cache(
    cache_root: str | Path, original_identity: str, pruned_identity: str, engine: str, dtype: str, mode: str, top_k: int
) -> VectorCache:
    """The score cache of one pair of models, engine, dtype and mode (top-k matters only to an approximate scorer)."""
    approximate = not SCORERS.get(engine).exact
    settings = [original_identity, pruned_identity, engine, dtype, mode] + ([str(top_k)] if approximate else [])
    return VectorCache(Path(cache_root) / "degradation" / content_key(*settings)[:24])


def row_key(row: ScoringRow) -> str:
    """A row's cache key: its scored token ids and positions."""
    return content_key(",".join(map(str, row.token_ids)), f"{row.first}:{row.last}")


def cached_scores(
    rows: list[ScoringRow], cache: VectorCache, make_scorer: Callable[[], Scorer], show_progress: bool = True
) -> tuple[np.ndarray, dict]:
    """Each row's score, from the cache or computed once; the scorer is built only when rows are missing."""
    from tqdm.auto import tqdm

    keys = [row_key(row) for row in rows]
    found = cache.get_many(keys)
    missing = list(dict.fromkeys(key for key in keys if key not in found))
    description: dict = {}
    if missing:
        first_row = {key: row for key, row in zip(reversed(keys), reversed(rows))}
        scorer = make_scorer()
        try:
            with tqdm(total=len(missing), unit="row", desc="degradation", disable=not show_progress) as bar:
                scores = scorer.score([first_row[key] for key in missing], bar.update)
            description = scorer.describe()
        finally:
            scorer.close()
        cache.put_many(missing, scores.reshape(-1, 1))
        found.update(zip(missing, scores.reshape(-1, 1)))
    values = np.array([float(found[key][0]) for key in keys], dtype=np.float64)
    return values, {**description, "scored_rows": len(missing), "cached_rows": len(set(keys)) - len(missing)}
