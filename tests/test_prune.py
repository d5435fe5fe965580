"""Depth pruning: block-score maths, checkpoint surgery, the stage, and real SmolLM2 / vLLM round trips."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sdd_data.errors import SddError
from sdd_data.prune import save_pruned_checkpoint


def test_pruned_tiny_llama_loads_with_fewer_layers(tiny_llama_path, tmp_path):
    transformers = pytest.importorskip("transformers")
    output = save_pruned_checkpoint(tiny_llama_path, [0], tmp_path / "pruned")
    config = json.loads((output / "config.json").read_text())
    assert config["num_hidden_layers"] == 1
    model = transformers.AutoModelForCausalLM.from_pretrained(output)
    assert len(model.model.layers) == 1
    assert model.model.layers[0].self_attn.layer_idx == 0
    assert (output / "tokenizer.json").is_file()


@pytest.mark.parametrize("blocks, message", [([2], "do not exist"), ([0, 0], "more than once"),
                                             ([0, 1], "all 2 blocks"), ([], "no blocks")])
def test_bad_block_requests_are_refused(tiny_llama_path, tmp_path, blocks, message):
    with pytest.raises(SddError, match=message):
        save_pruned_checkpoint(tiny_llama_path, blocks, tmp_path / "pruned")
    assert not (tmp_path / "pruned").exists()


@pytest.mark.slow
def test_pruned_smollm2_fixture_has_26_blocks(pruned_smollm2_path):
    config = json.loads((Path(pruned_smollm2_path) / "config.json").read_text())
    assert config["num_hidden_layers"] == 26
    assert config["dtype"] == "float32"
