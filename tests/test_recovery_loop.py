"""The whole recovery loop on the real SmolLM2, as one `sdd-data run` pipeline.

distill GSM8K rows -> prune two blocks -> select rows with PASER -> two short SFT runs on the pruned
model -> SLERP merge of the two -> evaluate original, pruned, recovered and merged. Each step reads
what the step before it wrote, so this checks that every output loads in the next stage.
"""

import json
from pathlib import Path

import pytest
import yaml
from data_samples import ARC_EASY, GSM8K_TRAIN

from sdd_data.cli import main

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
CPU_RECIPE = REPO / "recipes" / "smollm2-135m-instruct" / "sft-cpu" / "config.yaml"


@pytest.fixture(scope="module")
def loop(tmp_path_factory, smollm2_path):
    """Run the pipeline once; returns the folder holding every step's output."""
    work = tmp_path_factory.mktemp("loop")
    merge_recipe = work / "merge.yaml"
    merge_recipe.write_text(
        yaml.safe_dump(
            {
                "merge_method": "slerp",
                "base_model": str(work / "sft-a"),
                "models": [{"model": str(work / "sft-a")}, {"model": str(work / "sft-b")}],
                "parameters": {"t": [{"filter": "self_attn", "value": [0, 0.5, 1]}, {"value": 0.5}]},
                "dtype": "float32",
            },
            sort_keys=False,
        )
    )
    train = {"recipe": str(CPU_RECIPE), "data": str(work / "selected"), "model": str(work / "pruned"), "max_steps": 2}
    quick = {"max_length": 192, "gradient_accumulation_steps": 1}  # two short steps of two rows each
    steps = [
        {
            "distill": {
                "data": str(GSM8K_TRAIN),
                "preset": "gsm8k",
                "limit": 8,
                "teacher": "smollm2",
                "max_new_tokens": 64,
                "batch_size": 8,
                "output": str(work / "distilled"),
            }
        },
        {
            "prune": {
                "model": "smollm2",
                "method": "block-influence",
                "blocks_to_remove": 2,
                "calibration_rows": 8,
                "output": str(work / "pruned"),
            }
        },
        {
            "select": {
                "data": str(work / "distilled"),
                "pruned_model": str(work / "pruned"),
                "budget": "6",
                "n_clusters": 2,
                "max_length": 192,
                "cache_dir": str(work / "cache"),
                "output": str(work / "selected"),
            }
        },
        {"train": {**train, "output": str(work / "sft-a"), "overrides": quick}},
        {"train": {**train, "output": str(work / "sft-b"), "overrides": {**quick, "seed": 7, "learning_rate": 1.0e-4}}},
        {"merge": {"merge_config": str(merge_recipe), "output": str(work / "merged")}},
        {
            "eval": {
                "models": f"original=smollm2,pruned={work / 'pruned'},recovered={work / 'sft-a'},"
                f"merged={work / 'merged'}",
                "tasks": f"mc:{ARC_EASY}",
                "limit": 6,
                "speculative": "merged",
                "speculative_limit": 2,
                "speculative_max_new_tokens": 24,
                "output": str(work / "eval"),
            }
        },
    ]
    pipeline = work / "pipeline.yaml"
    pipeline.write_text(yaml.safe_dump({"steps": steps}, sort_keys=False))
    assert main(["run", "--pipeline", str(pipeline)]) == 0
    return work


def test_the_pruned_model_is_a_standard_checkpoint_with_two_blocks_fewer(loop, smollm2_path):
    import transformers

    original = transformers.AutoConfig.from_pretrained(smollm2_path)
    pruned = transformers.AutoModelForCausalLM.from_pretrained(loop / "pruned")
    assert pruned.config.num_hidden_layers == original.num_hidden_layers - 2
    record = json.loads((loop / "pruned" / "sdd_data_prune.json").read_text())
    assert len(record["removed_blocks"]) == 2


def test_selection_keeps_exactly_the_budget_from_the_distilled_rows(loop):
    import datasets

    selected = datasets.load_from_disk(str(loop / "selected" / "data"))
    assert len(selected) == 6
    assert {"messages", "cluster", "degradation", "ies", "selection_reason"} <= set(selected.column_names)
    assert all(score > 0 for score in selected["degradation"])


def test_both_fine_tunes_and_the_merge_load_and_generate(loop):
    import torch
    import transformers

    tokenizer = transformers.AutoTokenizer.from_pretrained(loop / "merged")
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is 3 + 4?"}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    weights = {}
    for name in ("sft-a", "sft-b", "merged"):
        model = transformers.AutoModelForCausalLM.from_pretrained(loop / name)
        weights[name] = model.model.layers[0].self_attn.q_proj.weight.detach().clone()
        with torch.no_grad():
            output = model.generate(**prompt, max_new_tokens=8, do_sample=False)
        assert output.shape[1] > prompt["input_ids"].shape[1]
    assert (loop / "sft-a" / "README.md").is_file()
    assert not torch.equal(weights["sft-a"], weights["sft-b"])
    # The first layer's attention takes t = 0 from the gradient [0, 0.5, 1]: the base model, bit for bit.
    assert torch.equal(weights["merged"], weights["sft-a"])


def test_evaluation_reports_every_model_with_retention_and_acceptance(loop):
    report = json.loads((loop / "eval" / "results.json").read_text())
    assert list(report["models"]) == ["original", "pruned", "recovered", "merged"]
    assert report["baseline"] == "original"
    (task,) = report["tasks"].values()
    assert task["rows"] == 6
    assert all(0.0 <= score <= 1.0 for score in task["scores"].values())
    assert set(report["retention"]) == {"pruned", "recovered", "merged"}
    original = report["average"]["original"]
    for name, retained in report["retention"].items():
        if original == 0:
            assert retained["average"] is None
        else:
            assert retained["average"] == pytest.approx(100 * report["average"][name] / original)
    speculative = report["speculative"]["merged"]
    assert 0.0 <= speculative["acceptance_rate"] < 1.0
    assert speculative["proposed"] > 0
    assert (loop / "eval" / "results.png").stat().st_size > 0
