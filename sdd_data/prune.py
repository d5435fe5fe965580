"""The prune stage: score decoder blocks on calibration text, remove some and save the pruned model."""

from __future__ import annotations

from .prune_checkpoint import save_pruned_checkpoint

__all__ = ["save_pruned_checkpoint"]
