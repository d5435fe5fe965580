"""`sdd-data run` checks every step's options and inputs before the first step runs: all problems at once."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
import yaml
from data_samples import ARC_EASY, GSM8K_TEST, GSM8K_TRAIN

from sdd_data.cli import main
from sdd_data.config import build_config
from sdd_data.pipeline_checks import precheck
from sdd_data.stages import STAGES

RECIPE = str(Path(__file__).parents[1] / "recipes" / "smollm2-135m-instruct" / "sft-cpu" / "config.yaml")


def loop(runs: Path, **changes: dict) -> list[dict]:
    """The README's loop (distill -> prune -> select -> train -> eval) on the test samples, writing under `runs`."""
    steps = {
        "distill": {"data": str(GSM8K_TRAIN), "preset": "gsm8k", "teacher": "smollm2", "output": f"{runs}/distilled"},
        "prune": {
            "model": "smollm2",
            "blocks_to_remove": 4,
            "calibration_data": str(GSM8K_TRAIN),
            "output": f"{runs}/pruned",
        },
        "select": {
            "data": f"{runs}/distilled",
            "pruned_model": f"{runs}/pruned",
            "budget": "20%",
            "output": f"{runs}/selected",
        },
        "train": {
            "recipe": RECIPE,
            "model": f"{runs}/pruned",
            "data": f"{runs}/selected",
            "output": f"{runs}/recovered",
        },
        "eval": {
            "models": f"original=smollm2,pruned={runs}/pruned,recovered={runs}/recovered",
            "tasks": f"mc:{ARC_EASY},gsm8k:{GSM8K_TEST}",
            "speculative": "recovered",
            "output": f"{runs}/eval",
        },
    }
    for stage, options in changes.items():
        steps[stage] = {**steps[stage], **options}
    return [{stage: options} for stage, options in steps.items()]


def run_pipeline(tmp_path: Path, steps: list[dict], *flags: str) -> int:
    path = tmp_path / "loop.yaml"
    path.write_text(yaml.safe_dump({"steps": steps}, sort_keys=False))
    return main(["run", "--pipeline", str(path), *flags])


def test_the_readme_loop_is_checked_whole_by_a_dry_run(tmp_path, capsys):
    assert run_pipeline(tmp_path, loop(tmp_path / "runs"), "--dry-run") == 0
    assert "all 5 steps checked" in capsys.readouterr().out
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"eval": {"tasks": f"mc:{ARC_EASY.parent}/arc_easy_typo.jsonl"}},
         r"step 5 \(eval\): --tasks .*arc_easy_typo.jsonl does not exist"),
        ({"train": {"recipe": "recipes/nope/config.yaml"}},
         r"step 4 \(train\): --recipe recipes/nope/config.yaml does not exist"),
        ({"distill": {"template": "chatt"}}, r"step 1 \(distill\): unknown template 'chatt'"),
        ({"select": {"data": "RUNS/distiled"}},
         r"step 3 \(select\): --data .*distiled does not exist, and no earlier step writes it"),
    ],
    ids=["wrong task file", "wrong recipe path", "misspelled template", "select from a folder no step writes"],
)  # fmt: skip
def test_a_wrong_input_in_any_step_stops_the_loop_before_anything_runs(tmp_path, capsys, changes, message):
    runs = tmp_path / "runs"
    changes = {
        stage: {key: value.replace("RUNS", str(runs)) for key, value in options.items()}
        for stage, options in changes.items()
    }
    started = time.perf_counter()
    assert run_pipeline(tmp_path, loop(runs, **changes)) == 2
    assert time.perf_counter() - started < 5
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    assert re.search(message, lines[0]), lines[0]
    assert not runs.exists()


def test_every_problem_is_reported_at_once(tmp_path, capsys):
    steps = loop(tmp_path / "runs", train={"recipe": "recipes/nope/config.yaml"}, eval={"tasks": "mc:/no/such.jsonl"})
    assert run_pipeline(tmp_path, steps) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert [re.search(r"step (\d) \((\w+)\)", line).groups() for line in lines] == [("4", "train"), ("5", "eval")]


