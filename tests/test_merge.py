"""SLERP merging: the tensor math, the t schedule, mergekit recipes, streamed sharded checkpoints and the CLI."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
import safetensors.torch as safetensors_torch
import torch
import transformers
import yaml

from sdd_data.cli import main
from sdd_data.errors import SddError
from sdd_data.merge.checkpoints import one_intra_op_thread
from sdd_data.merge.recipe import parse_recipe
from sdd_data.merge.safetensors_stream import INDEX_FILE, CheckpointReader
from sdd_data.merge.schedule import layer_index, parse_t_setting, t_for_tensor
from sdd_data.merge.slerp import slerp, slerp_weights, slerp_with_method
from sdd_data.merge.stage import MergeConfig, merge, parse_size

GRADIENT = [0, 0.5, 0.3, 0.7, 1]
CANONICAL_T = [
    {"filter": "self_attn", "value": GRADIENT},
    {"filter": "mlp", "value": [1, 0.5, 0.7, 0.3, 0]},
    {"value": 0.5},
]


def same_bits(x: torch.Tensor, y: torch.Tensor) -> bool:
    return (
        x.dtype == y.dtype
        and x.shape == y.shape
        and torch.equal(x.contiguous().reshape(-1).view(torch.uint8), y.contiguous().reshape(-1).view(torch.uint8))
    )


def load_tensors(folder: Path) -> dict[str, torch.Tensor]:
    reader = CheckpointReader(folder)
    return {name: reader.read(name) for name in reader.tensors}


def save_llama(folder: Path, seed: int, num_layers: int = 4, **save_options) -> Path:
    config = transformers.LlamaConfig(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=num_layers,
        num_attention_heads=2,
        head_dim=32,
        vocab_size=256,
    )
    torch.manual_seed(seed)
    model = transformers.LlamaForCausalLM(config)
    model.save_pretrained(folder, **save_options)
    (folder / "tokenizer_config.json").write_text(json.dumps({"model_max_length": 2048, "seed": seed}))
    return folder


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two 4-layer random Llamas (the second sharded), a 2-layer one and one claiming another architecture."""
    root = tmp_path_factory.mktemp("merge-models")
    paths = {
        "a": save_llama(root / "a", seed=0),
        "b": save_llama(root / "b", seed=1, max_shard_size="100KB"),
        "pruned": save_llama(root / "pruned", seed=2, num_layers=2),
    }
    paths["mistral"] = Path(shutil.copytree(paths["a"], root / "mistral"))
    config = json.loads((paths["mistral"] / "config.json").read_text())
    config.update(architectures=["MistralForCausalLM"], model_type="mistral")
    (paths["mistral"] / "config.json").write_text(json.dumps(config))
    return paths


def write_recipe(folder: Path, base: Path, other: Path, t, form: str = "slices", **extra) -> Path:
    if form == "slices":
        recipe = {
            "slices": [
                {"sources": [{"model": str(base), "layer_range": [0, 4]}, {"model": str(other), "layer_range": [0, 4]}]}
            ]
        }
    else:
        recipe = {"models": [{"model": str(base)}, {"model": str(other)}]}
    recipe.update(merge_method="slerp", base_model=str(base), parameters={"t": t}, **extra)
    path = folder / "merge.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return path


def run_merge(tmp_path: Path, base: Path, other: Path, t, name: str = "merged", **options):
    recipe = write_recipe(tmp_path, base, other, t, **options.pop("recipe", {}))
    return merge(MergeConfig(merge_config=str(recipe), output=str(tmp_path / name), **options), show_progress=False)


# The tensor math.


def test_t0_and_t1_return_the_inputs_bit_for_bit():
    a = torch.tensor([[-0.0, 1.5, float("1e-30")], [3.0, -2.0, 0.1]], dtype=torch.bfloat16)
    b = torch.tensor([[0.0, -1.0, 2.0], [0.5, 0.25, -7.0]], dtype=torch.bfloat16)
    assert same_bits(slerp(a, b, 0.0), a) and same_bits(slerp(a, b, 1.0), b)
    assert slerp(a, b, 0.0).data_ptr() != a.data_ptr()
    assert [slerp_with_method(a, b, t)[1] for t in (0, 1)] == ["copy_a", "copy_b"]


def test_identical_inputs_round_trip_exactly():
    torch.manual_seed(0)
    a = torch.randn(7, 5)
    for t in (0.1, 0.3, 0.5, 0.77):
        result, method = slerp_with_method(a, a.clone(), t)
        assert method == "identical" and same_bits(result, a)


