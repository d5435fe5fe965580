"""Evaluation tasks, registered by name: GSM8K exact match by generation and log-likelihood multiple choice.

A task entry is `name` or `name:argument` (`gsm8k`, `gsm8k:data/test.jsonl`, `mc:data/arc_easy.jsonl`,
`lm-eval:hellaswag:10`, `leaderboard-v1`). One entry can expand to several tasks (a suite). Every
task reads and checks its data in `prepare()`, before any model is loaded, then scores one model
per `run()` call on the same seeded subset of rows.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from tqdm.auto import tqdm

from .answers import EXTRACTORS, answers_match, extract_answer
from .errors import SddError

GSM8K_HUB_ID = "openai/gsm8k"
GSM8K_INSTRUCTION = (
    "Solve the problem step by step. End with a last line of the form \"#### N\", "
    "where N is the final answer as a number."
)
STRICT_EXTRACTORS = ("gsm8k", "answer_is")


@dataclass(frozen=True)
class TaskSettings:
    """How every task runs: the shared subset size, seed, batching and decoding."""

    limit: int | None = 200
    seed: int = 0
    batch_size: int = 8
    max_new_tokens: int = 256
    dtype: str = "auto"
    device: str = "auto"
    trust_remote_code: bool = False
    mc_delimiter: str = "\nAnswer: "


@dataclass
class EvalModel:
    """A model under evaluation: its name in the table, its checkpoint, and its loaded engine (if any)."""

    name: str
    path: str
    engine: object | None = None
    """A TransformersEngine, or None for tasks that load the checkpoint themselves (lm-eval)."""


@dataclass
class TaskResult:
    """One model's result on one task: the headline metric and every metric computed."""

    task: str
    metric: str
    score: float
    rows: int | None
    """Rows scored (None when the task's runner does not say)."""
    metrics: dict[str, float] = field(default_factory=dict)


class EvalTask(Protocol):
    """A task: `label` names it in tables, `metric` is its headline metric."""

    label: str
    metric: str
    loads_own_model: bool

    def prepare(self, settings: TaskSettings) -> None:
        """Read and check the data and choose the rows (before any model loads)."""
        ...

    def run(self, model: EvalModel, settings: TaskSettings) -> TaskResult:
        """Score one model."""
        ...


TaskFactory = Callable[[str | None], list[EvalTask]]
TASKS: dict[str, TaskFactory] = {}
"""Task name -> factory taking the entry's argument (the text after the first colon, or None)."""


def register_task(name: str) -> Callable[[TaskFactory], TaskFactory]:
    """Make a task factory available under `name` in task lists."""

    def add(factory: TaskFactory) -> TaskFactory:
        TASKS[name] = factory
        return factory

    return add


def parse_tasks(text: str) -> list[EvalTask]:
    """The tasks of a comma-separated task list (entries `name` or `name:argument`)."""
    entries = [entry.strip() for entry in text.split(",") if entry.strip()]
    if not entries:
        raise SddError("no tasks given; known tasks: " + ", ".join(sorted(TASKS)))
    tasks: list[EvalTask] = []
    for entry in entries:
        name, _, argument = entry.partition(":")
        if name not in TASKS:
            raise SddError(f"unknown task {name!r} in {entry!r}; known tasks: {', '.join(sorted(TASKS))}")
        tasks.extend(TASKS[name](argument or None))
    labels = [task.label for task in tasks]
    repeated = sorted({label for label in labels if labels.count(label) > 1})
    if repeated:
        raise SddError(f"task(s) {', '.join(repeated)} listed twice")
    return tasks


def choose_rows(count: int, limit: int | None, seed: int) -> list[int]:
    """Indices of a seeded random subset of `limit` rows out of `count` (all rows when limit is None), in order."""
    if limit is not None and limit < 1:
        raise SddError(f"limit must be at least 1, got {limit}")
    if limit is None or limit >= count:
        return list(range(count))
    return sorted(random.Random(seed).sample(range(count), limit))


# --- GSM8K ---------------------------------------------------------------------------------------


def gsm8k_prompt(question: str) -> list[dict]:
    """The zero-shot chat messages asking for a step-by-step solution ending in `#### N`."""
    return [{"role": "user", "content": f"{question}\n\n{GSM8K_INSTRUCTION}"}]


def score_gsm8k_answer(text: str, reference: str) -> dict:
    """The extracted answer and whether it matches, by the full math chain and by strict statements only.

    exact_match uses the chain `#### N` -> `\\boxed{}` -> "the answer is N" -> last number;
    strict_match accepts only a `#### N` line or an "answer is N" statement.
    """
    extracted = extract_answer(text, "math")
    strict = next((answer for name in STRICT_EXTRACTORS if (answer := EXTRACTORS[name](text)) is not None), None)
    return {
        "extracted": extracted,
        "exact_match": extracted is not None and answers_match(extracted, reference),
        "strict_match": strict is not None and answers_match(strict, reference),
    }


