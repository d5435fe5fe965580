"""The exact degradation scorer: both models run forward with transformers, JSD over the full vocabulary."""

from __future__ import annotations

import inspect
from collections.abc import Callable

import numpy as np

from sdd_data.errors import SddError, require
from sdd_data.models.loading import load_causal_lm, resolve_device, resolve_dtype
from sdd_data.select.degrade import jsd_from_logits
from sdd_data.select.score_inputs import ScoringRow
from sdd_data.select.scorer_base import ScorerOptions

POSITION_CHUNK = 512
"""Positions per JSD computation: bounds the fp32 [positions, vocabulary] temporaries."""


class TransformersScorer:
    """Exact full-vocabulary JSD: both models run forward on each batch, fp32 log-softmax, in log space.

    Batches are left-padded with position ids counted from each row's first real token, and only
    the logits from the first scored position on are computed (`logits_to_keep`) when the model
    supports it. Rows are batched longest first; memory peaks at one batch's logits per model.
    """

    name = "transformers"
    exact = True

    def __init__(self, original_path: str, pruned_path: str, options: ScorerOptions):
        self._torch = require("torch", "hf")
        if options.batch_size < 1:
            raise SddError(f"batch_size must be at least 1, got {options.batch_size}")
        if options.padding_side not in ("left", "right"):
            raise SddError(f"padding_side must be left or right, got {options.padding_side!r}")
        self.options = options
        self.device = resolve_device(options.device)
        self.dtype = resolve_dtype(options.dtype, on_cpu=self.device == "cpu")
        self.models = [
            load_causal_lm(path, dtype=self.dtype, device=self.device, trust_remote_code=options.trust_remote_code)
            for path in (original_path, pruned_path)
        ]
        sizes = [model.get_output_embeddings().weight.shape[0] for model in self.models]
        if sizes[0] != sizes[1]:
            raise SddError(
                f"the original and pruned models predict over different vocabularies ({sizes[0]} vs {sizes[1]} logits)"
            )
        self._keeps_logits = ["logits_to_keep" in inspect.signature(model.forward).parameters for model in self.models]

    def score(self, rows: list[ScoringRow], progress: Callable[[int], None] | None = None) -> np.ndarray:
        """Mean JSD per row over its scored positions, exact over the vocabulary."""
        scores = np.zeros(len(rows), dtype=np.float64)
        order = sorted(range(len(rows)), key=lambda index: len(rows[index].token_ids), reverse=True)
        for start in range(0, len(order), self.options.batch_size):
            batch = order[start : start + self.options.batch_size]
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
            input_ids[index, offset : offset + len(row.token_ids)] = torch.tensor(row.token_ids)
            attention_mask[index, offset : offset + len(row.token_ids)] = 1
            scored[index, offset + row.first : offset + row.last + 1] = True
        position_ids = (attention_mask.cumsum(dim=1) - 1).clamp(min=0)
        keep = width - int(scored.int().argmax(dim=1).min()) if left else 0
        kept_mask = scored[:, width - keep :] if keep else scored
        row_of_position = kept_mask.nonzero()[:, 0]
        selected = []
        with torch.inference_mode():
            for model, keeps_logits in zip(self.models, self._keeps_logits):
                extra = {"logits_to_keep": keep} if keeps_logits and keep else {}
                logits = model(
                    input_ids=input_ids.to(self.device),
                    attention_mask=attention_mask.to(self.device),
                    position_ids=position_ids.to(self.device),
                    use_cache=False,
                    **extra,
                ).logits
                if logits.shape[1] != kept_mask.shape[1]:
                    logits = logits[:, -kept_mask.shape[1] :]
                selected.append(logits[kept_mask.to(self.device)])
                del logits
            per_position = torch.cat(
                [
                    jsd_from_logits(
                        selected[0][start : start + POSITION_CHUNK], selected[1][start : start + POSITION_CHUNK]
                    )
                    for start in range(0, len(row_of_position), POSITION_CHUNK)
                ]
            ).cpu()
        totals = torch.zeros(len(rows), dtype=torch.float64).index_add_(0, row_of_position, per_position.double())
        return (totals / kept_mask.sum(dim=1).clamp(min=1)).numpy()

    def describe(self) -> dict:
        """Engine, dtype, device and batch size; the score is exact."""
        return {
            "engine": self.name,
            "exact": True,
            "dtype": self.dtype,
            "device": self.device,
            "batch_size": self.options.batch_size,
            "note": "exact JSD over the full vocabulary, fp32 log-softmax in log space",
        }

    def close(self) -> None:
        """Drop both models."""
        self.models = []
        if self.device.startswith("cuda"):
            self._torch.cuda.empty_cache()
