"""Width pruning on tiny random models: importance against direct computations, exactness of the surgery on
every axis (the pruned model equals the original with the pruned units zeroed), GQA consistency, round trips
through from_pretrained, the prune stage's `minitron` and `sdmprune` methods, and their refusals."""

from __future__ import annotations

import copy
import json
import math

import pytest
import torch
from test_prune import build_model
from transformers import AutoModelForCausalLM

from sdd_data.cards import describe_pruning
from sdd_data.errors import SddError
from sdd_data.prune import PruneConfig, prune
from sdd_data.prune.attention_width import HeadOutputRecorder, prune_kv_groups
from sdd_data.prune.hidden_width import NormOutputRecorder, hidden_norms, prune_hidden_channels
from sdd_data.prune.mlp_width import MlpActivationRecorder, prune_mlp_neurons
from sdd_data.prune.plan import PruningPlan
from sdd_data.prune.sdmprune import completion_batches, taylor_importance
from sdd_data.prune.width_scores import keep_top, record_batches

FFN_SIZE = 96  # of the tiny models' 256
GQA_ARCHITECTURES = ("llama", "mistral", "qwen2", "qwen3")  # qwen2: q/k/v biases; qwen3: per-head q/k norms


def build_gqa(folder, tokenizer_path: str, model_type: str = "llama", tied: bool = True) -> str:
    """A random 3-block model with grouped-query attention (4 query heads in 2 KV groups of head_dim 32) whose
    norms and biases are random too, so that exactness tests see them."""
    build_model(folder, tokenizer_path, model_type, layers=3, heads=(4, 2, 32), tied=tied)
    model = AutoModelForCausalLM.from_pretrained(folder)
    generator = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "norm" in name or name.endswith("bias"):
                parameter.add_(0.3 * torch.randn(parameter.shape, generator=generator))
    model.save_pretrained(folder, safe_serialization=True)
    return str(folder)


@pytest.fixture(scope="module")
def gqa_llama(tiny_llama_path, tmp_path_factory) -> str:
    return build_gqa(tmp_path_factory.mktemp("gqa-llama"), tiny_llama_path)


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


def load(path: str):
    return AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()


def logits(model, batch):
    input_ids, attention_mask = batch
    with torch.inference_mode():
        return model(input_ids=input_ids, attention_mask=attention_mask).logits


def record_in_two_batches(model, batch, recorder):
    """Run the batch as two calibration batches (rows 0-1, then 2) through `recorder`."""
    input_ids, attention_mask = batch
    batches = [
        {"input_ids": input_ids[rows], "attention_mask": attention_mask[rows]} for rows in (slice(0, 2), slice(2, 3))
    ]
    with recorder:
        record_batches(model, batches, [recorder], show_progress=False)
    return recorder


def module_inputs(model, modules, batch) -> list[torch.Tensor]:
    """The input each of `modules` sees on one forward pass of the batch."""
    seen = {}
    handles = [
        module.register_forward_pre_hook(lambda module, args, index=index: seen.__setitem__(index, args[0]))
        for index, module in enumerate(modules)
    ]
    logits(model, batch)
    for handle in handles:
        handle.remove()
    return [seen[index] for index in range(len(modules))]


