"""Each "how to add" guide in docs/ is followed as written: its plugin module goes into one new file, it is
registered as the guide shows, and the stage uses it."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from data_samples import write_jsonl

DOCS = Path(__file__).parents[1] / "docs"
CODE = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def follow(guide: str, folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Write the guide's `# file:` block into that file in `folder` and run its `# register` block."""
    blocks = CODE.findall((DOCS / guide).read_text())
    files = [block for block in blocks if block.startswith("# file: ")]
    registrations = [block for block in blocks if block.startswith("# register")]
    assert len(files) == 1 and len(registrations) == 1, f"{guide}: one `# file:` block and one `# register` block"
    name = files[0].splitlines()[0].removeprefix("# file: ").strip()
    (folder / name).write_text(files[0])
    monkeypatch.syspath_prepend(str(folder))
    exec(compile(registrations[0], f"{guide} (register)", "exec"), {})  # noqa: S102 - the guide's own code


def test_the_selection_method_guide_adds_a_method_in_one_file(tmp_path, monkeypatch):
    from sdd_data.select import selectors
    from sdd_data.select.selection import SelectConfig

    monkeypatch.setattr(
        selectors, "SELECTORS", selectors.Registry("selection method", dict(selectors.SELECTORS.items()))
    )
    follow("add-a-selection-method.md", tmp_path, monkeypatch)
    result = selectors.select_rows(
        np.eye(4, dtype=np.float32),
        np.array([0.1, 0.2, 0.3, 0.4]),
        np.array([5, 5, 5, 5]),
        np.array([30, 10, 20, 40]),
        ["a", "b", "c", "d"],
        config=SelectConfig(method="shortest", budget="2"),
    )
    assert result.selected.tolist() == [False, True, True, False]
    assert "shortest_selection" in sys.modules


def test_the_eval_task_guide_adds_a_task_in_one_file(tmp_path, monkeypatch):
    from sdd_data.evaluate import tasks
    from sdd_data.evaluate.task_base import EvalModel, TaskSettings

    monkeypatch.setattr(tasks, "TASKS", tasks.Registry("task", dict(tasks.TASKS.items())))
    follow("add-an-eval-task.md", tmp_path, monkeypatch)
    items = tmp_path / "items.txt"
    items.write_text("one\ntwo\nthree\n")
    [task] = tasks.parse_tasks(f"lines:{items}")
    task.prepare(TaskSettings())
    result = task.run(EvalModel("a", "unused"), TaskSettings())
    assert (task.label, result.score, result.rows) == ("lines:items", 1.0, 3)


def test_the_prune_method_guide_adds_a_method_in_one_file(tiny_llama_path, tmp_path, monkeypatch, capsys):
    from test_prune import build_model

    from sdd_data.prune import PruneConfig, methods, prune, stage

    registry = methods.Registry("prune method", dict(methods.PRUNE_METHODS.items()))
    monkeypatch.setattr(methods, "PRUNE_METHODS", registry)
    monkeypatch.setattr(stage, "PRUNE_METHODS", registry)
    follow("add-a-prune-method.md", tmp_path, monkeypatch)
    assert "`last-blocks` (depth): the last n decoder blocks" in methods.methods_help()
    model = build_model(tmp_path / "six-blocks", tiny_llama_path)
    config = PruneConfig(model=model, output=str(tmp_path / "pruned"), method="last-blocks", blocks_to_remove=2)
    result = prune(config, show_progress=False)
    assert result.removed_blocks == [4, 5]
    assert "removing the last 2 blocks, of block influence" in capsys.readouterr().out
    record = result.record
    assert (record["method"], record["block_method"], record["num_blocks_after"]) == ("last-blocks", "last-blocks", 4)
    assert len(record["scores"]["block_influence"]) == 6


