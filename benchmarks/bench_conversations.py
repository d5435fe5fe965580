"""Conversation benchmark: what the teacher keeps under each turn context, and what vLLM's prefix caching saves.

Conversations are built from GSM8K train rows, as in the tests' chat sample: the question and its solution,
"What is the final answer, as a single number?" answered from the solution's final answer, and on every third
a comparison with 10; a tutor system prompt on every other one.

(a) `--turn-context original` against `rewritten` with the same engine: rewrites kept per assistant turn,
    reasons, wall time, and how many turn decisions differ.
(b) with `--engine vllm`, prefix caching on (vLLM's default) against off, same rows: wall time including the
    engine start, tokens/s, and whether every decision is the same (it must be: caching reuses the KV of a
    shared prefix, the tokens are unchanged). The ratio is off / on.

    python benchmarks/bench_conversations.py [--conversations 60] [--max-new-tokens 192] [--engine transformers]

Prints a table and writes benchmarks/results/conversations.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq

from sdd_data.data.sources import SourceSpec
from sdd_data.distill.stage import DistillConfig, distill
from sdd_data.engines.base import DecodingConfig, EngineConfig

GSM8K = Path(__file__).resolve().parents[2] / "shared" / "data" / "gsm8k" / "train.jsonl"
RESULTS = Path(__file__).parent / "results" / "conversations.json"
TUTOR = "You are a patient math tutor. Show your working."


def build_conversations(count: int, path: Path) -> Path:
    """`count` two- and three-turn GSM8K conversations as `messages` JSON lines."""
    with GSM8K.open() as source, path.open("w") as target:
        for index, line in zip(range(count), source):
            row = json.loads(line)
            answer = row["answer"].split("####")[-1].strip()
            messages = [{"role": "system", "content": TUTOR}] if index % 2 == 0 else []
            messages += [
                {"role": "user", "content": row["question"]},
                {"role": "assistant", "content": row["answer"]},
                {"role": "user", "content": "What is the final answer, as a single number?"},
                {"role": "assistant", "content": f"The final answer is {answer}.\n#### {answer}"},
            ]
            if index % 3 == 0:
                larger = "Yes" if float(answer.replace(",", "")) > 10 else "No"
                messages += [
                    {"role": "user", "content": f"Is {answer} more than 10? Answer with the number you compared."},
                    {
                        "role": "assistant",
                        "content": f"{larger}, compared with 10 the answer is {answer}.\n#### {answer}",
                    },
                ]
            target.write(json.dumps({"id": f"gsm8k-{index}", "task": "math", "messages": messages}) + "\n")
    return path


def run(data: Path, engine: str, max_new_tokens: int, **options) -> dict:
    """One distill run into a fresh folder: its wall time, stats and per-turn decisions."""
    with tempfile.TemporaryDirectory() as output:
        config = DistillConfig(
            source=SourceSpec(data=str(data)),
            engine=engine,
            output=output,
            decoding=DecodingConfig(max_new_tokens=max_new_tokens),
            **options,
        )
        started = time.perf_counter()
        result = distill(config, show_progress=False)
        seconds = time.perf_counter() - started
        rows = pq.read_table(Path(output) / "distilled.parquet").to_pylist()
    decisions = {(row["id"], turn["turn"]): turn["decision"] for row in rows for turn in row["turns"]}
    assistant = result.stats["conversations"]["assistant_turns"]
    return {
        "seconds": round(seconds, 1),
        "tokens_per_second": result.stats["throughput"]["completion_tokens_per_second"],
        "teacher_tokens": result.stats["tokens"]["completion"],
        "turns": assistant["total"],
        "kept_rewrites": assistant["decisions"].get("rewrite", 0),
        "reasons": assistant["reasons"],
        "turns_in": result.stats["conversations"]["turns_in"],
        "turns_out": result.stats["conversations"]["turns_out"],
        "decisions": decisions,
    }


def kept_by_place(decisions: dict) -> dict:
    """Rewrites kept at each assistant turn position (1st answer, 2nd, 3rd)."""
    places: dict[str, Counter] = {}
    for (identifier, turn), decision in decisions.items():
        order = sorted(t for i, t in decisions if i == identifier).index(turn) + 1
        places.setdefault(str(order), Counter())[decision] += 1
    return {order: dict(counts) for order, counts in sorted(places.items())}


def differing(first: dict, second: dict) -> int:
    return sum(first[key] != second[key] for key in first)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--conversations", type=int, default=60)
    parser.add_argument("--max-new-tokens", type=int, default=192)
    parser.add_argument("--engine", default="transformers", choices=("transformers", "vllm"))
    args = parser.parse_args()
    report: dict = {"conversations": args.conversations, "max_new_tokens": args.max_new_tokens, "engine": args.engine}
    with tempfile.TemporaryDirectory() as folder:
        data = build_conversations(args.conversations, Path(folder) / "chat.jsonl")
        if args.engine == "vllm":
            cached = run(data, "vllm", args.max_new_tokens)
            uncached = run(
                data,
                "vllm",
                args.max_new_tokens,
                engine_options=EngineConfig(extra={"enable_prefix_caching": False}),
            )
            report["prefix_caching"] = {
                "on": {key: value for key, value in cached.items() if key != "decisions"},
                "off": {key: value for key, value in uncached.items() if key != "decisions"},
                "seconds_ratio_off_over_on": round(uncached["seconds"] / cached["seconds"], 3),
                "decisions_differing": differing(cached["decisions"], uncached["decisions"]),
            }
            print(f"prefix caching on:  {cached['seconds']:8.1f} s  {cached['tokens_per_second']} tokens/s")
            print(f"prefix caching off: {uncached['seconds']:8.1f} s  {uncached['tokens_per_second']} tokens/s")
            print(f"off / on: {report['prefix_caching']['seconds_ratio_off_over_on']}x")
        else:
            contexts = {
                name: run(data, args.engine, args.max_new_tokens, turn_context=name)
                for name in ("original", "rewritten")
            }
            report["turn_context"] = {
                name: {
                    **{k: v for k, v in value.items() if k != "decisions"},
                    "kept_by_place": kept_by_place(value["decisions"]),
                }
                for name, value in contexts.items()
            }
            report["turn_context"]["decisions_differing"] = differing(
                contexts["original"]["decisions"], contexts["rewritten"]["decisions"]
            )
            print(f"{'turn context':<14}{'seconds':>9}{'tokens/s':>10}{'kept':>7}{'of':>5}  reasons")
            for name, value in contexts.items():
                reasons = ", ".join(f"{k} {v}" for k, v in value["reasons"].items())
                print(
                    f"{name:<14}{value['seconds']:>9}{value['tokens_per_second']!s:>10}"
                    f"{value['kept_rewrites']:>7}{value['turns']:>5}  {reasons}"
                )
            print(f"turn decisions that differ: {report['turn_context']['decisions_differing']}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    existing = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    RESULTS.write_text(json.dumps({**existing, args.engine: report}, indent=2))
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    sys.exit(main())
