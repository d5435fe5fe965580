"""Evaluation tasks, found by name: GSM8K exact match by generation and log-likelihood multiple choice
(`gsm8k`, `multiple_choice`) and lm-evaluation-harness tasks (`lm_eval_tasks`).

A task entry is `name` or `name:argument` (`gsm8k`, `gsm8k:data/test.jsonl`, `mc:data/arc_easy.jsonl`,
`lm-eval:hellaswag:10`, `leaderboard-v1`). One entry can expand to several tasks (a suite). Every
task reads and checks its data in `prepare()`, before any model is loaded, then scores one model
per `run()` call on the same seeded subset of rows.
"""

from __future__ import annotations

from pathlib import Path

from sdd_data.errors import SddError
from sdd_data.evaluate.task_base import EvalTask, TaskFactory
from sdd_data.registry import Registry

TASKS: Registry[TaskFactory] = Registry(
    "task",
    {
        "gsm8k": "sdd_data.evaluate.gsm8k:gsm8k_task",
        "mc": "sdd_data.evaluate.multiple_choice:mc_task",
        "lm-eval": "sdd_data.evaluate.lm_eval_tasks:lm_eval_task",
        "lm-eval-mc": "sdd_data.evaluate.lm_eval_mc:lm_eval_mc_task",
        "leaderboard-v1": "sdd_data.evaluate.lm_eval_tasks:leaderboard_v1",
        "nll": "sdd_data.evaluate.nll:nll_task",
    },
)
"""Task name -> factory taking the entry's argument (the text after the first colon, or None)."""


def _label_files_apart(tasks: list[EvalTask], arguments: list[str | None]) -> None:
    """Give tasks of one kind read from different files of one name (`arc/test.jsonl`, `piqa/test.jsonl`) labels
    with as many of the files' folders as tell them apart (`mc:arc/test`, `mc:piqa/test`)."""
    by_label: dict[str, list[int]] = {}
    for index, task in enumerate(tasks):
        by_label.setdefault(task.label, []).append(index)
    for label, indices in by_label.items():
        paths = {arguments[index] for index in indices}
        if len(indices) < 2 or len(paths) < len(indices) or None in paths:
            continue  # one task, or the same file twice (refused as listed twice), or not file tasks
        parts = [Path(arguments[index]).expanduser().resolve().with_suffix("").parts for index in indices]  # type: ignore[arg-type]
        depth = next(
            (
                size
                for size in range(2, max(map(len, parts)) + 1)
                if len({part[-size:] for part in parts}) == len(parts)
            ),
            None,
        )
        if depth is None:
            continue
        kind = label.split(":", 1)[0]
        for index, part in zip(indices, parts):
            tasks[index].label = f"{kind}:{'/'.join(part[-depth:])}"  # type: ignore[misc]


def parse_tasks(text: str) -> list[EvalTask]:
    """The tasks of a comma-separated task list (entries `name` or `name:argument`)."""
    entries = [entry.strip() for entry in text.split(",") if entry.strip()]
    if not entries:
        raise SddError("no tasks given; known tasks: " + ", ".join(TASKS.names()))
    tasks: list[EvalTask] = []
    arguments: list[str | None] = []
    for entry in entries:
        name, _, argument = entry.partition(":")
        if name not in TASKS:
            raise SddError(f"unknown task {name!r} in {entry!r}; known tasks: {', '.join(TASKS.names())}")
        built = TASKS.get(name)(argument or None)
        tasks.extend(built)
        arguments.extend([argument or None] * len(built))
    _label_files_apart(tasks, arguments)
    labels = [task.label for task in tasks]
    repeated = sorted({label for label in labels if labels.count(label) > 1})
    if repeated:
        raise SddError(f"task(s) {', '.join(repeated)} listed twice")
    return tasks