def test_the_engine_guide_adds_an_engine_that_distills_and_evaluates(tiny_llama_path, tmp_path, monkeypatch):
    from sdd_data.data.sources import SourceSpec
    from sdd_data.distill.stage import DistillConfig, distill
    from sdd_data.engines import ENGINES
    from sdd_data.errors import SddError
    from sdd_data.evaluate.stage import EvalConfig, evaluate

    monkeypatch.setattr(ENGINES, "_members", dict(ENGINES._members))  # the registration ends with the test
    follow("add-an-engine.md", tmp_path, monkeypatch)
    rows = [
        {"id": "agrees", "instruction": "What is 40 + 2?", "input": "", "output": "40 + 2 = 42.\n#### 42"},
        {"id": "differs", "instruction": "What is 3 + 4?", "input": "", "output": "3 + 4 = 7.\n#### 7"},
    ]
    source = write_jsonl(tmp_path / "rows.jsonl", [{**row, "task": "math"} for row in rows])
    distilled = distill(
        DistillConfig(
            source=SourceSpec(data=str(source)),
            teacher=tiny_llama_path,
            engine="fixed-answer",
            output=str(tmp_path / "distilled"),
        ),
        show_progress=False,
    )
    decisions = {
        row["id"]: (row["decision"], row["teacher_response"])
        for name in ("distilled.parquet", "dropped.parquet")
        for row in pq.read_table(distilled.output / name).to_pylist()
    }
    assert decisions["agrees"] == ("rewrite", "The answer is 42.\n#### 42")
    assert decisions["differs"][0] != "rewrite"
    assert distilled.stats["engine"]["engine"] == "fixed-answer"

    questions = [("Six times seven?", 42), ("Forty plus two?", 42), ("Three plus four?", 7)]
    gsm8k = write_jsonl(
        tmp_path / "gsm8k.jsonl",
        [{"question": question, "answer": f"So {answer}.\n#### {answer}"} for question, answer in questions],
    )
    report = evaluate(
        EvalConfig(
            models=f"original={tiny_llama_path}",
            tasks=f"gsm8k:{gsm8k}",
            limit=None,
            engine="fixed-answer",
            output=str(tmp_path / "eval"),
        )
    )
    assert report["tasks"]["gsm8k:gsm8k"]["scores"]["original"] == pytest.approx(2 / 3)

    multiple_choice = write_jsonl(tmp_path / "mc.jsonl", [{"query": "2 + 2 =", "choices": ["4", "5"], "gold": 0}])
    with pytest.raises(SddError, match="engine fixed-answer cannot score log-likelihoods, which mc:mc need"):
        evaluate(
            EvalConfig(models="m", tasks=f"mc:{multiple_choice}", engine="fixed-answer", output=str(tmp_path / "no"))
        )


def test_the_inspect_view_guide_adds_a_view_in_one_file(tmp_path, monkeypatch):
    from sdd_data.config import build_config
    from sdd_data.errors import SddError
    from sdd_data.inspect import InspectConfig, inspect_output, stage
    from sdd_data.pipeline_checks import precheck
    from sdd_data.stages import STAGES

    checkpoint = tmp_path / "checkpoint"
    checkpoint.mkdir()
    shape = {"model_type": "llama", "num_hidden_layers": 6, "hidden_size": 128, "num_key_value_heads": 2}
    (checkpoint / "config.json").write_text(json.dumps(shape))
    inspect_stage = STAGES.get("inspect")
    inspect_step = (inspect_stage, build_config(inspect_stage.config_class(), {"path": str(checkpoint)}))
    assert "is not a stage output" in " ".join(precheck([inspect_step]))

    monkeypatch.setattr(stage, "VIEWS", stage.Registry("inspect view", dict(stage.VIEWS.items())))
    follow("add-an-inspect-view.md", tmp_path, monkeypatch)
    assert precheck([inspect_step]) == []
    result = inspect_output(InspectConfig(path=str(checkpoint)), show_progress=False)
    page = result.path.read_text()
    assert result.view.kind == "checkpoint" and "<title>Checkpoint: checkpoint</title>" in page
    assert 'data-stat="num_hidden_layers" data-value="6"' in page and "intermediate size" in page
    with pytest.raises(SddError, match="an eval folder or a model checkpoint"):
        inspect_output(InspectConfig(path=str(tmp_path / "nothing")))


def test_the_training_method_guide_adds_a_method_in_one_file(tiny_llama_path, tmp_path, monkeypatch):
    from sdd_data.train import methods
    from sdd_data.train.recipe import read_recipe_values
    from sdd_data.train.stage import TrainConfig, prepare_training, train

    monkeypatch.setattr(
        methods, "TRAINING_METHODS", methods.Registry("training method", dict(methods.TRAINING_METHODS.items()))
    )
    follow("add-a-training-method.md", tmp_path, monkeypatch)
    data = tmp_path / "rows.jsonl"
    turns = [{"role": "user", "content": "Name a fruit."}, {"role": "assistant", "content": "An apple."}]
    write_jsonl(data, [{"messages": turns}] * 4)
    recipe = Path(__file__).parents[1] / "recipes" / "smollm2-135m-instruct" / "sft-cpu" / "config.yaml"
    quick = {"max_length": 64, "per_device_train_batch_size": 2, "gradient_accumulation_steps": 1}
    config = TrainConfig(recipe=str(recipe), model=tiny_llama_path, data=str(data), output=str(tmp_path / "out"),
                         method="whole-text", max_steps=2, overrides=quick)  # fmt: skip
    prepared = prepare_training(config, show_progress=False)
    batch = next(iter(prepared.trainer.get_train_dataloader()))
    trained = batch["input_ids"][0][batch["labels"][0] != -100]
    assert "Name a fruit." in prepared.trainer.processing_class.decode(trained)  # the prompt carries labels
    result = train(config, show_progress=False)
    assert result.method == "whole-text" and result.metrics["global_step"] == 2
    assert "| `method` | whole-text |" in (tmp_path / "out" / "README.md").read_text()
    assert methods.recipe_method(recipe, read_recipe_values(recipe)).name == "sft"  # an SFT recipe stays sft