def mean_of_row_norms(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """[rows, tokens, units(, dims)]: per row, the norm over its real tokens (and a unit's dims); mean over rows."""
    per_row = []
    for row in range(values.shape[0]):
        real = values[row, mask[row].bool()]
        per_row.append(real.norm(dim=(0, 2)) if real.dim() == 3 else real.norm(dim=0))
    return torch.stack(per_row).mean(dim=0)


# --- MLP neurons ------------------------------------------------------------------------------------


def test_activation_importance_matches_a_direct_computation(tiny, batch):
    recorder = record_in_two_batches(tiny, batch, MlpActivationRecorder(tiny))
    inputs = module_inputs(tiny, [layer.mlp for layer in tiny.model.layers], batch)
    with torch.inference_mode():
        activations = [
            layer.mlp.act_fn(layer.mlp.gate_proj(x)) * layer.mlp.up_proj(x)
            for layer, x in zip(tiny.model.layers, inputs)
        ]
    expected = torch.stack([mean_of_row_norms(a, batch[1]) for a in activations])
    assert recorder.importance().shape == (2, 256)
    torch.testing.assert_close(recorder.importance(), expected, rtol=1e-4, atol=1e-6)
    assert not tiny.model.layers[0].mlp.down_proj._forward_pre_hooks, "the hooks are removed afterwards"


def test_the_most_important_units_are_kept_in_order():
    importance = torch.tensor([[0.1, 0.9, 0.5, 0.9], [3.0, 2.0, 1.0, 0.0]])
    assert keep_top(importance, 2, "ffn_size", "the size").tolist() == [[1, 3], [0, 1]]
    assert keep_top(importance, 3, "ffn_size", "the size").tolist() == [[1, 2, 3], [0, 1, 2]]
    for size in (0, 5):
        with pytest.raises(SddError, match="ffn_size must be between 1 and the size 4"):
            keep_top(importance, size, "ffn_size", "the size")


def test_a_pruned_model_equals_the_original_with_the_pruned_neurons_zeroed(tiny, batch):
    keep = keep_top(torch.rand(2, 256, generator=torch.Generator().manual_seed(0)), FFN_SIZE, "ffn_size", "-")
    zeroed, pruned = copy.deepcopy(tiny), copy.deepcopy(tiny)
    for layer, kept in zip(zeroed.model.layers, keep):
        dropped = torch.ones(256, dtype=torch.bool)
        dropped[kept] = False
        layer.mlp.down_proj.weight.data[:, dropped] = 0.0
    prune_mlp_neurons(pruned, keep)
    torch.testing.assert_close(logits(pruned, batch), logits(zeroed, batch), rtol=1e-5, atol=1e-5)
    assert pruned.model.layers[1].mlp.gate_proj.weight.shape == (FFN_SIZE, 128)
    assert pruned.model.layers[1].mlp.down_proj.weight.shape == (128, FFN_SIZE)
    assert pruned.config.intermediate_size == FFN_SIZE


def test_keeping_neurons_for_another_number_of_layers_is_refused(tiny):
    with pytest.raises(SddError, match="for 3 layers, the model has 2"):
        prune_mlp_neurons(copy.deepcopy(tiny), torch.zeros(3, 4, dtype=torch.long))


# --- attention heads in KV groups ---------------------------------------------------------------------


def test_head_importance_matches_a_direct_computation_and_groups_sum_their_heads(gqa_llama, batch):
    model = load(gqa_llama)
    recorder = record_in_two_batches(model, batch, HeadOutputRecorder(model))
    inputs = module_inputs(model, [layer.self_attn.o_proj for layer in model.model.layers], batch)
    expected = torch.stack([mean_of_row_norms(x.unflatten(-1, (4, 32)), batch[1]) for x in inputs])
    torch.testing.assert_close(recorder.head_importance(), expected, rtol=1e-4, atol=1e-6)
    # KV head g serves query heads 2g and 2g + 1 (transformers' repeat_kv order)
    torch.testing.assert_close(recorder.group_importance(), expected[:, 0::2] + expected[:, 1::2])


@pytest.mark.parametrize("model_type", GQA_ARCHITECTURES)
def test_pruning_kv_groups_equals_zeroing_their_query_heads_and_keeps_gqa_consistent(
    model_type, tiny_llama_path, batch, tmp_path
):
    source = load(build_gqa(tmp_path / "source", tiny_llama_path, model_type))
    keep = torch.tensor([[1], [0], [1]])
    zeroed, pruned = copy.deepcopy(source), copy.deepcopy(source)
    for layer, (group,) in zip(zeroed.model.layers, keep.tolist()):
        dropped = 1 - group  # the other group: query heads 2·dropped and 2·dropped + 1, 64 columns of o_proj
        layer.self_attn.o_proj.weight.data[:, 64 * dropped : 64 * dropped + 64] = 0.0
    prune_kv_groups(pruned, keep)
    torch.testing.assert_close(logits(pruned, batch), logits(zeroed, batch), rtol=1e-5, atol=1e-5)

    config = pruned.config
    assert (config.num_attention_heads, config.num_key_value_heads, config.head_dim) == (2, 1, 32)
    first = pruned.model.layers[0].self_attn
    assert first.q_proj.weight.shape == (64, 128) and first.k_proj.weight.shape == (32, 128)
    # layer 0 keeps group 1: its keys are KV head 1, its queries heads 2 and 3
    original = source.model.layers[0].self_attn
    assert torch.equal(first.k_proj.weight, original.k_proj.weight[32:64])
    assert torch.equal(first.q_proj.weight, original.q_proj.weight[64:128])
    pruned.save_pretrained(tmp_path / "pruned", safe_serialization=True)
    reloaded = load(tmp_path / "pruned")
    assert reloaded.model.layers[2].self_attn.num_key_value_groups == 2
    torch.testing.assert_close(logits(reloaded, batch), logits(pruned, batch))


# --- hidden channels ----------------------------------------------------------------------------------


def test_channel_importance_matches_norm_outputs_summed_over_every_norm(gqa_llama, batch):
    model = load(gqa_llama)
    recorder = record_in_two_batches(model, batch, NormOutputRecorder(model))
    norms = hidden_norms(model)
    assert len(norms) == 2 * 3 + 1
    inputs = module_inputs(model, norms, batch)
    with torch.inference_mode():
        outputs = [norm(x) for norm, x in zip(norms, inputs)]
    expected = sum(mean_of_row_norms(output, batch[1]) for output in outputs)
    torch.testing.assert_close(recorder.importance()[0], expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    "model_type, tied", [("llama", True), ("llama", False), ("mistral", True), ("qwen2", False), ("qwen3", True)]
)
def test_pruning_hidden_channels_equals_zeroing_them_in_the_residual_stream(
    model_type, tied, tiny_llama_path, batch, tmp_path
):
    source = load(build_gqa(tmp_path / "source", tiny_llama_path, model_type, tied=tied))
    keep = torch.sort(torch.randperm(128, generator=torch.Generator().manual_seed(1))[:96]).values
    dropped = torch.ones(128, dtype=torch.bool)
    dropped[keep] = False
    zeroed, pruned = copy.deepcopy(source), copy.deepcopy(source)
    zeroed.model.embed_tokens.weight.data[:, dropped] = 0.0  # nothing enters or is written to those channels
    for layer in zeroed.model.layers:
        layer.self_attn.o_proj.weight.data[dropped] = 0.0
        layer.mlp.down_proj.weight.data[dropped] = 0.0
    prune_hidden_channels(pruned, keep)
    # the norms' mean square now has 96 terms instead of 128, and the kept weights are rescaled for it;
    # what is left is the epsilon, which weighs 96/128 as much against the larger mean: give the reference that
    for norm in hidden_norms(zeroed):
        norm.variance_epsilon *= 96 / 128
    torch.testing.assert_close(logits(pruned, batch), logits(zeroed, batch), rtol=1e-5, atol=1e-5)
    assert pruned.config.hidden_size == 96 and pruned.config.head_dim == 32
    assert (pruned.lm_head.weight is pruned.model.embed_tokens.weight) == tied
    torch.testing.assert_close(
        pruned.model.norm.weight, source.model.norm.weight[keep] * math.sqrt(128 / 96), rtol=1e-6, atol=0
    )
    pruned.save_pretrained(tmp_path / "pruned", safe_serialization=True)
    torch.testing.assert_close(logits(load(tmp_path / "pruned"), batch), logits(pruned, batch))


def test_a_plan_over_every_axis_round_trips_through_from_pretrained(gqa_llama, batch, tmp_path):
    model = load(gqa_llama)
    plan = PruningPlan(
        removed_blocks=[1],
        kv_groups=torch.tensor([[0], [1]]),
        neurons=keep_top(torch.rand(2, 256), 64, "ffn_size", "-"),
        channels=torch.arange(0, 128, 2),
    )
    plan.apply(model)
    config = model.config
    assert (config.num_hidden_layers, config.hidden_size, config.intermediate_size) == (2, 64, 64)
    assert (config.num_attention_heads, config.num_key_value_heads) == (2, 1)
    assert plan.kept_units()["hidden_channels"] == list(range(0, 128, 2))
    model.save_pretrained(tmp_path, safe_serialization=True)
    reloaded = load(tmp_path)
    assert sum(p.numel() for p in reloaded.parameters()) == sum(p.numel() for p in model.parameters())
    torch.testing.assert_close(logits(reloaded, batch), logits(model, batch))


# --- SDMPrune's Taylor importance ---------------------------------------------------------------------


def test_completion_batches_label_only_the_completion_tokens():
    (batch,) = completion_batches([([1, 2, 3], [4, 5]), ([6, 7], [8])], pad_id=0, batch_size=2)
    assert batch["input_ids"].tolist() == [[1, 2, 3, 4, 5], [6, 7, 8, 0, 0]]
    assert batch["labels"].tolist() == [[-100, -100, 4, 5, -100], [-100, 8, -100, -100, -100]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]]


