"""Degradation scorers (one per engine, registered by name) and the cached scoring of rows.

A scorer takes both checkpoints and returns each row's mean JSD over its scored positions
(`score_inputs.ScoringRow`). `transformers` is exact over the full vocabulary; `vllm` approximates
from top-k log-probabilities (`vllm_scorer.py`). Scores are cached on disk per pair of models,
engine, dtype and mode, keyed by the scored token ids, so a row is scored once.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from ..errors import SddError, first_line, require
from .degrade import jsd_from_logits
from .score_inputs import ScoringRow
from .vector_cache import VectorCache, content_key

POSITION_CHUNK = 512
"""Positions per JSD computation: bounds the fp32 [positions, vocabulary] temporaries."""


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


SCORERS: dict[str, Callable[[str, str, ScorerOptions], Scorer]] = {}
"""Engine name -> scorer class taking (original path, pruned path, options)."""


def register_scorer(name: str):
    """Class decorator adding a scorer to `SCORERS` under `name`."""

    def add(factory):
        SCORERS[name] = factory
        return factory

    return add


def load_causal_lm(transformers, torch, path: str, dtype: str, device: str, trust_remote_code: bool, role: str):
    """A causal LM from safetensors, in eval mode on `device`; a model that fails to load is an SddError."""
    try:
        model = transformers.AutoModelForCausalLM.from_pretrained(
            path, dtype=getattr(torch, dtype), use_safetensors=True, trust_remote_code=trust_remote_code)
    except Exception as error:  # noqa: BLE001 -- missing weights, wrong architecture and bad configs raise many types
        raise SddError(f"the {role} model {path} did not load: {first_line(error)}") from None
    return model.to(device).eval()


@register_scorer("transformers")
class TransformersScorer:
    """Exact full-vocabulary JSD: both models run forward on each batch, fp32 log-softmax, in log space.

    Batches are left-padded with position ids counted from each row's first real token, and only
    the logits from the first scored position on are computed (`logits_to_keep`) when the model
    supports it. Rows are batched longest first; memory peaks at one batch's logits per model.
    """

    name = "transformers"
    exact = True

    def __init__(self, original_path: str, pruned_path: str, options: ScorerOptions):
        from ..engines.base import resolve_device, resolve_dtype

        self._torch = torch = require("torch", "hf")
        transformers = require("transformers", "hf")
        if options.batch_size < 1:
            raise SddError(f"batch_size must be at least 1, got {options.batch_size}")
        if options.padding_side not in ("left", "right"):
            raise SddError(f"padding_side must be left or right, got {options.padding_side!r}")
        self.options = options
        self.device = resolve_device(options.device)
        self.dtype = resolve_dtype(options.dtype, on_cpu=self.device == "cpu")
        self.models = [load_causal_lm(transformers, torch, path, self.dtype, self.device,
                                      options.trust_remote_code, role)
                       for path, role in ((original_path, "original"), (pruned_path, "pruned"))]
        sizes = [model.get_output_embeddings().weight.shape[0] for model in self.models]
        if sizes[0] != sizes[1]:
            raise SddError(f"the original and pruned models predict over different vocabularies "
                           f"({sizes[0]} vs {sizes[1]} logits)")
        self._keeps_logits = ["logits_to_keep" in inspect.signature(model.forward).parameters
                              for model in self.models]

    def score(self, rows: list[ScoringRow], progress: Callable[[int], None] | None = None) -> np.ndarray:
        """Mean JSD per row over its scored positions, exact over the vocabulary."""
        scores = np.zeros(len(rows), dtype=np.float64)
        order = sorted(range(len(rows)), key=lambda index: len(rows[index].token_ids), reverse=True)
        for start in range(0, len(order), self.options.batch_size):
            batch = order[start:start + self.options.batch_size]
            scores[batch] = self._score_batch([rows[index] for index in batch])
            if progress is not None:
                progress(len(batch))
        return scores

    def _score_batch(self, rows: list[ScoringRow]) -> np.ndarray:
        torch = self._torch
        width = max(len(row.token_ids) for row in rows)
        left = self.options.padding_side == "left"
        input_ids = torch.zeros((len(rows), width), dtype=torch.long)
        attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
        scored = torch.zeros((len(rows), width), dtype=torch.bool)
        for index, row in enumerate(rows):
            offset = width - len(row.token_ids) if left else 0
            input_ids[index, offset:offset + len(row.token_ids)] = torch.tensor(row.token_ids)
            attention_mask[index, offset:offset + len(row.token_ids)] = 1
            scored[index, offset + row.first:offset + row.last + 1] = True
        position_ids = (attention_mask.cumsum(dim=1) - 1).clamp(min=0)
        keep = width - int(scored.int().argmax(dim=1).min()) if left else 0
        kept_mask = scored[:, width - keep:] if keep else scored
        row_of_position = kept_mask.nonzero()[:, 0]
        selected = []
        with torch.inference_mode():
            for model, keeps_logits in zip(self.models, self._keeps_logits):
                extra = {"logits_to_keep": keep} if keeps_logits and keep else {}
                logits = model(input_ids=input_ids.to(self.device), attention_mask=attention_mask.to(self.device),
                               position_ids=position_ids.to(self.device), use_cache=False, **extra).logits
                if logits.shape[1] != kept_mask.shape[1]:
                    logits = logits[:, -kept_mask.shape[1]:]
                selected.append(logits[kept_mask.to(self.device)])
                del logits
            per_position = torch.cat([jsd_from_logits(selected[0][start:start + POSITION_CHUNK],
                                                      selected[1][start:start + POSITION_CHUNK])
                                      for start in range(0, len(row_of_position), POSITION_CHUNK)]).cpu()
        totals = torch.zeros(len(rows), dtype=torch.float64).index_add_(0, row_of_position, per_position.double())
        return (totals / kept_mask.sum(dim=1).clamp(min=1)).numpy()

    def describe(self) -> dict:
        """Engine, dtype, device and batch size; the score is exact."""
        return {"engine": self.name, "exact": True, "dtype": self.dtype, "device": self.device,
                "batch_size": self.options.batch_size,
                "note": "exact JSD over the full vocabulary, fp32 log-softmax in log space"}

    def close(self) -> None:
        """Drop both models."""
        self.models = []
        if self.device.startswith("cuda"):
            self._torch.cuda.empty_cache()


def score_cache(cache_root: str | Path, original_identity: str, pruned_identity: str, engine: str,
                dtype: str, mode: str, top_k: int) -> VectorCache:
    """The score cache of one pair of models, engine, dtype and mode (top-k only matters for vllm)."""
    settings = [original_identity, pruned_identity, engine, dtype, mode] + ([str(top_k)] if engine == "vllm" else [])
    return VectorCache(Path(cache_root) / "degradation" / content_key(*settings)[:24])


def row_key(row: ScoringRow) -> str:
    """A row's cache key: its scored token ids and positions."""
    return content_key(",".join(map(str, row.token_ids)), f"{row.first}:{row.last}")


def cached_scores(rows: list[ScoringRow], cache: VectorCache, make_scorer: Callable[[], Scorer],
                  show_progress: bool = True) -> tuple[np.ndarray, dict]:
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


# Imported last: this module registers the vllm scorer with the decorator above.
from . import vllm_scorer  # noqa: F401