def _gsm8k_hub_rows() -> list[dict]:
    """GSM8K's test split from the Hub (config `main`) as question/reference rows."""
    from .hub import ensure_hub_reachable
    from .records import gsm8k_reference

    ensure_hub_reachable(f"dataset {GSM8K_HUB_ID!r}")
    import datasets

    try:
        dataset = datasets.load_dataset(GSM8K_HUB_ID, "main", split="test")
    except (ConnectionError, OSError, ValueError) as error:
        raise SddError(f"{GSM8K_HUB_ID} could not be loaded ({type(error).__name__}); "
                       "pass a local copy as gsm8k:<path to test.jsonl>") from None
    return [{"question": row["question"], "reference": gsm8k_reference(row["answer"])} for row in dataset]


def _gsm8k_source_rows(source: str) -> list[dict]:
    """Question/reference rows from any source `load_rows` reads (a GSM8K-style file, a saved dataset...)."""
    from .records import user_prompt
    from .sources import SourceSpec, load_rows

    loaded = load_rows(SourceSpec(data=source, split="test", task="math"), strict=True)
    rows = []
    for row in loaded.rows:
        if not row["reference_answer"]:
            raise SddError(f"{loaded.name} row {row['id']}: no reference answer "
                           "(a response ending in '#### N' or a reference_answer column)")
        rows.append({"question": user_prompt(row["instruction"], row["input"]), "reference": row["reference_answer"]})
    return rows


class Gsm8kTask:
    """GSM8K exact match: greedy generation with the chat template, answers compared numerically."""

    metric = "exact_match"
    loads_own_model = False

    def __init__(self, source: str | None):
        self.source = source
        self.label = "gsm8k" if source is None else f"gsm8k:{Path(source).stem}"
        self.rows: list[dict] = []

    def prepare(self, settings: TaskSettings) -> None:
        """Load the questions and choose the seeded subset."""
        rows = _gsm8k_hub_rows() if self.source is None else _gsm8k_source_rows(self.source)
        self.rows = [rows[index] for index in choose_rows(len(rows), settings.limit, settings.seed)]

    def run(self, model: EvalModel, settings: TaskSettings) -> TaskResult:
        """Generate a solution per question and count the matching final answers."""
        from .engines.base import DecodingConfig

        tokenizer = model.engine.tokenizer
        if not tokenizer.chat_template:
            raise SddError(f"model {model.name} has no chat template; gsm8k prompts it as a chat model")
        prompts = [tokenizer.apply_chat_template(gsm8k_prompt(row["question"]), tokenize=False,
                                                 add_generation_prompt=True) for row in self.rows]
        decoding = DecodingConfig(max_new_tokens=settings.max_new_tokens, temperature=0.0)
        with tqdm(total=len(prompts), desc=f"{model.name} {self.label}", unit="row") as bar:
            generations = model.engine.generate(prompts, [settings.seed] * len(prompts), decoding, bar.update)
        verdicts = [score_gsm8k_answer(generation.text, row["reference"])
                    for generation, row in zip(generations, self.rows)]
        exact = sum(verdict["exact_match"] for verdict in verdicts) / len(verdicts)
        strict = sum(verdict["strict_match"] for verdict in verdicts) / len(verdicts)
        truncated = sum(generation.finish_reason == "length" for generation in generations) / len(generations)
        return TaskResult(self.label, self.metric, exact, len(verdicts),
                          {"exact_match": exact, "strict_match": strict, "truncated": truncated})


@register_task("gsm8k")
def gsm8k_task(argument: str | None) -> list[EvalTask]:
    """`gsm8k` (the Hub's openai/gsm8k test split) or `gsm8k:<file, saved dataset or Hub id>`."""
    return [Gsm8kTask(argument)]


# --- multiple choice -----------------------------------------------------------------------------


class MultipleChoiceTask:
    """Log-likelihood multiple choice on a JSONL file: acc and acc_norm (per character of the continuation)."""

    metric = "acc_norm"
    loads_own_model = False

    def __init__(self, path: str):
        self.path = path
        self.label = f"mc:{Path(path).stem}"
        self.items: list = []

    def prepare(self, settings: TaskSettings) -> None:
        """Read and check every row, then choose the seeded subset."""
        from .mc_scoring import read_mc_items

        items = read_mc_items(self.path, settings.mc_delimiter)
        self.items = [items[index] for index in choose_rows(len(items), settings.limit, settings.seed)]

    def run(self, model: EvalModel, settings: TaskSettings) -> TaskResult:
        """Score every choice's continuation and pick the most likely."""
        from .mc_scoring import continuation_logprobs, mc_accuracy

        pairs = [pair for item in self.items for pair in item.pairs]
        engine = model.engine
        with tqdm(total=len(pairs), desc=f"{model.name} {self.label}", unit="choice") as bar:
            scores = continuation_logprobs(engine.model, engine.tokenizer, pairs, settings.batch_size, bar.update)
        metrics = mc_accuracy(self.items, scores)
        return TaskResult(self.label, self.metric, metrics[self.metric], len(self.items), metrics)


@register_task("mc")
def mc_task(argument: str | None) -> list[EvalTask]:
    """`mc:<path>`: a JSONL file of {query, choices, gold} or {context_options, continuation, gold} rows."""
    if not argument:
        raise SddError("task mc needs a file: mc:<path to a JSONL file of {query, choices, gold} rows>")
    return [MultipleChoiceTask(argument)]


from . import lm_eval_tasks  # noqa: F401  (registers lm-eval and leaderboard-v1)