def taylor_batches():
    pairs = [([5, 9, 14, 30], [41, 7, 19]), ([11, 12], [60, 61, 62, 63]), ([3, 4, 5], [6])]
    return completion_batches(pairs, pad_id=0, batch_size=2)


def direct_taylor(model, batches, original=None) -> torch.Tensor:
    """Σ_rows |∂L/∂m| for a multiplicative mask m = 1 on each row's down_proj input: the same first-order term."""
    layers = model.model.layers
    totals = torch.zeros(len(layers), layers[0].mlp.down_proj.in_features, dtype=torch.float64)
    for batch in batches:
        masks = [
            torch.ones(len(batch["labels"]), 1, layer.mlp.down_proj.in_features, requires_grad=True) for layer in layers
        ]
        handles = [
            layer.mlp.down_proj.register_forward_pre_hook(lambda module, args, mask=mask: (args[0] * mask,))
            for layer, mask in zip(layers, masks)
        ]
        logits_ = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        for handle in handles:
            handle.remove()
        loss = 0.0
        for row in range(len(batch["labels"])):
            positions = (batch["labels"][row] != -100).nonzero()[:, 0]
            log_probs = logits_[row, positions].log_softmax(-1)
            if original is None:
                loss = loss - log_probs.gather(-1, batch["labels"][row, positions, None]).mean()
            else:
                with torch.no_grad():
                    reference = (
                        original(input_ids=batch["input_ids"][row : row + 1]).logits[0, positions].log_softmax(-1)
                    )
                loss = loss + (reference.exp() * (reference - log_probs)).sum(-1).mean()
        loss.backward()
        totals += torch.stack([mask.grad[:, 0].abs().sum(0) for mask in masks]).double()
    return totals.float()


