"""`sdd-data run`: a pipeline file of steps, checked as a whole before any step runs."""

import json

import pytest
import yaml
from data_samples import write_jsonl
from test_distill import ROWS

from sdd_data.cli import build_parser, main
from sdd_data.config import config_hash
from sdd_data.errors import SddError
from sdd_data.pipeline import PipelineConfig, read_pipeline, run_pipeline
from sdd_data.stages import STAGES


@pytest.fixture
def inputs(tmp_path):
    """A source file of test_distill's rows and a stand-in teacher directory for its scripted engine."""
    source = tmp_path / "rows.jsonl"
    write_jsonl(source, ROWS)
    teacher = tmp_path / "teacher"
    teacher.mkdir()
    (teacher / "config.json").write_text("{}")
    return source, teacher


def write_pipeline(path, steps) -> str:
    path.write_text(yaml.safe_dump({"steps": steps}, sort_keys=False))
    return str(path)


def scripted_distill(inputs, output) -> dict:
    """A distill step's options: the `inputs` rows, rewritten by the scripted engine into `output`."""
    source, teacher = inputs
    return {"data": str(source), "teacher": str(teacher), "engine": "scripted", "output": str(output)}


def test_distill_then_publish_runs_in_order(inputs, tmp_path):
    pipeline = write_pipeline(
        tmp_path / "pipeline.yaml",
        [
            {"distill": scripted_distill(inputs, tmp_path / "run")},
            {"publish": {"distilled": str(tmp_path / "run"), "output_dir": str(tmp_path / "published")}},
        ],
    )
    assert main(["run", "--pipeline", pipeline]) == 0
    assert (tmp_path / "published" / "README.md").is_file()
    record = json.loads((tmp_path / "published" / "sdd_data.json").read_text())["configs"]["rows"]
    assert (record["rows_in"], record["rows_out"]) == (len(ROWS), len(ROWS) - 1)


def test_a_bad_later_step_stops_the_pipeline_before_the_first_runs(inputs, tmp_path, capsys):
    pipeline = write_pipeline(
        tmp_path / "pipeline.yaml",
        [
            {"distill": scripted_distill(inputs, tmp_path / "run")},
            {"publish": {"distilled": str(tmp_path / "run"), "output_dirr": "typo"}},
        ],
    )
    assert main(["run", "--pipeline", pipeline]) == 2
    assert "pipeline step 2 (publish): unknown option(s) output_dirr" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "steps, message",
    [
        ([], "non-empty list of steps"),
        ([{"distill": {}, "publish": {}}], "step 1 must map one stage name"),
        ([{"prepare": {}}], "unknown stage 'prepare'; known stages: distill"),
        ([{"publish": ["distilled"]}], "step 1 (publish): options must be a mapping"),
    ],
)
def test_malformed_pipelines_are_refused(tmp_path, steps, message):
    with pytest.raises(SddError) as raised:
        read_pipeline(write_pipeline(tmp_path / "pipeline.yaml", steps))
    assert message in str(raised.value)


def test_dry_run_checks_and_prints_without_running(inputs, tmp_path, capsys):
    source, teacher = inputs
    pipeline = write_pipeline(
        tmp_path / "pipeline.yaml",
        [
            {"distill": scripted_distill(inputs, tmp_path / "run")},
        ],
    )
    assert run_pipeline(PipelineConfig(pipeline=pipeline, dry_run=True)) == []
    assert f"step 1/1: distill  data={source} teacher={teacher} engine=scripted" in capsys.readouterr().out
    assert not (tmp_path / "run").exists()


def test_every_registered_stage_is_a_subcommand():
    subcommands = build_parser()._subparsers._group_actions[0].choices
    assert set(STAGES) | {"run", "templates"} == set(subcommands)


def test_a_missing_extra_is_reported_before_the_first_step_runs(inputs, tmp_path, monkeypatch, capsys):
    import importlib.util

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *rest: None if name == "lm_eval" else real_find_spec(name, *rest)
    )
    pipeline = write_pipeline(
        tmp_path / "pipeline.yaml",
        [
            {"distill": scripted_distill(inputs, tmp_path / "run")},
            {"eval": {"models": "original=smollm2", "tasks": "lm-eval:hellaswag:10"}},
        ],
    )
    assert main(["run", "--pipeline", pipeline, "--dry-run"]) == 2
    error = capsys.readouterr().err.strip()
    assert error == (
        "sdd-data run: error: pipeline step 2 (eval): eval needs `lm_eval`: "
        "install it with `pip install 'sdd-data[eval]'`"
    )
    assert main(["run", "--pipeline", pipeline]) == 2 and not (tmp_path / "run").exists()
    assert main(["eval", "--models", "original=smollm2", "--tasks", "lm-eval:hellaswag"]) == 2
    assert "eval needs `lm_eval`" in capsys.readouterr().err