@pytest.mark.parametrize("factor", [2.0, -1.0])
def test_colinear_inputs_fall_back_to_linear_interpolation(factor):
    torch.manual_seed(0)
    a = torch.randn(16, 8)
    weights = slerp_weights(a, factor * a, 0.25)
    assert weights.method == "lerp" and weights.cosine == pytest.approx(math.copysign(1.0, factor), abs=1e-6)
    result, method = slerp_with_method(a, factor * a, 0.25)
    assert method == "lerp"
    torch.testing.assert_close(result, 0.75 * a + 0.25 * factor * a)


def test_slerp_matches_the_closed_form_on_the_unit_circle():
    a, b = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    for t in (0.5, 1 / 3, 0.9):
        result, method = slerp_with_method(a, b, t)
        angle = t * math.pi / 2
        assert method == "slerp"
        torch.testing.assert_close(result, torch.tensor([math.cos(angle), math.sin(angle)]))
    # Unnormalised inputs are interpolated as they are: the angle comes from their directions.
    torch.testing.assert_close(slerp(2 * a, 2 * b, 0.5), torch.tensor([math.sqrt(2), math.sqrt(2)]))


def test_slerp_flattens_the_whole_tensor_and_keeps_the_dtype():
    torch.manual_seed(0)
    a, b = torch.randn(4, 6, dtype=torch.float16), torch.randn(4, 6, dtype=torch.float16)
    flat = slerp(a.reshape(-1), b.reshape(-1), 0.4)
    result = slerp(a, b, 0.4)
    assert result.dtype == torch.float16 and result.shape == a.shape
    assert same_bits(result.reshape(-1), flat)


def test_non_finite_values_are_refused():
    with pytest.raises(SddError, match="non-finite"):
        slerp(torch.tensor([float("nan"), 1.0]), torch.tensor([1.0, 0.0]), 0.5)


# The t schedule.


def test_layer_index_is_read_from_the_tensor_name():
    assert layer_index("model.layers.12.self_attn.q_proj.weight") == 12
    assert layer_index("model.embed_tokens.weight") is None and layer_index("lm_head.weight") is None


@pytest.mark.parametrize(
    "num_layers, expected",
    [
        (5, [0, 0.5, 0.3, 0.7, 1]),
        (4, [0, 0.5 * 2 / 3 + 0.3 / 3, 0.3 / 3 + 0.7 * 2 / 3, 1]),
    ],
)
def test_a_gradient_is_interpolated_over_depth(num_layers, expected):
    setting = parse_t_setting(GRADIENT)
    got = [t_for_tensor(setting, f"model.layers.{layer}.mlp.up_proj.weight", num_layers) for layer in range(num_layers)]
    assert got == pytest.approx(expected)
    # Tensors outside the layer stack sit at depth 0: they get the first entry, as in mergekit.
    assert t_for_tensor(setting, "lm_head.weight", num_layers) == 0


def test_filters_match_substrings_first_match_wins_with_a_fallback():
    setting = parse_t_setting(CANONICAL_T)
    assert t_for_tensor(setting, "model.layers.3.self_attn.o_proj.weight", 5) == pytest.approx(0.7)
    assert t_for_tensor(setting, "model.layers.3.mlp.down_proj.weight", 5) == pytest.approx(0.3)
    assert t_for_tensor(setting, "model.layers.3.input_layernorm.weight", 5) == 0.5
    assert t_for_tensor(setting, "model.embed_tokens.weight", 5) == 0.5
    first_wins = parse_t_setting([{"filter": "proj", "value": 0.1}, {"filter": "q_proj", "value": 0.9}])
    assert t_for_tensor(first_wins, "model.layers.0.self_attn.q_proj.weight", 2) == 0.1
    with pytest.raises(SddError, match="no t entry matches tensor model.norm.weight"):
        t_for_tensor(first_wins, "model.norm.weight", 2)


@pytest.mark.parametrize("bad", [[], "half", [{"filter": "mlp"}], [{"value": 0.5, "weight": 1}], [1, "x"]])
def test_malformed_t_settings_are_refused(bad):
    with pytest.raises(SddError):
        parse_t_setting(bad)


