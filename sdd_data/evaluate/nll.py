"""Distribution preservation: how likely a model finds given answers, as mean negative log-likelihood per token.

`nll:<file.jsonl>` reads rows `{messages: [..., {role: assistant, content}]}` (or `{prompt, response}`). Each
answer is scored after the earlier turns rendered with the model's chat template. Fed the original
model's own greedy answers to held-out prompts, the score says how far a pruned or recovered model has
drifted from the original's distribution: lower is closer.
"""

from __future__ import annotations

from pathlib import Path

from tqdm.auto import tqdm

from sdd_data.errors import SddError
from sdd_data.evaluate.task_base import EvalModel, EvalTask, TaskResult, TaskSettings, choose_rows
from sdd_data.text_files import read_json_lines


def _conversation(row: object, path: Path, line: int) -> list[dict]:
    if isinstance(row, dict) and isinstance(row.get("messages"), list):
        messages = row["messages"]
    elif isinstance(row, dict) and isinstance(row.get("prompt"), str) and isinstance(row.get("response"), str):
        messages = [{"role": "user", "content": row["prompt"]}, {"role": "assistant", "content": row["response"]}]
    else:
        raise SddError(f"{path} line {line}: expected {{messages}} or {{prompt, response}}")
    valid = all(isinstance(message, dict) and isinstance(message.get("content"), str) for message in messages)
    if len(messages) < 2 or not valid or messages[-1].get("role") != "assistant" or not messages[-1]["content"]:
        raise SddError(f"{path} line {line}: the conversation must end with a non-empty assistant turn")
    return messages


def read_conversations(path: str | Path) -> list[list[dict]]:
    """Every conversation of a JSONL file; a bad row is an error naming its line."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise SddError(f"answers file {path} does not exist")
    conversations = [_conversation(row, path, line) for line, row in read_json_lines(path, "answers file")]
    if not conversations:
        raise SddError(f"answers file {path} has no rows")
    return conversations


class AnswerNllTask:
    """Mean negative log-likelihood per answer token, averaged over answers (lower is closer to the answers)."""

    metric = "nll"
    higher_is_better = False
    loads_own_model = False
    scores_loglikelihoods = True

    def __init__(self, path: str):
        self.path = path
        self.label = f"nll:{Path(path).stem}"
        self.conversations: list[list[dict]] = []

    def prepare(self, settings: TaskSettings) -> None:
        """Read every conversation and choose the seeded subset."""
        conversations = read_conversations(self.path)
        chosen = choose_rows(len(conversations), settings.limit, settings.seed)
        self.conversations = [conversations[index] for index in chosen]

    def run(self, model: EvalModel, settings: TaskSettings) -> TaskResult:
        """Score every answer after its rendered prompt."""
        from sdd_data.evaluate.loglikelihood import engine_logprobs
        from sdd_data.evaluate.mc_scoring import split_pair

        tokenizer = model.engine.tokenizer
        if not tokenizer.chat_template:
            raise SddError(f"model {model.name} has no chat template to render the prompts with")
        pairs = [
            (
                tokenizer.apply_chat_template(turns[:-1], tokenize=False, add_generation_prompt=True),
                turns[-1]["content"],
            )
            for turns in self.conversations
        ]
        with tqdm(total=len(pairs), desc=f"{model.name} {self.label}", unit="answer") as bar:
            scores = engine_logprobs(model.engine, pairs, settings.batch_size, bar.update)
        per_answer = [-score / len(split_pair(tokenizer, *pair)[1]) for score, pair in zip(scores, pairs)]
        mean = sum(per_answer) / len(per_answer)
        return TaskResult(self.label, self.metric, mean, len(per_answer), {"nll": mean}, False, per_answer)


def nll_task(argument: str | None) -> list[EvalTask]:
    """`nll:<file.jsonl>`: answers (the original model's own, for distribution preservation) to score."""
    if not argument:
        raise SddError("task nll needs a file: nll:<path to a JSONL file of {messages} or {prompt, response} rows>")
    return [AnswerNllTask(argument)]
