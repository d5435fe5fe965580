"""What every width criterion shares: hook recorders fed one calibration batch at a time, and the top-k choice.

A recorder registers hooks on the model, folds what they see into per-unit sums, and knows the current
batch's attention mask so that padding never counts. `record_batches` runs calibration batches through
the decoder (no LM head) with any number of recorders attached.
"""

from __future__ import annotations

from typing import Any

import torch
from tqdm.auto import tqdm

from sdd_data.errors import SddError


class Recorder:
    """Hooks that fold activations into per-unit sums; subclasses register them in `_register`."""

    def __init__(self) -> None:
        self.attention_mask: torch.Tensor | None = None
        """The current batch's mask (1 = token, 0 = pad)."""
        self.rows = 0
        self._handles: list[Any] = []

    def _register(self) -> list[Any]:
        raise NotImplementedError

    def __enter__(self):
        self._handles = self._register()
        return self

    def __exit__(self, *exc_info) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def mask(self) -> torch.Tensor:
        """The current batch's mask; refuses to record a batch whose mask was not set."""
        if self.attention_mask is None:
            raise SddError("set the batch's attention mask before running the model")
        return self.attention_mask

    def mean_over_rows(self, sums: list[torch.Tensor]) -> torch.Tensor:
        """[len(sums), units]: the per-row sums divided by the rows seen."""
        if self.rows == 0:
            raise SddError("no calibration rows were scored")
        return torch.stack([total / self.rows for total in sums]).float()


def l2_over_tokens(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Each row's L2 norm over its real tokens, summed over the rows: [rows, tokens, *units] -> [*units] (fp64)."""
    weights = mask.to(values.device, torch.float32).reshape(mask.shape + (1,) * (values.dim() - 2))
    return (values.float() * weights).norm(dim=1).sum(dim=0).double().cpu()


def record_batches(
    model: Any, batches: list[dict], recorders: list[Recorder], show_progress: bool, desc: str = "calibration"
) -> None:
    """Run right-padded calibration batches through the decoder with `recorders` attached and counting rows."""
    device = next(model.parameters()).device
    for batch in tqdm(batches, unit="batch", desc=desc, disable=not show_progress):
        mask = batch["attention_mask"].to(device)
        for recorder in recorders:
            recorder.attention_mask = mask
        with torch.inference_mode():
            model.model(input_ids=batch["input_ids"].to(device), attention_mask=mask, use_cache=False)
        for recorder in recorders:
            recorder.rows += len(mask)


def keep_top(importance: torch.Tensor, size: int, option: str, limit: str) -> torch.Tensor:
    """[groups, size] sorted indices of each group's `size` most important units (the lower index first on ties).

    `option` and `limit` name the target and what bounds it in the error for a size out of range.
    """
    units = importance.shape[1]
    if not 1 <= size <= units:
        raise SddError(f"{option} must be between 1 and {limit} {units}, got {size}")
    # a stable sort on the negated scores keeps the lower index first among equal scores
    order = torch.sort(-importance, dim=1, stable=True).indices
    return torch.sort(order[:, :size], dim=1).values


def linear_rows(linear: torch.nn.Linear, rows: torch.Tensor) -> torch.nn.Linear:
    """A copy of `linear` with only the given output features."""
    pruned = torch.nn.Linear(
        linear.in_features, len(rows), bias=linear.bias is not None, dtype=linear.weight.dtype, device="meta"
    )
    pruned.weight = torch.nn.Parameter(linear.weight.data[rows].clone())
    if linear.bias is not None:
        pruned.bias = torch.nn.Parameter(linear.bias.data[rows].clone())
    return pruned


def linear_columns(linear: torch.nn.Linear, columns: torch.Tensor) -> torch.nn.Linear:
    """A copy of `linear` with only the given input features."""
    pruned = torch.nn.Linear(
        len(columns), linear.out_features, bias=linear.bias is not None, dtype=linear.weight.dtype, device="meta"
    )
    pruned.weight = torch.nn.Parameter(linear.weight.data[:, columns].clone())
    if linear.bias is not None:
        pruned.bias = torch.nn.Parameter(linear.bias.data.clone())
    return pruned
