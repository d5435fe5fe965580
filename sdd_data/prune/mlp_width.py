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
from sdd_data.prune.width_scores import Recorder, l2_over_tokens, linear_columns, linear_rows


class MlpActivationRecorder(Recorder):
    """Forward pre-hooks on every layer's down projection that fold its input into per-neuron importance."""

    def __init__(self, model: Any):
        super().__init__()
        self.layers = model.model.layers
        self.sums = [torch.zeros(layer.mlp.down_proj.in_features, dtype=torch.float64) for layer in self.layers]

    def _register(self) -> list[Any]:
        return [
            layer.mlp.down_proj.register_forward_pre_hook(self._hook(index)) for index, layer in enumerate(self.layers)
        ]

    def _hook(self, index: int):
        def record(module, args) -> None:
            self.sums[index] += l2_over_tokens(args[0], self.mask())

        return record

    def importance(self) -> torch.Tensor:
        """[layers, neurons]: each neuron's L2 activation norm over a row's tokens, averaged over the rows."""
        return self.mean_over_rows(self.sums)


def prune_mlp_neurons(model: Any, keep: torch.Tensor) -> None:
    """Keep only the given neurons of every layer's MLP (rows of gate and up, columns of down), in place."""
    layers = model.model.layers
    if keep.shape[0] != len(layers):
        raise SddError(f"got neurons to keep for {keep.shape[0]} layers, the model has {len(layers)}")
    for layer, kept in zip(layers, keep):
        mlp = layer.mlp
        mlp.gate_proj, mlp.up_proj = linear_rows(mlp.gate_proj, kept), linear_rows(mlp.up_proj, kept)
        mlp.down_proj = linear_columns(mlp.down_proj, kept)
        if hasattr(mlp, "intermediate_size"):
            mlp.intermediate_size = int(keep.shape[1])
    model.config.intermediate_size = int(keep.shape[1])
