"""Throughput of the consistency filter on a synthetic but realistic mix of rows.

Rows are built first (seeded, so every run sees the same data); only `decide` is timed.
Run `python benchmarks/filter_bench.py [--rows N] [--seed S]` for a table and the JSON.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from collections import Counter
from collections.abc import Callable

from sdd_data.distill.consistency import FilterConfig, decide

Sample = tuple[dict, str, str]  # row, teacher rewrite, finish reason

NAMES = ("Natalia", "Weng", "Betty", "Julie", "James", "Albert", "Ken", "Alexis", "Tina", "Mark")
ITEMS = ("clips", "apples", "books", "pencils", "cupcakes", "marbles", "tickets", "stamps", "shirts", "boxes")
WORDS = (
    "the",
    "a",
    "system",
    "people",
    "often",
    "water",
    "important",
    "because",
    "city",
    "history",
    "method",
    "data",
    "learn",
    "simple",
    "result",
    "between",
    "energy",
    "design",
    "public",
    "small",
    "several",
    "process",
    "example",
    "different",
    "provide",
    "growth",
    "quality",
    "language",
    "should",
    "model",
    "early",
    "market",
    "research",
    "common",
    "value",
    "during",
    "support",
    "structure",
    "and",
    "of",
    "to",
    "in",
    "is",
    "that",
    "for",
    "with",
    "as",
    "on",
    "are",
    "can",
    "this",
    "by",
    "their",
)
STEP_TEMPLATES = (
    "{name} buys {a} {item} at ${b} each, so the cost is {a} x {b} = ${ab} for all of the {item}.",
    "Next, {name} gives {b} of the {item} to a friend, which leaves {a} - {b} = {amb} {item} to keep.",
    "Each week {name} collects {a} more {item}, so after {b} weeks there are {a} * {b} = {ab} extra {item}.",
    "Splitting {ab} {item} evenly into {b} groups gives {ab} / {b} = {a} {item} in every single group.",
    "Adding the {a} {item} from Monday to the {b} {item} from Tuesday gives {a} + {b} = {apb} {item} so far.",
    "That means {name} now has {apb} {item}, which is {b} more than the {a} {item} counted at the start.",
)


def _step(rng: random.Random, name: str, item: str) -> str:
    a, b = rng.randint(2, 99), rng.randint(2, 40)
    return rng.choice(STEP_TEMPLATES).format(name=name, item=item, a=a, b=b, ab=a * b, amb=a - b, apb=a + b)


def _solution(rng: random.Random, steps: int) -> list[str]:
    name, item = rng.choice(NAMES), rng.choice(ITEMS)
    return [_step(rng, name, item) for _ in range(steps)]


def _math_row(rng: random.Random, answer: int) -> dict:
    response = "\n".join(_solution(rng, rng.randint(2, 4))) + f"\n#### {answer:,}"
    reference = str(answer) if rng.random() < 0.5 else None
    return {"task": "math", "response": response, "reference_answer": reference}


def _math_rewrite(rng: random.Random, answer: int) -> str:
    steps = _solution(rng, rng.randint(5, 14))
    ending = rng.choice(
        (
            f"The answer is {answer}.",
            f"#### {answer}",
            f"So the total is $\\boxed{{{answer}}}$.",
            f"Therefore the final count is {answer:,}.",
        )
    )
    return "\n".join(steps) + "\n" + ending


def make_math_consistent(rng: random.Random) -> Sample:
    answer = rng.randint(1, 5000)
    return _math_row(rng, answer), _math_rewrite(rng, answer), "stop"


def make_math_mismatch(rng: random.Random) -> Sample:
    answer = rng.randint(1, 5000)
    return _math_row(rng, answer), _math_rewrite(rng, answer + rng.randint(1, 50)), "stop"


def make_math_truncated(rng: random.Random) -> Sample:
    answer = rng.randint(1, 5000)
    text = _math_rewrite(rng, answer)
    return _math_row(rng, answer), text[: rng.randint(len(text) // 2, len(text) - 20)], "length"


def make_math_looping(rng: random.Random) -> Sample:
    answer = rng.randint(1, 5000)
    steps = _solution(rng, 3)
    text = "\n".join(steps + [steps[-1]] * rng.randint(5, 12)) + f"\nThe answer is {answer}."
    return _math_row(rng, answer), text, "stop"


def make_math_leak(rng: random.Random) -> Sample:
    answer = rng.randint(1, 5000)
    text = "Using the reference answer as a guide, here is my solution.\n" + _math_rewrite(rng, answer)
    return _math_row(rng, answer), text, "stop"


def _prose(rng: random.Random, sentences: int) -> str:
    return " ".join(
        " ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 22))).capitalize() + "." for _ in range(sentences)
    )


def make_free(rng: random.Random) -> Sample:
    row = {"task": "free", "response": _prose(rng, rng.randint(2, 6)), "reference_answer": None}
    if rng.random() < 0.3:
        rewrite = "\n".join(f"{n}. {_prose(rng, 1)}" for n in range(1, rng.randint(4, 10)))
    else:
        rewrite = "\n\n".join(_prose(rng, rng.randint(2, 5)) for _ in range(rng.randint(1, 3)))
    return row, rewrite, "stop" if rng.random() < 0.95 else "length"


def make_mc(rng: random.Random) -> Sample:
    letter = rng.choice("ABCD")
    chosen = letter if rng.random() < 0.85 else rng.choice("ABCD")
    options = "\n".join(f"({option}) {_prose(rng, 1)}" for option in "ABCD")
    rewrite = f"{_prose(rng, 2)}\n{options}\nThe answer is ({chosen})."
    return {"task": "mc", "response": f"The answer is ({letter}).", "reference_answer": letter}, rewrite, "stop"


def make_code(rng: random.Random) -> Sample:
    n = rng.randint(1, 999)
    body = (
        f"def total_{n}(values):\n    result = 0\n    for value in values:\n"
        f"        result += value * {n}\n    return result\n"
    )
    broken = body.replace("):", ")", 1) if rng.random() < 0.1 else body
    row = {"task": "code", "response": f"Here is the function:\n```python\n{body}```\n", "reference_answer": None}
    return row, f"I implemented it as follows.\n```python\n{broken}```\n{_prose(rng, 2)}", "stop"


MIX: dict[str, tuple[float, Callable[[random.Random], Sample]]] = {
    "math_consistent": (0.45, make_math_consistent),
    "math_mismatch": (0.08, make_math_mismatch),
    "math_truncated": (0.04, make_math_truncated),
    "math_looping": (0.02, make_math_looping),
    "math_leak": (0.01, make_math_leak),
    "free": (0.25, make_free),
    "mc": (0.10, make_mc),
    "code": (0.05, make_code),
}


def build_rows(n_rows: int, seed: int = 0) -> tuple[list[str], list[Sample]]:
    """The kinds of `n_rows` seeded samples drawn from `MIX`, and the samples."""
    rng = random.Random(seed)
    kinds = rng.choices(list(MIX), [weight for weight, _ in MIX.values()], k=n_rows)
    return kinds, [MIX[kind][1](rng) for kind in kinds]


def run_filter_benchmark(n_rows: int = 100_000, seed: int = 0) -> dict:
    """Time `decide` over `n_rows` synthetic rows in this process; return throughput and counts."""
    kinds, samples = build_rows(n_rows, seed)
    config = FilterConfig()
    start = time.perf_counter()
    decisions = [decide(row, rewrite, finish_reason, config) for row, rewrite, finish_reason in samples]
    seconds = time.perf_counter() - start
    by_kind: dict[str, Counter] = {}
    for kind, decision in zip(kinds, decisions):
        by_kind.setdefault(kind, Counter())[decision.reason] += 1
    return {
        "rows": n_rows,
        "seed": seed,
        "seconds": round(seconds, 4),
        "rows_per_minute": round(n_rows / seconds * 60),
        "microseconds_per_row": round(seconds / n_rows * 1e6, 2),
        "mean_rewrite_words": round(sum(len(s[1].split()) for s in samples) / n_rows, 1),
        "by_reason": dict(Counter(decision.reason for decision in decisions).most_common()),
        "by_decision": dict(Counter(decision.decision for decision in decisions).most_common()),
        "by_kind": {kind: dict(counts.most_common()) for kind, counts in sorted(by_kind.items())},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    result = run_filter_benchmark(args.rows, args.seed)
    for key in ("rows", "seconds", "rows_per_minute", "microseconds_per_row", "mean_rewrite_words"):
        print(f"{key:<22}{result[key]:>14,}")
    for kind, reasons in result["by_kind"].items():
        print(f"{kind:<22}" + ", ".join(f"{reason} {count:,}" for reason, count in reasons.items()))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
