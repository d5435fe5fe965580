"""The recovery experiment's analysis: arms over seeds, paired-bootstrap intervals, and a README that agrees."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

RECOVERY = Path(__file__).resolve().parents[1] / "benchmarks" / "recovery"
sys.path.insert(0, str(RECOVERY))

from analysis import (  # noqa: E402
    RESULTS_PAGE,
    bootstrap_differences,
    build_results,
    holm,
    paired_bootstrap,
    readme_section,
    render_markdown,
    results_files,
    results_markers,
    results_plot,
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
    page = RESULTS_DOC.read_text()
    for name, preset in PRESETS.items():
        files = results_files(RECOVERY, name)
        begin, end = results_markers(name)
        if not files["json"].is_file():
            assert begin not in page, f"{RESULTS_PAGE} shows {name} results that {files['json'].name} does not hold"
            continue
        results = json.loads(files["json"].read_text())
        section = page[page.index(begin) : page.index(end) + len(end)]
        assert section == readme_section(results)
        assert files["md"].read_text() == render_markdown(results)
        assert (RESULTS_DOC.parent / results_plot(name)).read_bytes() == files["png"].read_bytes()
        untrained = ("original", "pruned", *preset.width_methods)
        for arm_name, arm in results["arms"].items():
            assert arm_name in untrained or len(arm["seeds"]) >= 3, f"{arm_name}: a trained arm needs 3 seeds or more"