def test_cross_entropy_taylor_importance_matches_gradients_of_a_neuron_mask(tiny):
    batches = taylor_batches()
    got = taylor_importance(copy.deepcopy(tiny), batches, None, show_progress=False, desc="-")
    torch.testing.assert_close(got, direct_taylor(copy.deepcopy(tiny), batches), rtol=1e-3, atol=1e-6)


def test_self_distillation_taylor_is_zero_at_the_original_and_matches_the_mask_gradients_elsewhere(tiny):
    batches = taylor_batches()
    at_original = taylor_importance(copy.deepcopy(tiny), batches, tiny, show_progress=False, desc="-")
    assert at_original.abs().max() < 1e-5 * direct_taylor(copy.deepcopy(tiny), batches).abs().max()
    student = copy.deepcopy(tiny)
    prune_mlp_neurons(student, keep_top(torch.rand(2, 256), 200, "ffn_size", "-"))
    got = taylor_importance(copy.deepcopy(student), batches, tiny, show_progress=False, desc="-")
    assert got.abs().max() > 0
    torch.testing.assert_close(got, direct_taylor(student, batches, tiny), rtol=1e-3, atol=1e-7)


# --- the prune stage ----------------------------------------------------------------------------------


def stage(model: str, output, **options):
    settings = {"calibration_rows": 8, "batch_size": 4, "max_length": 96, **options}
    return prune(PruneConfig(model=model, output=str(output), **settings), show_progress=False)


