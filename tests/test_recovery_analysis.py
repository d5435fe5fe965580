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
    build_results,
    paired_bootstrap,
    readme_section,
    render_markdown,
)
from presets import PRESETS  # noqa: E402

README = RECOVERY.parents[1] / "README.md"


def entry(arm: str, seed: int | None, arc: list[int], nll: float) -> dict:
    return {
        "arm": arm,
        "seed": seed,
        "tasks": {
            "mc:inputs/eval_arc_easy.jsonl": {"score": sum(arc) / len(arc), "higher_is_better": True, "items": arc},
            "nll:inputs/heldout_answers.jsonl": {"score": nll, "higher_is_better": False, "items": None},
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
    difference, low, high = paired_bootstrap(arm, arm, samples=300)
    assert difference == 0 and low <= 0 <= high


def test_the_readme_shows_exactly_the_committed_results():
    results_path = RECOVERY / "results.json"
    readme = README.read_text()
    if not results_path.is_file():
        assert README_BEGIN not in readme, "the README shows recovery results that results.json does not hold"
        return
    results = json.loads(results_path.read_text())
    section = readme[readme.index(README_BEGIN) : readme.index(README_END) + len(README_END)]
    assert section == readme_section(results, "benchmarks/recovery/results.png")
    assert (RECOVERY / "results.md").read_text() == render_markdown(results)
    assert (RECOVERY / "results.png").is_file()
    for name, arm in results["arms"].items():
        assert name in ("original", "pruned") or len(arm["seeds"]) >= 3, name
