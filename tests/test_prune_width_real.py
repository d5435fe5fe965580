"""Width pruning of the real SmolLM2-135M-Instruct (slow): every method at the same size, by held-out NLL,
and a width-pruned checkpoint in vLLM."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import transformers
from data_samples import ALPACA
from test_prune import greedy_answer, held_out_nll, vllm_greedy_answer

from sdd_data.models import load_causal_lm
from sdd_data.prune import PruneConfig, prune
from sdd_data.prune.mlp_width import prune_mlp_neurons

FFN_SIZE = 1128
"""SmolLM2's MLPs cut from 1536 to 1128 neurons remove as many parameters as 6 of its 30 blocks (within 0.5%)."""
CALIBRATION = {"calibration_data": str(ALPACA), "calibration_rows": 32, "max_length": 192, "batch_size": 8}


@pytest.fixture(scope="module")
def same_size_cuts(smollm2_path, tmp_path_factory) -> dict[str, str]:
    """SmolLM2 cut to the same parameter budget by each method (and by random MLP neurons, as a floor)."""
    folder = tmp_path_factory.mktemp("smollm2-width")
    configs = {
        "block-influence": {"method": "block-influence", "blocks_to_remove": 6},
        "minitron": {"method": "minitron", "ffn_size": FFN_SIZE},
        "sdmprune": {"method": "sdmprune", "ffn_size": FFN_SIZE, "completion_tokens": 48},
    }
    paths = {}
    for name, options in configs.items():
        config = PruneConfig(model=smollm2_path, output=str(folder / name), **CALIBRATION, **options)
        paths[name] = str(prune(config, show_progress=False).output)
    random_cut = load_causal_lm(smollm2_path)
    generator = torch.Generator().manual_seed(0)
    keep = torch.stack([torch.sort(torch.randperm(1536, generator=generator)[:FFN_SIZE]).values for _ in range(30)])
    prune_mlp_neurons(random_cut, keep)
    random_cut.save_pretrained(folder / "random", safe_serialization=True)
    transformers.AutoTokenizer.from_pretrained(smollm2_path).save_pretrained(folder / "random")
    paths["random neurons"] = str(folder / "random")
    return paths


def parameters(path: str) -> int:
    return sum(parameter.numel() for parameter in load_causal_lm(path).parameters())


@pytest.mark.slow
def test_every_method_at_the_same_size_by_held_out_nll(same_size_cuts, smollm2_path):
    tokenizer = transformers.AutoTokenizer.from_pretrained(smollm2_path)
    nll = {name: held_out_nll(load_causal_lm(path).eval(), tokenizer) for name, path in same_size_cuts.items()}
    nll["original"] = held_out_nll(load_causal_lm(smollm2_path).eval(), tokenizer)
    sizes = {name: parameters(path) for name, path in same_size_cuts.items()}
    print("\nheld-out NLL at the same size:", json.dumps({k: round(v, 3) for k, v in nll.items()}), sizes)

    assert sizes["minitron"] == sizes["sdmprune"] == sizes["random neurons"]
    assert abs(sizes["block-influence"] - sizes["minitron"]) < 0.005 * sizes["minitron"]
    for method in ("minitron", "sdmprune"):
        record = json.loads((Path(same_size_cuts[method]) / "sdd_data_prune.json").read_text())
        assert record["method"] == method and record["shape"]["after"]["parameters"] == sizes[method]
        assert nll["original"] < nll[method] < nll["random neurons"], (method, nll)


@pytest.mark.slow
def test_a_checkpoint_cut_on_every_width_axis_runs_in_vllm(smollm2_path, tmp_path):
    output = tmp_path / "cut"
    config = PruneConfig(
        model=smollm2_path,
        output=str(output),
        method="minitron",
        ffn_size=1280,
        kv_heads=2,
        hidden_size=528,  # a multiple of the 6 query heads left, as transformers requires
        **CALIBRATION,
    )
    prune(config, show_progress=False)
    saved = json.loads((output / "config.json").read_text())
    assert (saved["hidden_size"], saved["num_attention_heads"], saved["num_key_value_heads"]) == (528, 6, 2)
    assert saved["head_dim"] == 64 and saved["intermediate_size"] == 1280

    result = vllm_greedy_answer(output, tmp_path)
    assert result["layers"] == 30
    transformers_answer = greedy_answer(output, "Give three tips for staying healthy.")
    assert result["text"].split()[:5] == transformers_answer.split()[:5], (result["text"], transformers_answer)
