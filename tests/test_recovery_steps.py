"""The recovery experiment's one-off steps, run for real through `sdd-data run` on a tiny model: the GSM8K gate
and the lm-eval cross-check."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import pytest

RECOVERY = Path(__file__).resolve().parents[1] / "benchmarks" / "recovery"
sys.path.insert(0, str(RECOVERY))

from prepare import write_jsonl  # noqa: E402
from presets import PRESETS  # noqa: E402
from run import Experiment  # noqa: E402

MC_ROWS = [
    {"query": "Question: What does the quick brown fox jump over?", "choices": ["the lazy dog", "a tree"], "gold": 0},
    {"query": "Question: What is 12 + 30?", "choices": ["42", "seven", "12"], "gold": 0},
    {"query": "Question: Which one is a colour?", "choices": ["green", "seven", "table", "run"], "gold": 0},
]
GSM8K_ROWS = [
    {"question": "Tom has 3 apples and buys 4 more. How many apples does he have?", "answer": "3 + 4 = 7\n#### 7"},
    {"question": "A box holds 6 eggs. How many eggs are in 2 boxes?", "answer": "6 * 2 = 12\n#### 12"},
    {"question": "Sam had 10 coins and spent 3. How many are left?", "answer": "10 - 3 = 7\n#### 7"},
]


def test_the_gsm8k_gate_and_the_lm_eval_check_run_through_the_pipeline(tiny_llama_path, tmp_path):
    preset = dataclasses.replace(PRESETS["smoke"], model=tiny_llama_path, gsm8k_gate_questions=2, gsm8k_floor=0.5)
    data_dir = tmp_path / "data"
    write_jsonl(data_dir / "gsm8k" / "test.jsonl", GSM8K_ROWS)
    experiment = Experiment(preset, tmp_path / "work", data_dir, {})
    experiment.results_dir = tmp_path / "results"

    assert experiment.gsm8k_gate() is None, "a random tiny model answers no question: GSM8K stays out"
    gate = json.loads((experiment.arms_dir / "gsm8k_gate.json").read_text())
    assert {name: value for name, value in gate.items() if name != "key"} == {
        "questions": 2, "exact_match": 0.0, "floor": 0.5, "included": False
    }  # fmt: skip
    fresh = Experiment(preset, tmp_path / "fresh-work", data_dir, {})
    fresh.results_dir = experiment.results_dir
    fresh.pipeline = lambda name, steps: pytest.fail(f"{name} ran again")  # type: ignore[method-assign]
    assert fresh.gsm8k_gate() is None and fresh.record["gsm8k_gate"] == gate, "a new work folder reuses the gate"

    mc = write_jsonl(tmp_path / "eval_tiny.jsonl", MC_ROWS)
    check = experiment.lm_eval_check([mc])
    scores = check["tasks"]["eval_tiny"]
    assert check["dtype"] == "float32" and scores["items"] == 3
    assert scores["items_agreeing"] == 3 and scores["built_in"] == scores["lm_eval"]
    assert json.loads((experiment.arms_dir / "lm_eval_check.json").read_text()) == check
    assert fresh.lm_eval_check([mc]) == check, "a new work folder reuses the check"
    write_jsonl(mc, MC_ROWS[:2])
    with pytest.raises(pytest.fail.Exception, match="lm-eval-check ran again"):
        fresh.lm_eval_check([mc])


def test_the_stronger_recovery_arms_train_as_their_usual_arms_at_the_presets_higher_learning_rate(tmp_path):
    preset = PRESETS["cpu"]
    experiment = Experiment(preset, tmp_path / "work", tmp_path / "data", {})
    data = {name: tmp_path / f"{name}.jsonl" for name in ("sft", "sdd", "kd", "sdd-math", "sdd-general")}
    plans = experiment.arm_plans(data, tmp_path / "distilled", tmp_path / "pruned", tmp_path / "train.jsonl", [])
    model = tmp_path / "pruned"
    for usual, stronger in (("sft", "sft-high-lr"), ("sdd", "sdd-high-lr")):
        step = experiment.train_step(plans[usual], model, tmp_path / f"{usual}-s0", 0)["train"]
        stronger_step = experiment.train_step(plans[stronger], model, tmp_path / f"{stronger}-s0", 0)["train"]
        assert step["overrides"]["learning_rate"] == preset.training["learning_rate"] == 2e-5
        assert stronger_step["overrides"] == {**step["overrides"], "learning_rate": preset.high_learning_rate}
        assert stronger_step["data"] == step["data"] == str(data[usual])
        assert stronger_step["recipe"] == step["recipe"] == preset.sft_recipe and "teacher" not in stronger_step
    assert "sft-high-lr" not in Experiment(PRESETS["gpu-8b"], tmp_path / "w", tmp_path / "d", {}).arm_plans(
        data, tmp_path / "distilled", tmp_path / "pruned", tmp_path / "train.jsonl", []
    ), "a preset without a higher learning rate has no stronger arms"


def test_the_round_two_arms_train_on_policy_from_the_original_and_after_the_sdd_model(tmp_path, monkeypatch):
    from sdd_data.train.recipe import parse_recipe

    preset = PRESETS["cpu"]
    experiment = Experiment(preset, tmp_path / "work", tmp_path / "data", {})
    data = {name: tmp_path / f"{name}.jsonl" for name in ("sft", "sdd", "kd", "sdd-math", "sdd-general")}
    plans = experiment.arm_plans(data, tmp_path / "distilled", tmp_path / "pruned", tmp_path / "train.jsonl", [])
    assert {"sdd-yield", "onpolicy"} <= set(plans)
    step = experiment.train_step(plans["onpolicy"], tmp_path / "pruned", tmp_path / "onpolicy-s1", 1)["train"]
    assert step["recipe"] == preset.onpolicy_recipe and step["teacher"] == preset.model
    assert step["overrides"] == {**preset.onpolicy_training, "seed": 1} and step["data"] == str(data["sft"])
    recipe = parse_recipe(step["recipe"], step["overrides"])  # every key is one the on-policy trainer reads
    assert recipe.method.name == "onpolicy" and recipe.training_args.max_completion_length == 128

    built: list[tuple[str, list[dict]]] = []
    monkeypatch.setattr(experiment, "arm", lambda arm, seed, steps, model, tasks: built.append((arm, steps)))
    experiment.sdd_then_onpolicy(2, plans, tmp_path / "pruned", [])
    [(arm, (first, second))] = built
    models = tmp_path / "work" / "models"
    assert arm == "sdd-then-onpolicy"
    assert first == experiment.train_step(plans["sdd"], tmp_path / "pruned", models / "sdd-s2", 2)
    assert second["train"]["model"] == str(models / "sdd-s2") and second["train"]["recipe"] == preset.onpolicy_recipe
    assert "sdd-yield" not in Experiment(PRESETS["smoke"], tmp_path / "w", tmp_path / "d", {}).arm_plans(
        data, tmp_path / "distilled", tmp_path / "pruned", tmp_path / "train.jsonl", []
    ), "a preset without attempts has no sdd-yield arm"


def test_a_learning_rate_is_chosen_on_dev_items_the_reported_items_never_show(tmp_path, monkeypatch):
    import prepare

    monkeypatch.setitem(prepare.READERS, "arc_easy", lambda path: [{"query": str(index)} for index in range(50)])
    reported = prepare.eval_items("arc_easy", tmp_path, 30)
    dev = prepare.dev_items("arc_easy", tmp_path, 30, 15)
    assert len(dev) == 15 and not {item["query"] for item in dev} & {item["query"] for item in reported}
    assert dev == prepare.dev_items("arc_easy", tmp_path, 30, 15), "the same dev split every time"

    preset = PRESETS["cpu"]
    experiment = Experiment(preset, tmp_path / "work", tmp_path / "data", {})
    data = {name: tmp_path / f"{name}.jsonl" for name in ("sft", "sdd", "kd", "sdd-math", "sdd-general")}
    plans = experiment.arm_plans(data, tmp_path / "distilled", tmp_path / "pruned", tmp_path / "train.jsonl", [])
    runs: list[tuple[str, float, str, list[str]]] = []

    def scored(name, seed, steps, model, tasks):  # dev accuracy peaks at 5e-5
        rate = steps[0]["train"]["overrides"]["learning_rate"]
        runs.append((name, rate, str(model), tasks))
        return {"tasks": {"mc:dev_arc_easy": {"score": 0.5 - abs(rate - 5e-5), "higher_is_better": True}}}

    monkeypatch.setattr(experiment, "arm", scored)
    assert experiment.tuned_rate("sft", plans["sft"], tmp_path / "pruned", ["mc:dev_arc_easy.jsonl"]) == 5e-5
    assert [rate for _, rate, _, _ in runs] == list(preset.learning_rate_grid)
    models = tmp_path / "work" / "models"
    expected = ["sft-s0" if rate == 2e-5 else f"sft-lr{rate:g}-s0" for rate in preset.learning_rate_grid]
    assert "sft-s0" in expected and "sft-lr5e-05-s0" in expected  # 2e-5 is the arm's usual rate
    assert [model for _, _, model, _ in runs] == [str(models / name) for name in expected]
    assert all(tasks == ["mc:dev_arc_easy.jsonl"] for _, _, _, tasks in runs)
    grid = experiment.record["learning_rate_grid"]["sft"]
    assert grid["chosen"] == 5e-5 and set(grid["dev_average"]) == {f"{rate:g}" for rate in preset.learning_rate_grid}
    # The arm's seeds train at the chosen rate: seed 0 is the grid's run at it, the others get folders beside it.
    assert experiment.model_folder("sft", 0) == models / "sft-lr5e-05-s0"
    assert experiment.model_folder("sft", 2) == models / "sft-lr5e-05-s2"
    assert experiment.model_folder("sdd", 2) == models / "sdd-s2"  # not tuned (yet): its usual rate

    # A best rate at the grid's top edge is not trusted: twice it is tried, `grid_extensions` times at most.
    runs.clear()
    monkeypatch.setattr(experiment, "arm", lambda name, seed, steps, model, tasks: scored_rising(steps, runs))
    assert preset.grid_extensions == 1
    assert experiment.tuned_rate("sdd", plans["sdd"], tmp_path / "pruned", ["mc:dev_arc_easy.jsonl"]) == 2e-4
    assert runs == [*preset.learning_rate_grid, 2e-4]
    assert set(experiment.record["learning_rate_grid"]["sdd"]["dev_average"]) == {"2e-05", "5e-05", "0.0001", "0.0002"}
    assert experiment.model_folder("sdd", 1) == models / "sdd-lr0.0002-s1"


def scored_rising(steps: list[dict], runs: list[float]) -> dict:
    """A dev score that keeps rising with the learning rate."""
    rate = steps[0]["train"]["overrides"]["learning_rate"]
    runs.append(rate)
    return {"tasks": {"mc:dev_arc_easy": {"score": rate, "higher_is_better": True}}}


def test_a_trained_arm_gets_its_draft_acceptance_once_and_keeps_it(tmp_path):
    from sdd_data.artifacts import EVAL_RESULTS

    experiment = Experiment(PRESETS["smoke"], tmp_path / "work", tmp_path / "data", {})
    experiment.results_dir = tmp_path / "results"
    write_jsonl(tmp_path / "work" / "data" / "heldout_prompts.jsonl", [{"instruction": "Hi", "input": ""}])
    model = tmp_path / "work" / "models" / "sdd-s0"
    model.mkdir(parents=True)
    ran: list[dict] = []

    def measured(name: str, steps: list[dict]) -> None:
        ran.append(steps[0]["eval"])
        output = Path(steps[0]["eval"]["output"])
        output.mkdir(parents=True, exist_ok=True)
        speculative = {"sdd-s0": {"target": "original", "acceptance_rate": 0.61, "mean_accepted_length": 3.1}}
        (output / EVAL_RESULTS).write_text(json.dumps({"speculative": speculative}))

    experiment.pipeline = measured  # type: ignore[method-assign]
    entry = {"key": "arm-key", "arm": "sdd", "seed": 0, "tasks": {}}
    first = experiment.with_acceptance(entry, "sdd-s0", model, trained=True)
    assert first["acceptance"]["acceptance_rate"] == 0.61 and len(ran) == 1
    assert ran[0]["speculative"] == "sdd-s0" and ran[0]["models"].startswith("original=smollm2,sdd-s0=")
    assert experiment.with_acceptance(entry, "sdd-s0", tmp_path / "gone", trained=True) == first, "kept, not measured"
    assert len(ran) == 1
    assert "acceptance" not in experiment.with_acceptance({**entry, "key": "other"}, "sdd-s0", tmp_path / "gone", True)
    assert experiment.with_acceptance(entry, "pruned", model, trained=False) == entry, "untrained arms are not drafts"


def test_the_cut_is_chosen_once_and_a_fresh_work_folder_cuts_only_the_chosen_blocks_again(tiny_llama_path, tmp_path):
    candidates = (("angular", 1), ("block-influence", 1))
    preset = dataclasses.replace(PRESETS["smoke"], model=tiny_llama_path, prune_candidates=candidates)
    rows = [{"id": str(i), "instruction": row["question"], "input": "", "response": row["answer"], "task": "math"}
            for i, row in enumerate(GSM8K_ROWS)]  # fmt: skip
    train = write_jsonl(tmp_path / "train.jsonl", rows)
    answers = [{"messages": [{"role": "user", "content": row["instruction"]},
                             {"role": "assistant", "content": row["response"]}]} for row in rows]  # fmt: skip
    nll_task = f"nll:{write_jsonl(tmp_path / 'answers.jsonl', answers)}"
    experiment = Experiment(preset, tmp_path / "work", tmp_path / "data", {})
    experiment.results_dir = tmp_path / "results"
    chosen = experiment.choose_cut(train, nll_task)
    record = json.loads((experiment.arms_dir / "pruning.json").read_text())
    assert [(c["method"], c["blocks"]) for c in record["candidates"]] == list(candidates)

    fresh = Experiment(preset, tmp_path / "fresh-work", tmp_path / "data", {})
    fresh.results_dir = experiment.results_dir
    ran: list[tuple[str, list[str]]] = []
    run_pipeline = fresh.pipeline

    def recorded(name: str, steps: list[dict]) -> None:
        ran.append((name, [next(iter(step)) for step in steps]))
        run_pipeline(name, steps)

    fresh.pipeline = recorded  # type: ignore[method-assign]
    again = fresh.choose_cut(train, nll_task)
    assert ran == [(chosen.name, ["prune"])], "only the chosen cut is made again, and not scored again"
    assert fresh.record["pruning"] == record
    assert (again / "sdd_data_prune.json").read_text() == (chosen / "sdd_data_prune.json").read_text()


def test_arm_keys_follow_what_the_inputs_hold_not_where_or_how_they_are_stored(tmp_path):
    import datasets
    import torch
    from run import content_digest
    from safetensors.torch import save_file

    tensors = {"embed": torch.arange(6.0).reshape(2, 3), "norm": torch.ones(4, dtype=torch.bfloat16)}
    changed = {**tensors, "norm": torch.tensor([1.0, 1.0, 1.0, 0.5], dtype=torch.bfloat16)}
    stored = [("model", tensors, ["embed", "norm"], {"format": "pt"}),
              ("resaved", tensors, ["norm", "embed"], {"format": "pt", "saved_by": "another run"}),
              ("changed", changed, ["embed", "norm"], {"format": "pt"})]  # fmt: skip
    for name, values, order, metadata in stored:
        (tmp_path / name).mkdir()
        save_file({key: values[key] for key in order}, tmp_path / name / "model.safetensors", metadata=metadata)
    weights = {name: content_digest(tmp_path / name) for name, *_ in stored}
    assert weights["model"] == weights["resaved"] != weights["changed"]

    conversation = [{"role": "user", "content": "What is 2 + 2?"}, {"role": "assistant", "content": "4"}]
    datasets.Dataset.from_list([{"messages": conversation, "seconds": 1.5}]).save_to_disk(tmp_path / "data")
    datasets.Dataset.from_list([{"messages": conversation, "seconds": 9.0}]).save_to_disk(tmp_path / "rerun")
    other = [conversation[0], {"role": "assistant", "content": "5"}]
    datasets.Dataset.from_list([{"messages": other, "seconds": 1.5}]).save_to_disk(tmp_path / "other")
    data = {name: content_digest(tmp_path / name) for name in ("data", "rerun", "other")}
    assert data["data"] == data["rerun"] != data["other"], "a dataset is keyed by the conversations it trains"

    here = Experiment(PRESETS["smoke"], tmp_path / "here" / "work", tmp_path / "data", {})
    elsewhere = Experiment(PRESETS["smoke"], tmp_path / "elsewhere" / "work", tmp_path / "data", {})
    assert (
        here.portable_hash({"data": str(here.work / "sdd")})
        == elsewhere.portable_hash({"data": str(elsewhere.work / "sdd")})
        != here.portable_hash({"data": str(here.work / "sft.jsonl")})
    ), "keys do not depend on where the work lies"
