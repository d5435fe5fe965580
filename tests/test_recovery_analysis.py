"""The recovery experiment's analysis: arms over seeds, paired-bootstrap intervals, and a README that agrees."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

RECOVERY = Path(__file__).resolve().parents[1] / "benchmarks" / "recovery"
sys.path.insert(0, str(RECOVERY))

from analysis import (  # noqa: E402
    README_BEGIN,
    README_END,
    RESULTS_PAGE,
    RESULTS_PLOT,
    bootstrap_differences,
    build_results,
    holm,
    paired_bootstrap,
    readme_section,
    render_markdown,
)
from presets import PRESETS  # noqa: E402

RESULTS_DOC = RECOVERY.parents[1] / RESULTS_PAGE


def entry(arm: str, seed: int | None, arc: list[int], nll: float, nll_items: list[float] | None = None) -> dict:
    return {
        "arm": arm,
        "seed": seed,
        "tasks": {
            "mc:inputs/eval_arc_easy.jsonl": {"score": sum(arc) / len(arc), "higher_is_better": True, "items": arc},
            "nll:inputs/heldout_answers.jsonl": {"score": nll, "higher_is_better": False, "items": nll_items},
        },
    }


def test_arms_gather_their_seeds_and_comparisons_read_their_intervals():
    right, wrong, half = [1] * 40, [0] * 40, [1, 0] * 20
    entries = [entry("original", None, right, 1.0), entry("pruned", None, wrong, 2.0)]
    entries += [entry("sdd", seed, right, 1.1) for seed in (0, 1, 2)]
    entries += [entry("sft", seed, half, 1.3) for seed in (0, 1, 2)]
    results = build_results(PRESETS["smoke"], {"preset": PRESETS["smoke"].to_dict()}, entries)
    sdd = results["arms"]["sdd"]
    assert sdd["seeds"] == [0, 1, 2] and sdd["tasks"] == {"arc_easy": [1.0, 1.0, 1.0]}
    assert sdd["retention"] == [100.0] * 3 and sdd["distribution"] == {"heldout_answer_nll": [1.1] * 3}
    comparisons = {(item["first"], item["second"]): item for item in results["comparisons"]}
    assert comparisons[("sdd", "sft")]["difference"] == pytest.approx(0.5)
    assert comparisons[("sdd", "sft")]["verdict"] == "sdd better" and comparisons[("sdd", "sft")]["ci95"][0] > 0
    assert comparisons[("sft", "sdd")]["verdict"] == "sdd better" and comparisons[("sft", "sdd")]["ci95"][1] < 0
    assert "| sdd − sft | +50.00 |" in render_markdown(results)


def test_identical_arms_show_no_clear_difference():
    arm = {"items": {"arc": [[1, 0, 1, 1, 0, 0, 1, 0] * 10] * 3}}
    difference, low, high, p_value = paired_bootstrap(arm, arm, samples=300)
    assert difference == 0 and low <= 0 <= high and p_value == 1.0


def test_a_resample_draws_each_seed_once_for_every_task():
    """Seed 0 of the first arm is right on both tasks, seed 1 wrong on both; the second arm averages 0.5 on every
    resample. Drawing the seeds once for all tasks, a resample's difference is -0.5, 0 or +0.5, never a mix."""
    first = {"items": {"a": [[1] * 20, [0] * 20], "b": [[1] * 20, [0] * 20]}}
    second = {"items": {"a": [[1] * 20] * 2, "b": [[0] * 20] * 2}}
    assert set(bootstrap_differences(first, second, samples=500).tolist()) == {-0.5, 0.0, 0.5}


def test_holm_rejects_step_down_until_the_first_p_value_over_its_threshold():
    assert holm([0.01, 0.04, 0.03, 0.005]) == [True, False, False, True]
    assert holm([0.011, 0.02]) == [True, True]  # 0.011 <= 0.05 / 2, then 0.02 <= 0.05
    assert holm([0.3]) == [False]