def test_an_extra_is_needed_only_by_the_options_that_use_it():
    from sdd_data.evaluate import EvalConfig

    needs = {
        need.module for need in STAGES.get("eval").needs if need.applies(EvalConfig(models="m", tasks="mc:x.jsonl"))
    }
    assert "lm_eval" not in needs and "vllm" not in needs and "torch" in needs
    vllm_run = EvalConfig(models="m", tasks="lm-eval:arc_easy", speculative_engine="vllm")
    assert {"lm_eval", "vllm"} <= {need.module for need in STAGES.get("eval").needs if need.applies(vllm_run)}


def test_a_rerun_skips_the_steps_whose_output_has_the_same_options(inputs, tmp_path, capsys):
    from test_distill import CALLS

    distill_step = scripted_distill(inputs, tmp_path / "run")
    publish_step = {"distilled": str(tmp_path / "run"), "output_dir": str(tmp_path / "published")}
    pipeline = write_pipeline(tmp_path / "pipeline.yaml", [{"distill": distill_step}, {"publish": publish_step}])
    assert main(["run", "--pipeline", pipeline]) == 0
    calls, card = len(CALLS), (tmp_path / "published" / "README.md").read_text()
    capsys.readouterr()

    assert main(["run", "--pipeline", pipeline]) == 0
    out = capsys.readouterr().out
    assert "step 1/2: distill skipped" in out and "step 2/2: publish skipped" in out
    assert len(CALLS) == calls and (tmp_path / "published" / "README.md").read_text() == card

    changed = write_pipeline(
        tmp_path / "pipeline.yaml", [{"distill": distill_step}, {"publish": {**publish_step, "license": "mit"}}]
    )
    assert main(["run", "--pipeline", changed]) == 0
    out = capsys.readouterr().out
    assert "step 1/2: distill skipped" in out and "step 2/2: publish done" in out
    assert "license: mit" in (tmp_path / "published" / "README.md").read_text() and len(CALLS) == calls
    record = json.loads((tmp_path / "published" / "sdd_data_step.json").read_text())
    assert record["stage"] == "publish" and record["options"]["license"] == "mit"


def test_an_option_added_later_matches_an_older_record_only_at_its_default(inputs, tmp_path, capsys):
    from test_distill import CALLS

    distill_step = scripted_distill(inputs, tmp_path / "run")
    pipeline = write_pipeline(tmp_path / "pipeline.yaml", [{"distill": distill_step}])
    assert main(["run", "--pipeline", pipeline]) == 0
    record_path = tmp_path / "run" / "sdd_data_step.json"
    record = json.loads(record_path.read_text())
    assert record["options"]["shard_size"] != 7
    del record["options"]["shard_size"]  # as written by a version that had no such option
    record["hash"] = config_hash({"stage": "distill", **record["options"]})
    record_path.write_text(json.dumps(record))
    calls = len(CALLS)
    capsys.readouterr()
    assert main(["run", "--pipeline", pipeline]) == 0
    assert "step 1/1: distill skipped" in capsys.readouterr().out and len(CALLS) == calls

    record_path.write_text(json.dumps(record))
    changed = write_pipeline(tmp_path / "pipeline.yaml", [{"distill": {**distill_step, "shard_size": 7}}])
    assert main(["run", "--pipeline", changed]) == 2  # not the default: the older run did something else
    assert "holds results of another run" in capsys.readouterr().err


def test_a_step_runs_again_when_an_input_changed_under_the_same_options(inputs, tmp_path, capsys):
    """distill at 3 rows then publish; the same pipeline with distill at 5 rows: publish must not be skipped."""
    publish_step = {"distilled": str(tmp_path / "run"), "output_dir": str(tmp_path / "published")}
    three = write_pipeline(
        tmp_path / "pipeline.yaml",
        [{"distill": {**scripted_distill(inputs, tmp_path / "run"), "limit": 3}}, {"publish": publish_step}],
    )
    assert main(["run", "--pipeline", three]) == 0
    capsys.readouterr()
    five = write_pipeline(
        tmp_path / "pipeline.yaml",
        [
            {"distill": {**scripted_distill(inputs, tmp_path / "run"), "limit": 5, "overwrite": True}},
            {"publish": publish_step},
        ],
    )
    assert main(["run", "--pipeline", five]) == 0
    out = capsys.readouterr().out
    assert "step 2/2: publish done" in out and "publish skipped" not in out
    record = json.loads((tmp_path / "published" / "sdd_data.json").read_text())["configs"]["rows"]
    assert record["rows_in"] == 5

    source, _ = inputs
    write_jsonl(source, [{**row, "output": row["output"] + " Indeed."} for row in ROWS])  # same options, new data
    assert main(["run", "--pipeline", five]) == 0
    assert "step 1/2: distill done" in capsys.readouterr().out