def test_an_input_written_by_an_earlier_step_must_be_of_the_right_kind(tmp_path, capsys):
    runs = tmp_path / "runs"
    steps = loop(runs, train={"model": f"{runs}/distilled"})  # a distill run is not a model
    assert run_pipeline(tmp_path, steps) == 2
    error = capsys.readouterr().err
    assert "step 4 (train): --model" in error and "(written by step 1, distill) is not a model checkpoint" in error


MINIMAL = {
    "distill": {"data": str(GSM8K_TRAIN), "output": "OUT/distilled"},
    "select": {"data": str(GSM8K_TRAIN), "pruned_model": "MODEL", "output": "OUT/selected"},
    "publish": {"distilled": "RUN", "output_dir": "OUT/published"},
    "prune": {"model": "MODEL", "blocks": "1", "output": "OUT/pruned"},
    "train": {"recipe": RECIPE, "data": str(GSM8K_TRAIN), "model": "MODEL", "output": "OUT/trained"},
    "merge": {"merge_config": "MERGE", "output": "OUT/merged"},
    "eval": {"models": "a=MODEL", "tasks": f"mc:{ARC_EASY}", "output": "OUT/eval"},
    "inspect": {"path": "RUN"},
}
MISSING = {
    "models": "a=/no/such/model",
    "tasks": "mc:/no/such/items.jsonl",
    "template": "/no/such/template.yaml",
    "files": "/no/such/eval.jsonl",
}


def test_every_option_that_names_a_path_is_refused_when_it_is_missing(tiny_llama_path, tmp_path):
    run = tmp_path / "run"
    (run / "data").mkdir(parents=True)
    (run / "run.json").write_text("{}")
    (run / "stats.json").write_text("{}")
    merge = tmp_path / "merge.yaml"
    merge.write_text(
        yaml.safe_dump(
            {
                "merge_method": "slerp",
                "base_model": tiny_llama_path,
                "models": [{"model": tiny_llama_path}, {"model": tiny_llama_path}],
                "parameters": {"t": 0.5},
            }
        )
    )
    stand_ins = {"OUT": str(tmp_path / "out"), "MODEL": tiny_llama_path, "RUN": str(run), "MERGE": str(merge)}
    checked = 0
    for _, stage in STAGES.items():
        options = {
            key: stand_ins.get(value.split("/")[0], "") + value[len(value.split("/")[0]) :]
            if value.split("/")[0] in stand_ins
            else value
            for key, value in MINIMAL[stage.name].items()
        }
        config = build_config(stage.config_class(), options)
        assert precheck([(stage, config)]) == [], f"{stage.name}: the minimal step must pass"
        for entry in stage.inputs:
            missing = MISSING.get(entry.role, "/no/such/input.jsonl")
            values = {**options, entry.option: missing}
            if stage.name == "publish" and entry.option == "model":
                values.pop("distilled")
            problems = precheck([(stage, build_config(stage.config_class(), values))])
            flag = f"--{entry.option.replace('_', '-')}"
            assert any(flag in problem and "does not exist" in problem for problem in problems), (stage.name, problems)
            checked += 1
    assert checked >= 20


def test_a_steps_skip_key_covers_every_input_it_declares_eval_models_included(tiny_llama_path, tmp_path):
    from sdd_data.pipeline import PipelineStep, input_digests
    from sdd_data.pipeline_checks import input_paths

    stage = STAGES.get("eval")
    options = {"models": f"original={tiny_llama_path}", "tasks": f"mc:{ARC_EASY}", "output": str(tmp_path / "eval")}
    config = build_config(stage.config_class(), options)
    read = set(input_paths(stage, config))
    assert read == {("models", Path(tiny_llama_path).resolve()), ("tasks", ARC_EASY.resolve())}
    assert set(input_digests(PipelineStep(stage, options, config))) == {f"{option}={path}" for option, path in read}