@pytest.mark.parametrize("outside", [1.5, -0.1, [0.0, 1.2], [{"filter": "mlp", "value": [0.5, -1]}, {"value": 0.5}]])
def test_t_outside_zero_to_one_would_extrapolate_and_is_refused(outside):
    with pytest.raises(SddError, match=r"t must lie in \[0, 1\]"):
        parse_t_setting(outside)


def test_printed_schedule_of_a_mergekit_recipe(models, tmp_path, capsys):
    recipe = write_recipe(tmp_path, models["a"], models["b"], CANONICAL_T)
    assert main(["merge", "--merge-config", str(recipe), "--output", str(tmp_path / "unused"), "--print-schedule"]) == 0
    lines = {line.split()[0]: line.split()[1:] for line in capsys.readouterr().out.splitlines()[1:]}
    thirds = [0, 0.5 * 2 / 3 + 0.3 / 3, 0.3 / 3 + 0.7 * 2 / 3, 1]
    for layer, expected in enumerate(thirds):
        layer_name, t = lines[f"model.layers.{layer}.self_attn.q_proj.weight"]
        assert layer_name == str(layer) and float(t) == pytest.approx(expected, abs=1e-6)
        assert float(lines[f"model.layers.{layer}.mlp.gate_proj.weight"][1]) == pytest.approx(1 - expected, abs=1e-6)
        assert lines[f"model.layers.{layer}.post_attention_layernorm.weight"] == [str(layer), "0.5"]
    assert lines["model.embed_tokens.weight"] == ["-", "0.5"] and lines["lm_head.weight"] == ["-", "0.5"]
    assert not (tmp_path / "unused").exists()


# Recipes.


def test_recipe_forms_and_refusals(models):
    both = {"merge_method": "slerp", "base_model": "b", "parameters": {"t": 0.5}}
    recipe = parse_recipe({"models": [{"model": "a"}, {"model": "b"}], **both, "dtype": "bf16"})
    assert (recipe.base_model, recipe.other_model, recipe.dtype, recipe.layer_range) == ("b", "a", "bfloat16", None)
    with pytest.raises(SddError, match="only does slerp"):
        parse_recipe({"models": [{"model": "a"}, {"model": "b"}], **both, "merge_method": "ties"})
    with pytest.raises(SddError, match="exactly two models"):
        parse_recipe({"models": [{"model": "a"}, {"model": "b"}, {"model": "c"}], **both})
    with pytest.raises(SddError, match="base_model must be one of"):
        parse_recipe({"models": [{"model": "a"}, {"model": "b"}], **both, "base_model": "c"})
    with pytest.raises(SddError, match="not supported"):
        parse_recipe({"models": [{"model": "a"}, {"model": "b"}], **both, "tokenizer": {"source": "union"}})
    slices = [{"sources": [{"model": "a", "layer_range": [0, 2]}, {"model": "b", "layer_range": [0, 2]}]}]
    with pytest.raises(SddError, match="partial slices"):
        parse_recipe({"slices": slices, **both}).check_layer_range(4)


