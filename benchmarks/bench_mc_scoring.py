"""Multiple-choice scoring benchmark: packed rows (shared contexts once, many items a batch) against the
old scorer (one padded sequence per choice), on the same items of real evaluation sets.

Both scorers run on SmolLM2-135M-Instruct in fp32 on the CPU, on the first N items of each task
(ARC-Easy and HellaSwag by default, from ../shared/data/eval or --data-dir). The old scorer runs at
its eval-stage default of 8 sequences a batch; the new one at --batch-size rows (questions) a batch.
Each scorer is timed over the same items, alternating, --repeats times; the median counts.

Goals: at least 10x the items per second of the old scorer, and every score within 1e-4 of it.

`--backend vllm` also times the eval stage's vllm engine (prompt log-probabilities, fp32, one prompt per
choice) on the same items and reports its largest score difference from the packed scorer.

    python benchmarks/bench_mc_scoring.py [--items 200] [--batch-size 8] [--repeats 2] [--backend vllm]

Prints a table and writes benchmarks/results/mc_scoring.json.
"""

from __future__ import annotations

import argparse
import bz2
import json
import statistics
import sys
import time
from pathlib import Path

import torch
from machine_peak import matmul_peak
from mc_baseline import continuation_logprobs as old_scorer

from sdd_data.engines import EngineConfig, load_engine
from sdd_data.evaluate.loglikelihood import continuation_logprobs as new_scorer
from sdd_data.evaluate.loglikelihood import engine_logprobs
from sdd_data.evaluate.mc_scoring import DEFAULT_DELIMITER, MCItem, mc_accuracy, read_mc_items
from sdd_data.models import load_causal_lm, load_tokenizer, resolve_model

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "eval"


def hellaswag_items(path: Path, count: int) -> list[MCItem]:
    """HellaSwag's bz2 text form: 6 lines per item (context, gold label, 4 endings)."""
    lines = bz2.open(path, "rt", encoding="utf-8").read().splitlines()
    items = []
    for start in range(0, min(len(lines), 6 * count), 6):
        context, gold, *endings = lines[start : start + 6]
        items.append(MCItem(tuple((context, " " + ending.strip()) for ending in endings), int(gold)))
    return items


def load_tasks(data_dir: Path, count: int) -> dict[str, list[MCItem]]:
    arc = read_mc_items(data_dir / "arc_easy" / "llmfoundry_arc_easy.jsonl", DEFAULT_DELIMITER)[:count]
    return {"arc_easy": arc, "hellaswag": hellaswag_items(data_dir / "hellaswag" / "hellaswag_val_full.txt.bz2", count)}


def timed(function, *args) -> tuple[float, list[float]]:
    started = time.perf_counter()
    scores = function(*args)
    return time.perf_counter() - started, scores


