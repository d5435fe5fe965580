"""lm-evaluation-harness tasks: `lm-eval:<task>[:shots]` and the OpenLLM Leaderboard v1 suite.

Each task runs through `lm_eval.simple_evaluate` with the `hf` model on the checkpoint folder
(lm-eval loads the model itself), one call per task because the number of shots is per call.
"""

from __future__ import annotations

from dataclasses import dataclass

from sdd_data.errors import SddError
from sdd_data.evaluate.task_base import EvalModel, EvalTask, TaskResult, TaskSettings
from sdd_data.models.loading import resolve_device, resolve_dtype

LEADERBOARD_V1: tuple[tuple[str, int, str], ...] = (
    ("arc_challenge", 25, "acc_norm,none"),
    ("hellaswag", 10, "acc_norm,none"),
    ("truthfulqa_mc2", 0, "acc,none"),
    ("mmlu", 5, "acc,none"),
    ("winogrande", 5, "acc,none"),
    ("gsm8k", 5, "exact_match,strict-match"),
)
"""(lm-eval task, shots, metric key `metric,filter`) of the OpenLLM Leaderboard v1 suite."""
KNOWN_METRICS = {task: metric for task, _, metric in LEADERBOARD_V1}
PREFERRED_METRICS = ("acc_norm", "acc", "exact_match", "mc2")


def import_lm_eval():
    """The `lm_eval` module, or an error saying how to install it."""
    try:
        import lm_eval
    except ImportError:
        raise SddError(
            "lm-eval tasks need lm-evaluation-harness: pip install lm-eval (or pip install 'sdd-data[eval]')"
        ) from None
    return lm_eval


@dataclass
class LmEvalTask:
    """One lm-evaluation-harness task with a fixed number of shots."""

    task: str
    shots: int | None
    metric_key: str | None = None
    """`metric,filter` as lm-eval reports it; None takes the first of PREFERRED_METRICS it reports."""
    loads_own_model: bool = True
    scores_loglikelihoods: bool = False
    higher_is_better: bool = True
    include_path: str | None = None
    """A folder of task YAMLs of our own (lm-eval's --include_path)."""
    indices: list[int] | None = None
    """The documents to score (lm-eval's `samples`), instead of the first `limit`; their per-item scores are kept."""
    name: str | None = None
    """The label in tables, when it is not the lm-eval task name."""

    @property
    def label(self) -> str:
        if self.name:
            return self.name
        return self.task if self.shots is None else f"{self.task}:{self.shots}"

    @property
    def metric(self) -> str:
        return self.metric_key.split(",")[0] if self.metric_key else "score"

    def prepare(self, settings: TaskSettings) -> None:
        """Check that lm-eval is installed (its data is fetched by lm-eval when it runs)."""
        import_lm_eval()

    def run(self, model: EvalModel, settings: TaskSettings) -> TaskResult:
        """Run lm-eval on the model's checkpoint folder and read the task's metric."""
        lm_eval = import_lm_eval()
        device = resolve_device(settings.device)
        dtype = resolve_dtype(settings.dtype, on_cpu=device == "cpu")
        output = lm_eval.simple_evaluate(**lm_eval_arguments(self, model.path, settings, device, dtype))
        metrics = read_task_metrics(output, self.task)
        key = self.metric_key or next((f"{name},none" for name in PREFERRED_METRICS if f"{name},none" in metrics), None)
        if key not in metrics:
            raise SddError(
                f"lm-eval task {self.task} reported no {key or 'known'} metric; it reported "
                f"{', '.join(sorted(metrics)) or 'nothing'}"
            )
        name = key.split(",")[0]
        clean = {metric.replace(",none", ""): value for metric, value in metrics.items()}
        items = None
        if self.indices is not None:
            by_document = {sample["doc_id"]: float(sample[name]) for sample in output["samples"][self.task]}
            items = [by_document[index] for index in self.indices]
        return TaskResult(self.label, name, metrics[key], len(items) if items else None, clean, item_scores=items)


def lm_eval_arguments(task: LmEvalTask, model_path: str, settings: TaskSettings, device: str, dtype: str) -> dict:
    """The keyword arguments of `lm_eval.simple_evaluate` for one task on one checkpoint."""
    # A mapping, not lm-eval's "key=value,..." text: a comma in the path cannot add arguments.
    model_args = {"pretrained": model_path, "dtype": dtype, "trust_remote_code": settings.trust_remote_code}
    return {
        "model": "hf",
        "model_args": model_args,
        "tasks": [task.task],
        "num_fewshot": task.shots,
        "batch_size": settings.batch_size,
        "device": device,
        "limit": None if task.indices is not None else settings.limit,
        "samples": None if task.indices is None else {task.task: task.indices},
        "log_samples": task.indices is not None,
        "task_manager": None if task.include_path is None else task_manager(task.include_path),
        "random_seed": settings.seed,
        "numpy_random_seed": settings.seed,
        "torch_random_seed": settings.seed,
        "fewshot_random_seed": settings.seed,
    }


def task_manager(include_path: str):
    """lm-eval's task index with our own task YAMLs added."""
    from lm_eval.tasks import TaskManager

    return TaskManager(include_path=include_path)


def read_task_metrics(output: dict, task: str) -> dict[str, float]:
    """The numeric metrics (`metric,filter` -> value, no stderr) lm-eval reported for a task or group."""
    for section in ("results", "groups"):
        found = (output.get(section) or {}).get(task)
        if found:
            return {
                key: float(value)
                for key, value in found.items()
                if isinstance(value, (int, float)) and "_stderr" not in key and key != "alias"
            }
    raise SddError(f"lm-eval returned no results for task {task}")


def parse_lm_eval_entry(argument: str) -> LmEvalTask:
    """`<task>` or `<task>:<shots>` as an LmEvalTask (the leaderboard metric for leaderboard tasks)."""
    task, _, shots = argument.partition(":")
    if not task:
        raise SddError("task lm-eval needs a task name: lm-eval:<task>[:<shots>], e.g. lm-eval:hellaswag:10")
    if shots and not shots.isdigit():
        raise SddError(f"lm-eval:{argument}: shots must be a whole number, got {shots!r}")
    return LmEvalTask(task, int(shots) if shots else None, KNOWN_METRICS.get(task))


def lm_eval_task(argument: str | None) -> list[EvalTask]:
    """`lm-eval:<task>[:shots]`: any lm-evaluation-harness task (needs `pip install lm-eval`)."""
    return [parse_lm_eval_entry(argument or "")]


def leaderboard_v1(argument: str | None) -> list[EvalTask]:
    """The OpenLLM Leaderboard v1 suite: ARC-C 25, HellaSwag 10, TruthfulQA-mc2 0, MMLU 5, Winogrande 5, GSM8K 5."""
    if argument:
        raise SddError(f"leaderboard-v1 takes no argument, got {argument!r}")
    return [LmEvalTask(task, shots, metric) for task, shots, metric in LEADERBOARD_V1]
