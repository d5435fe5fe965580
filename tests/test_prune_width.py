"""MLP width pruning on the tiny random Llama: importance against a direct computation, exactness, round trip."""

from __future__ import annotations

import copy

import pytest
import torch
from transformers import AutoModelForCausalLM

from sdd_data.errors import SddError
from sdd_data.prune.mlp_width import MlpActivationRecorder, neurons_to_keep, prune_mlp_neurons

FFN_SIZE = 96  # of the tiny model's 256


@pytest.fixture(scope="module")
def tiny(tiny_llama_path):
    return AutoModelForCausalLM.from_pretrained(tiny_llama_path, dtype=torch.float32).eval()


@pytest.fixture(scope="module")
def batch():
    generator = torch.Generator().manual_seed(3)
    input_ids = torch.randint(5, 300, (3, 12), generator=generator)
    attention_mask = torch.ones_like(input_ids)
    attention_mask[1, 8:] = 0  # right padding: real tokens keep their positions
    attention_mask[2, 5:] = 0
    return input_ids, attention_mask


def direct_importance(model, input_ids, attention_mask) -> torch.Tensor:
    """act(gate(x)) * up(x) recomputed from each MLP's input, L2 over a row's real tokens, mean over rows."""
    inputs = {}
    handles = [
        layer.mlp.register_forward_pre_hook(lambda module, args, index=index: inputs.__setitem__(index, args[0]))
        for index, layer in enumerate(model.model.layers)
    ]
    with torch.inference_mode():
        model(input_ids=input_ids, attention_mask=attention_mask)
    for handle in handles:
        handle.remove()
    scores = []
    with torch.inference_mode():
        for index, layer in enumerate(model.model.layers):
            x, mlp = inputs[index], layer.mlp
            activation = mlp.act_fn(mlp.gate_proj(x)) * mlp.up_proj(x)
            per_row = [activation[row, attention_mask[row].bool()].norm(dim=0) for row in range(x.shape[0])]
            scores.append(torch.stack(per_row).mean(dim=0))
    return torch.stack(scores)


def test_activation_importance_matches_a_direct_computation(tiny, batch):
    input_ids, attention_mask = batch
    with MlpActivationRecorder(tiny) as recorder, torch.inference_mode():
        for rows in (slice(0, 2), slice(2, 3)):  # two batches, averaged over all their rows
            recorder.attention_mask = attention_mask[rows]
            tiny(input_ids=input_ids[rows], attention_mask=attention_mask[rows])
            recorder.count_rows(rows.stop - rows.start)
    expected = direct_importance(tiny, input_ids, attention_mask)
    assert recorder.importance().shape == (2, 256)
    torch.testing.assert_close(recorder.importance(), expected, rtol=1e-4, atol=1e-6)
    assert not tiny.model.layers[0].mlp.down_proj._forward_pre_hooks, "the hooks are removed afterwards"


def test_the_most_important_neurons_are_kept_in_order():
    importance = torch.tensor([[0.1, 0.9, 0.5, 0.9], [3.0, 2.0, 1.0, 0.0]])
    assert neurons_to_keep(importance, 2).tolist() == [[1, 3], [0, 1]]
    assert neurons_to_keep(importance, 3).tolist() == [[1, 2, 3], [0, 1, 2]]
    for size in (0, 5):
        with pytest.raises(SddError, match="between 1 and the model's intermediate size 4"):
            neurons_to_keep(importance, size)


def test_a_pruned_model_equals_the_original_with_the_pruned_neurons_zeroed(tiny, batch):
    input_ids, attention_mask = batch
    importance = torch.rand(2, 256, generator=torch.Generator().manual_seed(0))
    keep = neurons_to_keep(importance, FFN_SIZE)
    zeroed, pruned = copy.deepcopy(tiny), copy.deepcopy(tiny)
    for layer, kept in zip(zeroed.model.layers, keep):
        dropped = torch.ones(256, dtype=torch.bool)
        dropped[kept] = False
        layer.mlp.down_proj.weight.data[:, dropped] = 0.0
    prune_mlp_neurons(pruned, keep)
    with torch.inference_mode():
        expected = zeroed(input_ids=input_ids, attention_mask=attention_mask).logits
        got = pruned(input_ids=input_ids, attention_mask=attention_mask).logits
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    assert pruned.model.layers[1].mlp.gate_proj.weight.shape == (FFN_SIZE, 128)
    assert pruned.model.layers[1].mlp.down_proj.weight.shape == (128, FFN_SIZE)
    assert pruned.config.intermediate_size == FFN_SIZE


def test_the_pruned_checkpoint_round_trips_through_from_pretrained(tiny, batch, tmp_path):
    input_ids, attention_mask = batch
    pruned = copy.deepcopy(tiny)
    prune_mlp_neurons(pruned, neurons_to_keep(torch.rand(2, 256), FFN_SIZE))
    pruned.save_pretrained(tmp_path, safe_serialization=True)
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path, dtype=torch.float32).eval()
    assert loaded.config.intermediate_size == FFN_SIZE
    assert sum(p.numel() for p in loaded.parameters()) < sum(p.numel() for p in tiny.parameters())
    with torch.inference_mode():
        torch.testing.assert_close(
            loaded(input_ids=input_ids, attention_mask=attention_mask).logits,
            pruned(input_ids=input_ids, attention_mask=attention_mask).logits,
        )


def test_keeping_neurons_for_another_number_of_layers_is_refused(tiny):
    with pytest.raises(SddError, match="for 3 layers, the model has 2"):
        prune_mlp_neurons(copy.deepcopy(tiny), torch.zeros(3, 4, dtype=torch.long))
