"""GSM8K exact match: greedy generation with the chat template, final answers compared numerically."""

from __future__ import annotations

from pathlib import Path

from tqdm.auto import tqdm

from sdd_data.data.answers import EXTRACTORS, answers_match, extract_answer
from sdd_data.errors import SddError
from sdd_data.evaluate.task_base import EvalModel, EvalTask, TaskResult, TaskSettings, choose_rows

GSM8K_HUB_ID = "openai/gsm8k"
GSM8K_INSTRUCTION = (
    'Solve the problem step by step. End with a last line of the form "#### N", '
    "where N is the final answer as a number."
)
STRICT_EXTRACTORS = ("gsm8k", "answer_is")


def gsm8k_prompt(question: str) -> list[dict]:
    """The zero-shot chat messages asking for a step-by-step solution ending in `#### N`."""
    return [{"role": "user", "content": f"{question}\n\n{GSM8K_INSTRUCTION}"}]


def score_gsm8k_answer(text: str, reference: str) -> dict:
    """The extracted answer and whether it matches, by the full math chain and by strict statements only.

    exact_match uses the chain `#### N` -> `\\boxed{}` -> "the answer is N" -> last number;
    strict_match accepts only a `#### N` line or an "answer is N" statement.
    """
    extracted = extract_answer(text, "math")
    strict = next((answer for name in STRICT_EXTRACTORS if (answer := EXTRACTORS.get(name)(text)) is not None), None)
    return {
        "extracted": extracted,
        "exact_match": extracted is not None and answers_match(extracted, reference),
        "strict_match": strict is not None and answers_match(strict, reference),
    }


def _gsm8k_hub_rows() -> list[dict]:
    """GSM8K's test split from the Hub (config `main`) as question/reference rows."""
    from sdd_data.data.records import gsm8k_reference
    from sdd_data.hub import ensure_hub_reachable

    ensure_hub_reachable(f"dataset {GSM8K_HUB_ID!r}")
    import datasets

    try:
        dataset = datasets.load_dataset(GSM8K_HUB_ID, "main", split="test")
    except (ConnectionError, OSError, ValueError) as error:
        raise SddError(
            f"{GSM8K_HUB_ID} could not be loaded ({type(error).__name__}); "
            "pass a local copy as gsm8k:<path to test.jsonl>"
        ) from None
    return [{"question": row["question"], "reference": gsm8k_reference(row["answer"])} for row in dataset]


def _gsm8k_source_rows(source: str) -> list[dict]:
    """Question/reference rows from any source `load_rows` reads (a GSM8K-style file, a saved dataset...)."""
    from sdd_data.data.records import user_prompt
    from sdd_data.data.sources import SourceSpec, load_rows

    loaded = load_rows(SourceSpec(data=source, split="test", task="math"), strict=True)
    rows = []
    for row in loaded.rows:
        if not row["reference_answer"]:
            raise SddError(
                f"{loaded.name} row {row['id']}: no reference answer "
                "(a response ending in '#### N' or a reference_answer column)"
            )
        rows.append({"question": user_prompt(row["instruction"], row["input"]), "reference": row["reference_answer"]})
    return rows


class Gsm8kTask:
    """GSM8K exact match: greedy generation with the chat template, answers compared numerically."""

    metric = "exact_match"
    loads_own_model = False
    scores_loglikelihoods = False

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
        from sdd_data.engines.base import DecodingConfig

        tokenizer = model.engine.tokenizer
        if not tokenizer.chat_template:
            raise SddError(f"model {model.name} has no chat template; gsm8k prompts it as a chat model")
        prompts = [
            tokenizer.apply_chat_template(gsm8k_prompt(row["question"]), tokenize=False, add_generation_prompt=True)
            for row in self.rows
        ]
        decoding = DecodingConfig(max_new_tokens=settings.max_new_tokens, temperature=0.0)
        with tqdm(total=len(prompts), desc=f"{model.name} {self.label}", unit="row") as bar:
            generations = model.engine.generate(prompts, [settings.seed] * len(prompts), decoding, bar.update)
        verdicts = [
            score_gsm8k_answer(generation.text, row["reference"]) for generation, row in zip(generations, self.rows)
        ]
        exact = sum(verdict["exact_match"] for verdict in verdicts) / len(verdicts)
        strict = sum(verdict["strict_match"] for verdict in verdicts) / len(verdicts)
        truncated = sum(generation.finish_reason == "length" for generation in generations) / len(generations)
        return TaskResult(
            self.label,
            self.metric,
            exact,
            len(verdicts),
            {"exact_match": exact, "strict_match": strict, "truncated": truncated},
            item_scores=[float(verdict["exact_match"]) for verdict in verdicts],
        )


def gsm8k_task(argument: str | None) -> list[EvalTask]:
    """`gsm8k` (the Hub's openai/gsm8k test split) or `gsm8k:<file, saved dataset or Hub id>`."""
    return [Gsm8kTask(argument)]
