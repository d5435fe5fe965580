"""Log-likelihood multiple choice on a JSONL file of questions: acc and acc_norm."""

from __future__ import annotations

from pathlib import Path

from tqdm.auto import tqdm

from sdd_data.errors import SddError
from sdd_data.evaluate.task_base import EvalModel, EvalTask, TaskResult, TaskSettings, choose_rows


class MultipleChoiceTask:
    """Log-likelihood multiple choice on a JSONL file: acc and acc_norm (per character of the continuation)."""

    metric = "acc_norm"
    loads_own_model = False
    scores_loglikelihoods = True

    def __init__(self, path: str):
        self.path = path
        self.label = f"mc:{Path(path).stem}"
        self.items: list = []

    def prepare(self, settings: TaskSettings) -> None:
        """Read and check every row, then choose the seeded subset."""
        from sdd_data.evaluate.mc_scoring import read_mc_items

        items = read_mc_items(self.path, settings.mc_delimiter)
        self.items = [items[index] for index in choose_rows(len(items), settings.limit, settings.seed)]

    def run(self, model: EvalModel, settings: TaskSettings) -> TaskResult:
        """Score every choice's continuation and pick the most likely."""
        from sdd_data.evaluate.loglikelihood import engine_logprobs
        from sdd_data.evaluate.mc_scoring import mc_correct

        pairs = [pair for item in self.items for pair in item.pairs]
        with tqdm(total=len(pairs), desc=f"{model.name} {self.label}", unit="choice") as bar:
            scores = engine_logprobs(model.engine, pairs, settings.batch_size, bar.update)
        correct = mc_correct(self.items, scores)
        metrics = {metric: sum(values) / len(values) for metric, values in correct.items()}
        return TaskResult(
            self.label,
            self.metric,
            metrics[self.metric],
            len(self.items),
            metrics,
            item_scores=[float(value) for value in correct[self.metric]],
        )


def mc_task(argument: str | None) -> list[EvalTask]:
    """`mc:<path>`: a JSONL file of {query, choices, gold} or {context_options, continuation, gold} rows."""
    if not argument:
        raise SddError("task mc needs a file: mc:<path to a JSONL file of {query, choices, gold} rows>")
    return [MultipleChoiceTask(argument)]