def test_minitron_cuts_a_block_then_every_width_axis_and_records_it(gqa_llama, batch, tmp_path, capsys):
    result = stage(
        gqa_llama, tmp_path / "pruned", method="minitron", blocks_to_remove=1, ffn_size=128, kv_heads=1, hidden_size=96
    )
    printed = capsys.readouterr().out
    text = (tmp_path / "pruned" / "sdd_data_prune.json").read_text()
    record = json.loads(text)
    assert record == result.record
    assert len(text.splitlines()) < 150, "each list of scores or kept units is written on one line"
    assert record["method"] == "minitron" and record["block_method"] == "block-influence"
    assert len(record["removed_blocks"]) == 1 and record["scores"]["block_influence"]
    before, after = record["shape"]["before"], record["shape"]["after"]
    assert (before["intermediate_size"], after["intermediate_size"]) == (256, 128)
    assert (after["num_key_value_heads"], after["num_attention_heads"], after["hidden_size"]) == (1, 2, 96)
    assert len(record["kept"]["mlp_neurons"]) == 2 and len(record["kept"]["mlp_neurons"][0]) == 128
    assert len(record["scores"]["kv_groups"]) == 2 and len(record["scores"]["hidden_channels"]) == 128
    model = load(tmp_path / "pruned")
    assert sum(p.numel() for p in model.parameters()) == after["parameters"] < before["parameters"]
    assert "MLP width 256 → 128 in every block, KV heads 2 → 1 per block (query heads 4 → 2)" in printed
    assert torch.isfinite(logits(model, batch)).all()


def test_minitron_scored_in_bfloat16_saves_the_checkpoints_own_weights(gqa_llama, tmp_path):
    stage(gqa_llama, tmp_path / "pruned", method="minitron", ffn_size=64, dtype="bfloat16")
    record = json.loads((tmp_path / "pruned" / "sdd_data_prune.json").read_text())
    pruned, source = load(tmp_path / "pruned"), load(gqa_llama)
    assert pruned.dtype == torch.float32
    kept = torch.tensor(record["kept"]["mlp_neurons"][2])
    assert torch.equal(pruned.model.layers[2].mlp.up_proj.weight, source.model.layers[2].mlp.up_proj.weight[kept])


def test_sdmprune_completes_the_calibration_prompts_and_cuts_in_two_steps(gqa_llama, tmp_path):
    stage(gqa_llama, tmp_path / "pruned", method="sdmprune", ffn_size=128, completion_tokens=6, calibration_rows=6)
    record = json.loads((tmp_path / "pruned" / "sdd_data_prune.json").read_text())
    scores = record["scores"]
    completed = scores["completions"]
    assert completed["rows"] + completed["left_out_too_long"] == 6 and completed["rows"] >= 1
    assert completed["rows"] <= completed["tokens"] <= 6 * completed["rows"]
    first = scores["first_step_kept"]
    assert len(first) == 3 and len(first[0]) == 256 - round(0.1 * (256 - 128))
    assert len(scores["cross_entropy_taylor"][0]) == 256 and len(scores["self_distillation_taylor"][0]) == len(first[0])
    for layer_first, layer_final in zip(first, record["kept"]["mlp_neurons"]):
        assert len(layer_final) == 128 and set(layer_final) <= set(layer_first)
    assert load(tmp_path / "pruned").config.intermediate_size == 128


