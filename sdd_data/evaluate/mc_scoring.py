"""Multiple-choice scoring by log-likelihood: read MC JSONL files, score each choice's continuation.

Two row forms are read:
- `{query, choices, gold}` (ARC, PIQA ...): the context is `query + delimiter`, each choice is a
  continuation of it;
- `{context_options, continuation, gold}` (WinoGrande's partial scoring): each option is a context
  and the one shared continuation follows it after a space; the option under which the
  continuation is most likely wins.

A context's trailing whitespace is moved to the front of its continuation (`"...Answer:"` +
`" Paris"`), as lm-evaluation-harness does, so the answer's leading space is part of the scored text.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sdd_data.errors import SddError
from sdd_data.text_files import read_json_lines

DEFAULT_DELIMITER = "\nAnswer: "


@dataclass(frozen=True)
class MCItem:
    """One question: a (context, continuation) pair per choice and the index of the right one."""

    pairs: tuple[tuple[str, str], ...]
    gold: int


def _field_error(path: Path, line: int, field: str, problem: str) -> SddError:
    return SddError(f"{path} line {line}: field {field!r} {problem}")


def _string_list(value, path: Path, line: int, field: str) -> list[str]:
    if not isinstance(value, list) or len(value) < 2:
        raise _field_error(path, line, field, f"must be a list of at least 2 strings, got {value!r:.80}")
    for position, item in enumerate(value):
        if not isinstance(item, str) or not item.strip():
            raise _field_error(path, line, field, f"item {position} must be a non-empty string, got {item!r:.80}")
    return value


def _gold(value, choices: int, path: Path, line: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < choices:
        raise _field_error(path, line, "gold", f"must be a 0-based index below {choices}, got {value!r}")
    return value


def _item(row: dict, path: Path, line: int, delimiter: str) -> MCItem:
    """An MCItem from one parsed row in either supported form."""
    if "context_options" in row:
        options = _string_list(row["context_options"], path, line, "context_options")
        continuation = row.get("continuation")
        if not isinstance(continuation, str) or not continuation.strip():
            raise _field_error(path, line, "continuation", f"must be a non-empty string, got {continuation!r:.80}")
        gold = _gold(row.get("gold"), len(options), path, line)
        return MCItem(tuple((option, " " + continuation.lstrip()) for option in options), gold)
    for name in ("query", "choices", "gold"):
        if name not in row:
            raise _field_error(
                path,
                line,
                name,
                f"is missing (row has {', '.join(sorted(row)) or 'no fields'}); "
                "expected {query, choices, gold} or {context_options, continuation, gold}",
            )
    query = row["query"]
    if not isinstance(query, str) or not query.strip():
        raise _field_error(path, line, "query", f"must be a non-empty string, got {query!r:.80}")
    choices = _string_list(row["choices"], path, line, "choices")
    gold = _gold(row["gold"], len(choices), path, line)
    return MCItem(tuple((query + delimiter, choice) for choice in choices), gold)


def read_mc_items(path: str | Path, delimiter: str = DEFAULT_DELIMITER) -> list[MCItem]:
    """Every row of an MC JSONL file as an MCItem; a bad row is an error naming its line and field."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise SddError(f"multiple-choice file {path} does not exist")
    items = []
    for line, row in read_json_lines(path, "multiple-choice file"):
        items.append(_item(row, path, line, delimiter))
    if not items:
        raise SddError(f"multiple-choice file {path} has no rows")
    return items


def _special_prefix(tokenizer) -> list[int]:
    """The special tokens the tokenizer puts before any text (a BOS for Llama-3, none for SmolLM2)."""
    with_specials = tokenizer("", add_special_tokens=True)["input_ids"]
    eos = tokenizer.eos_token_id
    return [token for token in with_specials if token != eos]


def split_pair(tokenizer, context: str, continuation: str) -> tuple[list[int], list[int]]:
    """Token ids of the context and of the continuation, tokenized together as one text.

    Trailing whitespace of the context joins the continuation. The whole text is tokenized once;
    the context part is the longest prefix it shares with the context tokenized alone, so a token
    that straddles the boundary (merging the context's last characters with the continuation's
    first) is scored as part of the continuation and the model sees the text's natural tokens.
    """
    stripped, continuation = split_text(context, continuation)
    whole = tokenizer(stripped + continuation, add_special_tokens=False)["input_ids"]
    alone = tokenizer(stripped, add_special_tokens=False)["input_ids"]
    shared = 0
    while shared < min(len(whole), len(alone)) and whole[shared] == alone[shared]:
        shared += 1
    context_ids = _special_prefix(tokenizer) + whole[:shared]
    if not context_ids:
        start = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
        if start is None:
            raise SddError("cannot score a continuation with an empty context: the tokenizer has no bos or eos token")
        context_ids = [start]
    continuation_ids = whole[shared:]
    if not continuation_ids:
        raise SddError(f"continuation {continuation!r} has no tokens")
    return context_ids, continuation_ids


def mc_correct(items: list[MCItem], scores: list[float]) -> dict[str, list[int]]:
    """Per item, 1 or 0: acc (highest log-likelihood) and acc_norm (highest log-likelihood per character of the
    choice as written, without the whitespace the delimiter puts before it, as lm-evaluation-harness counts).

    `scores` holds one log-likelihood per (item, choice) pair, in the order of the items' pairs.
    Ties go to the first choice.
    """
    correct: dict[str, list[int]] = {"acc": [], "acc_norm": []}
    position = 0
    for item in items:
        choice_scores = scores[position : position + len(item.pairs)]
        position += len(item.pairs)
        lengths = [len(continuation) for _, continuation in item.pairs]
        normalised = [score / length for score, length in zip(choice_scores, lengths)]
        correct["acc"].append(int(_argmax(choice_scores) == item.gold))
        correct["acc_norm"].append(int(_argmax(normalised) == item.gold))
    return correct


def mc_accuracy(items: list[MCItem], scores: list[float]) -> dict[str, float]:
    """acc and acc_norm over the items (see `mc_correct`)."""
    return {metric: sum(values) / len(items) for metric, values in mc_correct(items, scores).items()}


def split_text(context: str, continuation: str) -> tuple[str, str]:
    """Context and continuation strings after moving the context's trailing whitespace to the continuation."""
    stripped = context.rstrip()
    return stripped, context[len(stripped) :] + continuation


def _argmax(values: list[float]) -> int:
    return max(range(len(values)), key=lambda index: (values[index], -index))