def test_comparisons_say_whether_they_survive_holm():
    right, wrong, half = [1] * 40, [0] * 40, [1, 0] * 20
    entries = [entry("original", None, right, 1.0), entry("pruned", None, wrong, 2.0)]
    entries += [entry("sdd", seed, right, 1.1) for seed in (0, 1, 2)]
    entries += [entry("sft", seed, half, 1.3) for seed in (0, 1, 2)]
    entries += [entry("kd", seed, [1, 1, 0, 1] * 10, 1.2) for seed in (0, 1, 2)]
    results = build_results(PRESETS["smoke"], {"preset": PRESETS["smoke"].to_dict()}, entries)
    comparisons = {(item["first"], item["second"]): item for item in results["comparisons"]}
    assert comparisons[("sdd", "sft")]["holm_survives"] and comparisons[("sdd", "sft")]["p_value"] < 0.01
    assert all("holm_survives" in item for item in results["comparisons"])


def test_the_docs_show_exactly_the_committed_results():
    results_path = RECOVERY / "results.json"
    page = RESULTS_DOC.read_text()
    if not results_path.is_file():
        assert README_BEGIN not in page, f"{RESULTS_PAGE} shows recovery results that results.json does not hold"
        return
    results = json.loads(results_path.read_text())
    section = page[page.index(README_BEGIN) : page.index(README_END) + len(README_END)]
    assert section == readme_section(results, RESULTS_PLOT)
    assert (RECOVERY / "results.md").read_text() == render_markdown(results)
    assert (RESULTS_DOC.parent / RESULTS_PLOT).read_bytes() == (RECOVERY / "results.png").read_bytes()
    untrained = ("original", "pruned", *PRESETS[results["config"]["preset"]["name"]].width_methods)
    for name, arm in results["arms"].items():
        assert name in untrained or len(arm["seeds"]) >= 3, f"{name}: a trained arm needs 3 seeds or more"


def test_width_arms_are_compared_with_their_depth_counterparts_and_their_speed_is_shown():
    right, wrong, most = [1] * 40, [0] * 40, [1] * 30 + [0] * 10
    entries = [entry("original", None, right, 0.5), entry("pruned", None, wrong, 1.7)]
    entries += [entry("minitron", None, most, 1.2)]
    for seed in (0, 1, 2):
        entries += [entry("sdd", seed, most, 1.1), entry("minitron-sdd", seed, right, 0.9)]
    config = {
        "preset": PRESETS["cpu"].to_dict(),
        "width_pruning": {
            "original_parameters": 134_515_008,
            "depth_parameters": 113_274_432,
            "cuts": {"minitron": {"ffn_size": 1126, "parameters": 113_264_448, "heldout_nll": 1.161}},
        },
        "decode_speed": {
            "how": "transformers generate, fixed length",
            "dtype": "auto",
            "batch": 16,
            "new_tokens": 64,
            "models": {"original": {"tokens_per_second": 100.0}, "minitron": {"tokens_per_second": 115.0}},
        },
    }
    results = build_results(PRESETS["cpu"], config, entries)
    assert list(results["arms"]) == ["original", "pruned", "sdd", "minitron", "minitron-sdd"]
    comparisons = {(item["first"], item["second"]): item for item in results["comparisons"]}
    assert comparisons[("minitron", "pruned")]["verdict"] == "minitron better"
    assert comparisons[("minitron-sdd", "sdd")]["difference"] == pytest.approx(0.25)
    assert ("minitron-kd", "kd") not in comparisons, "arms that did not run are not compared"
    markdown = render_markdown(results)
    assert "minitron (MLP width 1126, 113.3M parameters, held-out NLL 1.161)" in markdown
    assert (
        "(transformers generate, fixed length, a batch of 16 held-out prompts, 64 new tokens each, dtype auto"
        in markdown
    )
    assert "original 100.0 (1.00×), minitron 115.0 (1.15×)" in markdown


