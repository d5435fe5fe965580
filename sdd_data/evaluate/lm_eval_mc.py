"""`lm-eval-mc:<file.jsonl>`: the items of a multiple-choice file scored by lm-evaluation-harness, offline.

The file (`{query, choices, gold}` rows, as `mc:` reads them) becomes a local task YAML of lm-eval's own
format, found through its include path: the json dataset builder reads the file, the prompt is the query
and the delimiter's text, and each choice follows after the delimiter's trailing whitespace. The same
seeded rows as `mc:<file>` are scored (lm-eval's `samples`), so the two tasks' numbers can be compared
item by item: the built-in scorer against the standard tool.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import yaml

from sdd_data.errors import SddError
from sdd_data.evaluate.lm_eval_tasks import LmEvalTask, import_lm_eval
from sdd_data.evaluate.task_base import EvalTask, TaskSettings, choose_rows
from sdd_data.text_files import read_json_lines


def task_yaml(name: str, path: Path, delimiter: str) -> dict:
    """lm-eval's task config for a `{query, choices, gold}` JSONL file."""
    cue = delimiter.rstrip()
    return {
        "task": name,
        "dataset_path": "json",
        "dataset_kwargs": {"data_files": {"test": str(path.resolve())}},
        "test_split": "test",
        "output_type": "multiple_choice",
        "doc_to_text": "{{query}}" + cue,
        "doc_to_choice": "{{choices}}",
        "doc_to_target": "{{gold}}",
        "target_delimiter": delimiter[len(cue) :],
        "metric_list": [
            {"metric": metric, "aggregation": "mean", "higher_is_better": True} for metric in ("acc", "acc_norm")
        ],  # fmt: skip
    }


def _row_count(path: Path) -> int:
    rows = [row for _, row in read_json_lines(path, "task file")]
    if not rows or not all({"query", "choices", "gold"} <= set(row) for row in rows):
        raise SddError(f"lm-eval-mc:{path} needs a non-empty JSONL file of {{query, choices, gold}} rows")
    return len(rows)


class LmEvalMultipleChoice(LmEvalTask):
    """A multiple-choice file run through lm-eval under a task YAML written for it."""

    def __init__(self, path: str):
        self.path = Path(path).expanduser()
        stem = self.path.stem
        super().__init__(task=f"sdd_mc_{stem}", shots=0, metric_key="acc_norm,none", name=f"lm-eval-mc:{stem}")

    def prepare(self, settings: TaskSettings) -> None:
        """Check the file, choose the same rows as `mc:` does, and write the task YAML into a private folder."""
        import_lm_eval()
        if not self.path.is_file():
            raise SddError(f"multiple-choice file {self.path} does not exist")
        self.indices = choose_rows(_row_count(self.path), settings.limit, settings.seed)
        folder = Path(tempfile.mkdtemp(prefix="sdd-lm-eval-"))
        (folder / f"{self.task}.yaml").write_text(
            yaml.safe_dump(task_yaml(self.task, self.path, settings.mc_delimiter))
        )
        self.include_path = str(folder)


def lm_eval_mc_task(argument: str | None) -> list[EvalTask]:
    """`lm-eval-mc:<file.jsonl>`: the rows of an `mc:` file, scored by lm-evaluation-harness."""
    if not argument:
        raise SddError("task lm-eval-mc needs a file: lm-eval-mc:<path to a JSONL file of {query, choices, gold} rows>")
    return [LmEvalMultipleChoice(argument)]