def packed_tokens(tokenizer, pairs: list[tuple[str, str]]) -> int:
    """Tokens the packed scorer runs through the model: each distinct context once, every continuation."""
    contexts = {context for context, _ in pairs}
    context_tokens = sum(len(tokenizer(context, add_special_tokens=False).input_ids) for context in contexts)
    return context_tokens + sum(len(tokenizer(text, add_special_tokens=False).input_ids) for _, text in pairs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--data-dir", type=Path, default=DATA)
    parser.add_argument("--model", default="smollm2", help="a checkpoint folder or `smollm2`")
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--backend",
        choices=("transformers", "vllm"),
        default="transformers",
        help="vllm: also time the vllm engine's scorer on the same items",
    )
    parser.add_argument(
        "--gpu-memory-utilization", type=float, default=0.5, help="vllm's share of GPU memory (the HF model is there)"
    )
    parser.add_argument("--output", type=Path, default=Path(__file__).parent / "results" / "mc_scoring.json")
    args = parser.parse_args()

    path = resolve_model(args.model).path
    model, tokenizer = load_causal_lm(path, dtype="float32", device=args.device), load_tokenizer(path)
    weights = sum(parameter.numel() for parameter in model.parameters())
    peak = matmul_peak("float32", 256) if args.device == "cpu" else None
    vllm_engine = None
    if args.backend == "vllm":
        engine_config = EngineConfig(dtype="float32", gpu_memory_utilization=args.gpu_memory_utilization)
        vllm_engine = load_engine("vllm", path, engine_config)
    rows = []
    for task, items in load_tasks(args.data_dir, args.items).items():
        pairs = [pair for item in items for pair in item.pairs]
        old_times, new_times = [], []
        for _ in range(args.repeats):
            seconds, old_scores = timed(old_scorer, model, tokenizer, pairs, 8)
            old_times.append(seconds)
            seconds, new_scores = timed(new_scorer, model, tokenizer, pairs, args.batch_size)
            new_times.append(seconds)
        old_rate, new_rate = len(items) / statistics.median(old_times), len(items) / statistics.median(new_times)
        new_flops = 2 * weights * packed_tokens(tokenizer, pairs) / statistics.median(new_times)
        largest_difference = max(abs(a - b) for a, b in zip(old_scores, new_scores))
        vllm_row = {}
        if vllm_engine is not None:
            vllm_times = []
            for _ in range(args.repeats):
                seconds, vllm_scores = timed(engine_logprobs, vllm_engine, pairs, args.batch_size)
                vllm_times.append(seconds)
            vllm_row = {
                "vllm_items_per_second": len(items) / statistics.median(vllm_times),
                "vllm_max_abs_difference": max(abs(a - b) for a, b in zip(vllm_scores, new_scores)),
                "acc_norm_vllm": mc_accuracy(items, vllm_scores)["acc_norm"],
            }
        rows.append({
            "task": task,
            "items": len(items),
            "choices": len(pairs),
            "old_items_per_second": old_rate,
            "new_items_per_second": new_rate,
            "speedup": new_rate / old_rate,
            "new_gflops": new_flops / 1e9,
            "max_abs_difference": largest_difference,
            "acc_norm_old": mc_accuracy(items, old_scores)["acc_norm"],
            "acc_norm_new": mc_accuracy(items, new_scores)["acc_norm"],
            **vllm_row,
        })  # fmt: skip
    if vllm_engine is not None:
        vllm_engine.close()

    where = f"{torch.get_num_threads()} threads" if args.device == "cpu" else torch.cuda.get_device_name()
    print(f"{args.model} fp32 on {args.device} ({where}), new batch {args.batch_size} rows, median of {args.repeats}")
    header = (
        f"{'task':<10} {'items':>6} {'old it/s':>9} {'new it/s':>9} {'speedup':>8} {'max |diff|':>11} {'acc_norm':>9}"
    )
    print(header)
    for row in rows:
        print(
            f"{row['task']:<10} {row['items']:>6} {row['old_items_per_second']:>9.2f} "
            f"{row['new_items_per_second']:>9.2f} {row['speedup']:>7.1f}x {row['max_abs_difference']:>11.2e} "
            f"{row['acc_norm_new']:>9.3f}"
        )
    for row in rows:
        if "vllm_items_per_second" in row:
            print(
                f"{row['task']:<10} vllm: {row['vllm_items_per_second']:.2f} it/s, max |diff| from packed "
                f"{row['vllm_max_abs_difference']:.2e}, acc_norm {row['acc_norm_vllm']:.3f}"
            )
    if peak is not None:
        achieved = ", ".join(f"{row['task']} {row['new_gflops']:.0f}" for row in rows)
        print(f"packed scorer GFLOP/s (weights x tokens, attention excluded): {achieved}; "
              f"fp32 matmul peak at 256 rows: {peak / 1e9:.0f}")  # fmt: skip
    goal = all(row["speedup"] >= 10 and row["max_abs_difference"] <= 1e-4 for row in rows)
    print(f"goal (>= 10x, scores within 1e-4): {'met' if goal else 'NOT met'}")
    output = args.output
    output.parent.mkdir(exist_ok=True)
    output.write_text(
        json.dumps(
            {
                "batch_size": args.batch_size,
                "repeats": args.repeats,
                "backend": args.backend,
                "fp32_matmul_peak_gflops": peak / 1e9 if peak is not None else None,
                "rows": rows,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {output}")


if __name__ == "__main__":
    sys.exit(main())