def test_the_width_cut_takes_as_many_parameters_as_the_depth_cut(tiny_llama_path, tmp_path):
    import torch
    import transformers
    from run import checkpoint_parameters, equal_budget_ffn_size

    from sdd_data.prune import save_pruned_checkpoint
    from sdd_data.prune.mlp_width import prune_mlp_neurons

    config = transformers.LlamaConfig(
        vocab_size=400, hidden_size=64, intermediate_size=200, num_hidden_layers=5, num_attention_heads=2,
        num_key_value_heads=1, head_dim=32, tie_word_embeddings=True,
    )  # fmt: skip
    model = transformers.LlamaForCausalLM(config)
    model.save_pretrained(tmp_path / "original", safe_serialization=True)
    transformers.AutoTokenizer.from_pretrained(tiny_llama_path).save_pretrained(tmp_path / "original")
    assert checkpoint_parameters(tmp_path / "original") == sum(p.numel() for p in model.parameters())

    depth = save_pruned_checkpoint(str(tmp_path / "original"), [2], tmp_path / "depth")
    ffn_size = equal_budget_ffn_size(tmp_path / "original", depth)
    keep = torch.arange(ffn_size).repeat(5, 1)
    prune_mlp_neurons(model, keep)
    width = sum(p.numel() for p in model.parameters())
    per_neuron = 5 * 3 * 64
    assert abs(width - checkpoint_parameters(depth)) <= per_neuron / 2, (ffn_size, width)


def test_the_table_reports_truncated_training_rows_and_the_lm_eval_agreement():
    right, half = [1] * 40, [1, 0] * 20
    entries = [entry("original", None, right, 0.5)]
    for seed in (0, 1, 2):
        trained = entry("sdd", seed, half, 1.1)
        trained["training"] = {"rows": 1000, "rows_over_max_length": 186, "steps": 120, "train_loss": 2.2}
        entries.append(trained)
    check = {
        "model": "original",
        "dtype": "float32",
        "tasks": {"eval_arc_easy": {"items": 1000, "built_in": 0.443, "lm_eval": 0.442, "items_agreeing": 998}},
    }
    config = {"preset": PRESETS["cpu"].to_dict(), "lm_eval_check": check}
    markdown = render_markdown(build_results(PRESETS["cpu"], config, entries))
    assert "(rows longer than max_length 256, which TRL truncates): sdd 1000 (186)." in markdown
    assert "original model, float32), built-in scorer vs lm-eval acc_norm: eval_arc_easy 44.3 vs 44.2" in markdown
    assert "(998/1000 items agree)" in markdown


def test_the_table_says_whether_gsm8k_is_among_the_tasks_and_why():
    entries = [entry("original", None, [1, 0] * 20, 0.5)]
    gate = {"questions": 200, "exact_match": 0.015, "floor": 0.05, "included": False}
    config = {"preset": PRESETS["cpu"].to_dict(), "gsm8k_gate": gate}
    markdown = render_markdown(build_results(PRESETS["cpu"], config, entries))
    assert "answered 1.5% of 200 test questions exactly (greedy, zero-shot; the floor is 5%)" in markdown
    assert "so it is left out." in markdown


