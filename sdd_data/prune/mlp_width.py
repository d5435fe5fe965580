"""Width pruning of the MLPs: score every intermediate neuron, keep the best `ffn_size` of each layer.

A gated MLP computes down(act(gate(x)) * up(x)); neuron i of a layer is row i of gate and up and column i
of down. Removing it is exactly zeroing its column of down, so a pruned model equals the original with
those columns zeroed. Every layer keeps the same number of neurons, so `intermediate_size` in the config
still describes the model and it loads with `from_pretrained` and vLLM.

Minitron's activation importance (Muralidharan et al., 2024) scores neuron i by the activation that
enters down (after the gate/up product): its L2 norm over each row's tokens, averaged over the rows.
"""

from __future__ import annotations

from typing import Any

import torch

from sdd_data.errors import SddError


class MlpActivationRecorder:
    """Forward pre-hooks on every layer's down projection that fold its input into per-neuron importance."""

    def __init__(self, model: Any):
        self.layers = model.model.layers
        self.attention_mask: torch.Tensor | None = None
        """The current batch's mask (1 = token, 0 = pad): padding never counts."""
        self.sums = [torch.zeros(layer.mlp.down_proj.in_features, dtype=torch.float64) for layer in self.layers]
        self.rows = 0
        self._handles: list[Any] = []

    def __enter__(self) -> MlpActivationRecorder:
        for index, layer in enumerate(self.layers):
            self._handles.append(layer.mlp.down_proj.register_forward_pre_hook(self._hook(index)))
        return self

    def __exit__(self, *exc_info) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def _hook(self, index: int):
        def record(module, args) -> None:
            if self.attention_mask is None:
                raise SddError("set the batch's attention mask before running the model")
            activation = args[0].float() * self.attention_mask[..., None].to(args[0].device, torch.float32)
            self.sums[index] += activation.norm(dim=1).sum(dim=0).double().cpu()  # L2 over tokens, summed over rows

        return record

    def count_rows(self, rows: int) -> None:
        """Add a batch's rows to the count the sums are averaged over."""
        self.rows += rows

    def importance(self) -> torch.Tensor:
        """[layers, neurons]: each neuron's L2 activation norm over a row's tokens, averaged over the rows."""
        if self.rows == 0:
            raise SddError("no calibration rows were scored")
        return torch.stack([total / self.rows for total in self.sums]).float()


def neurons_to_keep(importance: torch.Tensor, ffn_size: int) -> torch.Tensor:
    """[layers, ffn_size] sorted indices of each layer's most important neurons (the lower index first on ties)."""
    layers, neurons = importance.shape
    if not 1 <= ffn_size <= neurons:
        raise SddError(f"ffn_size must be between 1 and the model's intermediate size {neurons}, got {ffn_size}")
    # a stable sort on the negated scores keeps the lower index first among equal scores
    order = torch.sort(-importance, dim=1, stable=True).indices
    return torch.sort(order[:, :ffn_size], dim=1).values


def prune_mlp_neurons(model: Any, keep: torch.Tensor) -> None:
    """Keep only the given neurons of every layer's MLP (rows of gate and up, columns of down), in place."""
    layers = model.model.layers
    if keep.shape[0] != len(layers):
        raise SddError(f"got neurons to keep for {keep.shape[0]} layers, the model has {len(layers)}")
    for layer, kept in zip(layers, keep):
        mlp = layer.mlp
        for name in ("gate_proj", "up_proj"):
            setattr(mlp, name, _linear_rows(getattr(mlp, name), kept))
        mlp.down_proj = _linear_columns(mlp.down_proj, kept)
        if hasattr(mlp, "intermediate_size"):
            mlp.intermediate_size = int(keep.shape[1])
    model.config.intermediate_size = int(keep.shape[1])


def _linear_rows(linear: torch.nn.Linear, rows: torch.Tensor) -> torch.nn.Linear:
    """A Linear with only the given output features."""
    pruned = torch.nn.Linear(
        linear.in_features, len(rows), bias=linear.bias is not None, dtype=linear.weight.dtype, device="meta"
    )
    pruned.weight = torch.nn.Parameter(linear.weight.data[rows].clone())
    if linear.bias is not None:
        pruned.bias = torch.nn.Parameter(linear.bias.data[rows].clone())
    return pruned


def _linear_columns(linear: torch.nn.Linear, columns: torch.Tensor) -> torch.nn.Linear:
    """A Linear with only the given input features."""
    pruned = torch.nn.Linear(
        len(columns), linear.out_features, bias=linear.bias is not None, dtype=linear.weight.dtype, device="meta"
    )
    pruned.weight = torch.nn.Parameter(linear.weight.data[:, columns].clone())
    if linear.bias is not None:
        pruned.bias = torch.nn.Parameter(linear.bias.data.clone())
    return pruned