def test_non_slerp_methods_are_refused_from_the_command_line(models, tmp_path, capsys):
    recipe = write_recipe(tmp_path, models["a"], models["b"], 0.5)
    recipe.write_text(recipe.read_text().replace("merge_method: slerp", "merge_method: linear"))
    assert main(["merge", "--merge-config", str(recipe), "--output", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err.strip()
    assert "\n" not in error and "merge_method is 'linear'; sdd-data merge only does slerp" in error


def test_partial_layer_ranges_are_refused(models, tmp_path):
    recipe = write_recipe(tmp_path, models["a"], models["b"], 0.5)
    recipe.write_text(recipe.read_text().replace("- 4", "- 3"))
    with pytest.raises(SddError, match=r"layer_range \[0, 3\] does not cover the models' 4 layers"):
        merge(MergeConfig(merge_config=str(recipe), output=str(tmp_path / "out")), show_progress=False)


# Whole checkpoints.


@pytest.mark.parametrize("t, source", [(0, "a"), (1, "b")])
def test_t0_and_t1_reproduce_a_whole_model_bit_for_bit(models, tmp_path, t, source):
    result = run_merge(tmp_path, models["a"], models["b"], t)
    merged, expected = load_tensors(result.output), load_tensors(models[source])
    assert merged.keys() == expected.keys()
    assert all(same_bits(merged[name], expected[name]) for name in expected)
    assert result.methods == {f"copy_{source}": len(expected)}


def test_merging_a_model_with_itself_round_trips(models, tmp_path):
    result = run_merge(tmp_path, models["a"], models["a"], CANONICAL_T, recipe={"form": "models"})
    merged, original = load_tensors(result.output), load_tensors(models["a"])
    assert all(same_bits(merged[name], original[name]) for name in original)
    assert set(result.methods) == {"copy_a", "copy_b", "identical"}  # the gradient ends reach t = 0 and t = 1


def test_streamed_merge_equals_the_tensor_function_and_loads_in_transformers(models, tmp_path):
    result = run_merge(tmp_path, models["a"], models["b"], CANONICAL_T)
    merged, a, b = load_tensors(result.output), load_tensors(models["a"]), load_tensors(models["b"])
    with one_intra_op_thread():  # as the stage runs: reductions sum in a thread-count-dependent order
        for item in result.schedule:
            assert same_bits(merged[item.name], slerp(a[item.name], b[item.name], item.t))
    assert result.methods["slerp"] > 0 and result.methods["identical"] > 0  # the norms start equal (all ones)
    assert (result.output / "tokenizer_config.json").read_text() == (models["a"] / "tokenizer_config.json").read_text()
    assert (result.output / "generation_config.json").is_file()
    assert yaml.safe_load((result.output / "merge_config.yaml").read_text())["parameters"]["t"] == CANONICAL_T

    model = transformers.AutoModelForCausalLM.from_pretrained(result.output)
    generated = model.generate(torch.tensor([[1, 5, 9]]), max_new_tokens=4, do_sample=False)
    assert generated.shape == (1, 7)
    name = "model.layers.2.mlp.up_proj.weight"
    assert same_bits(model.state_dict()[name], merged[name])


def test_sharded_output_has_a_consistent_index(models, tmp_path):
    result = run_merge(tmp_path, models["b"], models["a"], 0.5, max_shard_size="150KB")
    index = json.loads((result.output / INDEX_FILE).read_text())
    shard_files = sorted(result.output.glob("model-*.safetensors"))
    assert len(shard_files) > 2 and sorted(set(index["weight_map"].values())) == [path.name for path in shard_files]
    total = 0
    for path in shard_files:
        stored = safetensors_torch.load_file(path)
        assert all(index["weight_map"][name] == path.name for name in stored)
        total += sum(tensor.numel() * tensor.element_size() for tensor in stored.values())
        assert path.stat().st_size <= 150_000 + 1_000 or len(stored) == 1
    assert total == index["metadata"]["total_size"]
    assert set(index["weight_map"]) == set(CheckpointReader(models["a"]).tensors)


def test_dtype_override_casts_the_output_and_its_config(models, tmp_path):
    result = run_merge(tmp_path, models["a"], models["b"], 0.3, dtype="bfloat16")
    merged = load_tensors(result.output)
    assert {tensor.dtype for tensor in merged.values()} == {torch.bfloat16}
    assert json.loads((result.output / "config.json").read_text())["dtype"] == "bfloat16"


def test_a_pruned_model_is_refused_naming_the_first_missing_tensor(models, tmp_path):
    recipe = write_recipe(tmp_path, models["a"], models["pruned"], 0.5, form="models")
    with pytest.raises(
        SddError,
        match=r"tensor model\.layers\.2\.\S+ of the base model is "
        r"missing .*the base has 4 layers, the other model 2",
    ):
        merge(MergeConfig(merge_config=str(recipe), output=str(tmp_path / "out")), show_progress=False)
    assert not (tmp_path / "out").exists()


def test_different_architectures_are_refused(models, tmp_path):
    with pytest.raises(SddError, match="different architectures.*LlamaForCausalLM.*MistralForCausalLM"):
        run_merge(tmp_path, models["a"], models["mistral"], 0.5)


def test_an_existing_output_folder_is_left_alone(models, tmp_path):
    (tmp_path / "merged").mkdir()
    (tmp_path / "merged" / "keep.txt").write_text("mine")
    with pytest.raises(SddError, match="already exists"):
        run_merge(tmp_path, models["a"], models["b"], 0.5)
    assert [path.name for path in (tmp_path / "merged").iterdir()] == ["keep.txt"]
    assert [path.name for path in tmp_path.iterdir() if path.name.startswith(".")] == []


def test_sizes_are_read_in_decimal_and_binary_units():
    assert parse_size("2GB") == 2 * 10**9 and parse_size("500MiB") == 500 * 2**20 and parse_size("1000") == 1000
    with pytest.raises(SddError, match="cannot read the size"):
        parse_size("lots")