def test_the_headline_answers_sdd_against_sft_and_names_the_best_cut_and_recovery():
    right, half, most = [1] * 40, [1, 0] * 20, [1] * 30 + [0] * 10
    close, far = [1.0 + 0.01 * (i % 7) for i in range(30)], [1.5 + 0.01 * (i % 5) for i in range(30)]
    entries = [entry("original", None, right, 0.5)]
    for seed in (0, 1, 2):
        entries += [entry("sdd", seed, half, 1.03, close), entry("sft", seed, half, 1.52, far)]
        entries += [entry("kd", seed, most, 1.1), entry("minitron-sdd", seed, right, 1.0)]
    results = build_results(PRESETS["cpu"], {"preset": PRESETS["cpu"].to_dict()}, entries)
    versus_sft = results["headline"]["sdd_vs_sft"]
    assert versus_sft["verdict"] == "no clear difference" and versus_sft["difference"] == 0
    assert versus_sft["heldout_nll"]["reading"] == "sdd closer" and versus_sft["heldout_nll"]["ci95"][1] < 0
    best = results["headline"]["best_recovery"]
    assert (best["first"], best["second"], best["verdict"]) == ("minitron-sdd", "kd", "minitron-sdd better")
    markdown = render_markdown(results)
    assert "**Does self-distilled data beat plain SFT here?** Accuracy: no clear difference (+0.00 points" in markdown
    assert "held-out NLL of the original's answers: sdd closer (-0.4" in markdown
    assert "(sdd and kd recover the depth cut): minitron-sdd, against the next best kd: +25.00 points" in markdown
    kd_row = next(line for line in markdown.splitlines() if line.startswith("| sdd − kd |"))
    assert kd_row.endswith("| - | - | - |"), "kd has no per-answer NLL here, so no NLL interval"


def test_the_stronger_recovery_arms_are_compared_and_their_learning_rate_is_named():
    right, half = [1] * 40, [1, 0] * 20
    entries = [entry("original", None, right, 0.5)]
    for seed in (0, 1, 2):
        entries += [entry("sft", seed, half, 1.2), entry("sdd", seed, half, 1.1)]
        entries += [entry("sft-high-lr", seed, half, 1.4), entry("sdd-high-lr", seed, right, 1.0)]
    results = build_results(PRESETS["cpu"], {"preset": PRESETS["cpu"].to_dict()}, entries)
    assert list(results["arms"]) == ["original", "sft", "sdd", "sft-high-lr", "sdd-high-lr"]
    comparisons = {(item["first"], item["second"]): item["verdict"] for item in results["comparisons"]}
    assert comparisons[("sdd-high-lr", "sft-high-lr")] == "sdd-high-lr better"
    assert comparisons[("sft-high-lr", "sft")] == "no clear difference"
    markdown = render_markdown(results)
    assert "`sft-high-lr` and `sdd-high-lr` train as `sft` and `sdd` do, at learning rate 0.0001 instead of 2e-05." in (
        markdown
    )
    stronger = results["headline"]["sdd_vs_sft_high_lr"]
    assert (stronger["first"], stronger["second"], stronger["verdict"]) == (
        "sdd-high-lr",
        "sft-high-lr",
        "sdd-high-lr better",
    )
    assert "**And when both train at learning rate 0.0001 instead of 2e-05?** Accuracy: yes (+50.00 points" in markdown


def test_the_table_says_how_many_rows_keep_each_teachers_rewrite_and_why_the_others_fell_back():
    def summary(rewrites: int, reasons: dict[str, dict[str, int]]) -> dict:
        fallen = {decision: sum(counts.values()) for decision, counts in reasons.items()}
        return {"rows_in": 1000, "decisions": {"rewrite": rewrites, **fallen}, "reasons_by_decision": reasons}

    config = {
        "preset": PRESETS["cpu"].to_dict(),
        "distill": summary(622, {"original": {"truncated": 159, "template_leak": 112, "answer_mismatch": 103}}),
        "distill_pruned_teacher": summary(105, {"original": {"truncated": 598}, "dropped": {"empty": 297}}),
    }
    markdown = render_markdown(build_results(PRESETS["cpu"], config, [entry("original", None, [1, 0] * 20, 0.5)]))
    assert (
        "Distillation, teacher the original: 622 of 1000 rows keep the rewrite; 374 fall back to the source "
        "response (truncated 159, template leak 112, answer mismatch 103)." in markdown
    )
    assert (
        "teacher the pruned model (`sdd-pruned-teacher`): 105 of 1000 rows keep the rewrite; 598 fall back to the "
        "source response (truncated 598); 297 are dropped (empty 297)." in markdown
    )