def test_sdmprune_after_removing_blocks_scores_the_blocks_that_remain(gqa_llama, tmp_path):
    stage(gqa_llama, tmp_path / "pruned", method="sdmprune", ffn_size=200, blocks="1", completion_tokens=4)
    record = json.loads((tmp_path / "pruned" / "sdd_data_prune.json").read_text())
    assert record["removed_blocks"] == [1] and record["block_method"] == "explicit" and record["method"] == "sdmprune"
    assert len(record["kept"]["mlp_neurons"]) == 2 and len(record["scores"]["self_distillation_taylor"]) == 2
    model = load(tmp_path / "pruned")
    assert model.config.num_hidden_layers == 2 and model.config.intermediate_size == 200
    # the blocks that remain are the source's blocks 0 and 2, with their kept neurons
    source = load(gqa_llama)
    kept = torch.tensor(record["kept"]["mlp_neurons"][1])
    assert torch.equal(model.model.layers[1].mlp.gate_proj.weight, source.model.layers[2].mlp.gate_proj.weight[kept])


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"method": "angular", "blocks_to_remove": 1, "ffn_size": 64}, "ffn_size cut width: use --method minitron"),
        ({"method": "minitron"}, "minitron needs a width target"),
        (
            {"method": "minitron", "ffn_size": 256},
            "ffn_size 256 must be smaller than the model's intermediate size 256",
        ),
        ({"method": "minitron", "kv_heads": 2}, "kv_heads 2 must be smaller than the model's KV heads 2"),
        ({"method": "minitron", "hidden_size": 0}, "hidden_size must be a positive integer"),
        ({"method": "minitron", "hidden_size": 126}, "hidden size 126 and 4 query heads: transformers refuses"),
        ({"method": "minitron", "kv_heads": 1, "hidden_size": 97}, "hidden size 97 and 2 query heads"),
        ({"method": "sdmprune"}, "give the MLP size to keep with --ffn-size"),
        ({"method": "sdmprune", "ffn_size": 64, "kv_heads": 1}, "sdmprune prunes only MLP neurons"),
        ({"method": "sdmprune", "ffn_size": 64, "sdmprune_warmup": 0.0}, "sdmprune_warmup must be between 0 and 1"),
        ({"method": "minitron", "ffn_size": 64, "blocks_to_remove": 3}, "can remove 1 to 2"),
    ],
)
def test_bad_width_requests_are_refused_before_anything_is_written(overrides, message, gqa_llama, tmp_path):
    with pytest.raises(SddError, match=message):
        stage(gqa_llama, tmp_path / "pruned", **overrides)
    assert not (tmp_path / "pruned").exists()


def test_a_qwen2_cut_keeps_hidden_size_equal_to_heads_times_head_dim_for_vllm(tiny_llama_path, tmp_path):
    qwen2 = build_gqa(tmp_path / "qwen2", tiny_llama_path, "qwen2")
    with pytest.raises(SddError, match="vLLM computes a Qwen2 model's head_dim as hidden_size / heads"):
        stage(qwen2, tmp_path / "heads-only", method="minitron", kv_heads=1)
    assert not (tmp_path / "heads-only").exists()
    stage(qwen2, tmp_path / "both", method="minitron", kv_heads=1, hidden_size=64)
    config = load(tmp_path / "both").config
    assert config.hidden_size == config.num_attention_heads * config.head_dim == 64


def test_the_record_reads_in_words_for_cards_old_and_new():
    old = {"method": "angular", "removed_blocks": [3, 4], "num_blocks_before": 6, "num_blocks_after": 4}
    assert describe_pruning(old) == {
        "description": "removed 2 of 6 decoder blocks (0-based: 3, 4) chosen by `angular`; 4 left",
        "summary": "2 of its decoder blocks removed",
        "short": "blocks 3, 4 removed",
    }
    shape = {"intermediate_size": 1536, "num_key_value_heads": 3, "num_attention_heads": 9, "hidden_size": 576}
    width = {
        "method": "sdmprune",
        "removed_blocks": [],
        "shape": {
            "before": {**shape, "parameters": 134_515_008},
            "after": {**shape, "intermediate_size": 1128, "parameters": 113_369_664},
        },
    }
    words = describe_pruning(width)
    assert (
        words["description"] == "MLP width 1536 → 1128 in every block, chosen by `sdmprune`; 134.5M → 113.4M parameters"
    )
    assert words["summary"] == "its MLP width cut from 1536 to 1128" and words["short"] == "MLP width 1536 → 1128"


def test_a_width_cut_model_card_says_what_was_cut(gqa_llama, tmp_path):
    from sdd_data.cards import recovered_model_card
    from sdd_data.publish.model_records import trace_model

    stage(gqa_llama, tmp_path / "narrow", method="minitron", ffn_size=128, kv_heads=1)
    lineage = trace_model(tmp_path / "narrow")
    assert lineage["kind"] == "prune" and lineage["pruning"]["removed_blocks"] == []
    card = recovered_model_card(None, lineage, model_name="narrow", load_path=".", license_id=None)
    assert "with its MLP width cut from 256 to 128 and its KV heads cut from 2 to 1" in card
    assert (
        "| pruning | MLP width 256 → 128 in every block, KV heads 2 → 1 per block (query heads 4 → 2), chosen by"
        in card
    )
