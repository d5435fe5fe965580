"""Scoring and training in bfloat16 against float32 on the CPU: what the lower precision buys and what it changes.

Three measurements on SmolLM2-135M-Instruct, each fp32 and bf16 on the same inputs, one after the other:

1. Multiple-choice scoring (the packed scorer of `sdd-data eval`) on the first --items items of ARC-Easy and
   HellaSwag: items/s (median of --repeats), the largest difference of a choice's log-likelihood, and the items
   whose acc_norm decision (the choice picked) changes. The old per-choice scorer (fp32) is timed once for scale:
   the goal is 10x its items/s at equal decisions.
2. Held-out NLL (the `nll` task's scoring) of --nll-rows Alpaca reference answers after their chat prompts:
   the mean NLL per token in each precision and the largest per-answer difference.
3. SFT steps of the recovery preset's recipe (sft-cpu, its batch 4 x 2 accumulation, max_length 256, group by
   length) on the first rows of its training mix, fp32 and bf16 autocast (`bf16: true`), --steps steps from the
   same start: seconds per step and both loss curves.

    python benchmarks/bench_precision.py [--items 200] [--nll-rows 100] [--steps 12]

Prints the tables and writes benchmarks/results/precision.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from bench_mc_scoring import DATA, load_tasks, packed_tokens
from machine_peak import matmul_peak
from mc_baseline import continuation_logprobs as old_scorer

from sdd_data.data.records import user_prompt
from sdd_data.data.sources import SourceSpec, load_rows
from sdd_data.evaluate.loglikelihood import continuation_logprobs
from sdd_data.evaluate.mc_scoring import mc_accuracy, split_pair
from sdd_data.models import load_causal_lm, load_tokenizer, resolve_model

REPO = Path(__file__).resolve().parents[1]
ALPACA = REPO.parent / "shared" / "data" / "alpaca" / "alpaca_2k.json"
SFT_RECIPE = REPO / "recipes" / "smollm2-135m-instruct" / "sft-cpu" / "config.yaml"
DTYPES = ("float32", "bfloat16")


def picks(items, scores: list[float]) -> list[int]:
    """The choice acc_norm picks for each item (log-likelihood per character of the continuation)."""
    chosen, place = [], 0
    for item in items:
        normalised = [scores[place + index] / max(1, len(text)) for index, (_, text) in enumerate(item.pairs)]
        chosen.append(max(range(len(normalised)), key=normalised.__getitem__))
        place += len(item.pairs)
    return chosen


def scoring(path: str, tokenizer, items_per_task: int, repeats: int, batch_size: int) -> list[dict]:
    """MC scoring rows: per task, each precision's items/s, score differences and changed decisions."""
    models = {dtype: load_causal_lm(path, dtype=dtype) for dtype in DTYPES}
    weights = sum(parameter.numel() for parameter in models["float32"].parameters())
    rows = []
    for task, items in load_tasks(DATA, items_per_task).items():
        pairs = [pair for item in items for pair in item.pairs]
        started = time.perf_counter()
        old_scorer(models["float32"], tokenizer, pairs, 8)
        old_rate = len(items) / (time.perf_counter() - started)
        rates, scores = {}, {}
        for dtype in DTYPES:
            times = []
            for _ in range(repeats):
                started = time.perf_counter()
                scores[dtype] = continuation_logprobs(models[dtype], tokenizer, pairs, batch_size)
                times.append(time.perf_counter() - started)
            rates[dtype] = len(items) / statistics.median(times)
        fp32, bf16 = picks(items, scores["float32"]), picks(items, scores["bfloat16"])
        flops_per_item = 2 * weights * packed_tokens(tokenizer, pairs) / len(items)  # attention excluded
        rows.append({
            "task": task,
            "items": len(items),
            "old_fp32_items_per_second": old_rate,
            "fp32_items_per_second": rates["float32"],
            "bf16_items_per_second": rates["bfloat16"],
            "bf16_speedup": rates["bfloat16"] / rates["float32"],
            "fp32_gflops": flops_per_item * rates["float32"] / 1e9,
            "bf16_gflops": flops_per_item * rates["bfloat16"] / 1e9,
            "bf16_vs_old": rates["bfloat16"] / old_rate,
            "max_abs_score_difference": max(abs(a - b) for a, b in zip(scores["float32"], scores["bfloat16"])),
            "decisions_changed": sum(a != b for a, b in zip(fp32, bf16)),
            "acc_norm_fp32": mc_accuracy(items, scores["float32"])["acc_norm"],
            "acc_norm_bf16": mc_accuracy(items, scores["bfloat16"])["acc_norm"],
        })  # fmt: skip
    return rows


def heldout_nll(path: str, tokenizer, count: int, batch_size: int) -> dict:
    """Mean NLL per answer token of Alpaca reference answers in each precision, and the largest difference."""
    rows = load_rows(SourceSpec(data=str(ALPACA), limit=count)).rows
    pairs = [
        (
            tokenizer.apply_chat_template(
                [{"role": "user", "content": user_prompt(row["instruction"], row["input"])}],
                tokenize=False,
                add_generation_prompt=True,
            ),
            row["response"],
        )
        for row in rows
    ]
    lengths = [len(split_pair(tokenizer, *pair)[1]) for pair in pairs]
    per_answer, seconds = {}, {}
    for dtype in DTYPES:
        model = load_causal_lm(path, dtype=dtype)
        started = time.perf_counter()
        scores = continuation_logprobs(model, tokenizer, pairs, batch_size)
        seconds[dtype] = time.perf_counter() - started
        per_answer[dtype] = [-score / length for score, length in zip(scores, lengths)]
    return {
        "answers": len(pairs),
        "mean_nll_fp32": statistics.mean(per_answer["float32"]),
        "mean_nll_bf16": statistics.mean(per_answer["bfloat16"]),
        "max_abs_difference": max(abs(a - b) for a, b in zip(per_answer["float32"], per_answer["bfloat16"])),
        "seconds_fp32": seconds["float32"],
        "seconds_bf16": seconds["bfloat16"],
    }


def training(steps: int, rows: int) -> dict:
    """SFT with the recovery preset's settings on an even sample of its training mix, fp32 then bf16 autocast,
    from the same start and the same batches: seconds per step and every step's loss."""
    sys.path.insert(0, str(REPO / "benchmarks" / "recovery"))
    from prepare import training_rows
    from presets import PRESETS

    from sdd_data.train import TrainConfig, train

    preset = PRESETS["cpu"]
    mix = training_rows(preset, REPO.parent / "shared" / "data", {})[0]
    sample = mix[:: max(1, len(mix) // rows)][:rows]
    settings = {**preset.training, "logging_steps": 1, "seed": 0}
    runs = {}
    with tempfile.TemporaryDirectory() as folder:
        data = Path(folder) / "rows.jsonl"
        data.write_text("".join(json.dumps(row) + "\n" for row in sample))
        for dtype, bf16 in (("float32", False), ("bfloat16", True)):
            config = TrainConfig(recipe=str(SFT_RECIPE), data=str(data), model="smollm2",
                                 output=str(Path(folder) / dtype), max_steps=steps,
                                 overrides={**settings, "bf16": bf16})  # fmt: skip
            result = train(config, show_progress=False)
            runs[dtype] = {
                "seconds_per_step": result.metrics["train_runtime"] / result.metrics["global_step"],
                "train_loss": result.metrics["train_loss"],
                "losses": result.losses,
            }
    fp32, bf16 = runs["float32"], runs["bfloat16"]
    return {
        "steps": steps,
        "rows": len(sample),
        "settings": settings,
        "fp32": fp32,
        "bf16": bf16,
        "bf16_speedup": fp32["seconds_per_step"] / bf16["seconds_per_step"],
        "largest_loss_difference": max(abs(a - b) for a, b in zip(fp32["losses"], bf16["losses"])),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--nll-rows", type=int, default=100)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--train-rows", type=int, default=96)
    parser.add_argument("--output", type=Path, default=Path(__file__).parent / "results" / "precision.json")
    args = parser.parse_args()

    path = resolve_model("smollm2").path
    tokenizer = load_tokenizer(path)
    peaks = {dtype: matmul_peak(dtype, 256) / 1e9 for dtype in DTYPES}
    mc = scoring(path, tokenizer, args.items, args.repeats, args.batch_size)
    nll = heldout_nll(path, tokenizer, args.nll_rows, args.batch_size)
    sft = training(args.steps, args.train_rows)

    print(f"SmolLM2-135M-Instruct on {torch.get_num_threads()} CPU threads; matmul peak at 256 rows: "
          f"fp32 {peaks['float32']:.0f}, bf16 {peaks['bfloat16']:.0f} GFLOP/s")  # fmt: skip
    print(f"{'task':<10} {'items':>5} {'old fp32':>9} {'fp32 it/s':>10} {'bf16 it/s':>10} {'bf16/fp32':>9} "
          f"{'bf16/old':>8} {'max |diff|':>10} {'changed':>7} {'acc fp32':>8} {'acc bf16':>8}")  # fmt: skip
    for row in mc:
        print(f"{row['task']:<10} {row['items']:>5} {row['old_fp32_items_per_second']:>9.2f} "
              f"{row['fp32_items_per_second']:>10.2f} {row['bf16_items_per_second']:>10.2f} "
              f"{row['bf16_speedup']:>8.2f}x {row['bf16_vs_old']:>7.1f}x {row['max_abs_score_difference']:>10.3f} "
              f"{row['decisions_changed']:>7} {row['acc_norm_fp32']:>8.3f} {row['acc_norm_bf16']:>8.3f}")  # fmt: skip
    print(f"held-out NLL of {nll['answers']} Alpaca answers: fp32 {nll['mean_nll_fp32']:.4f}, bf16 "
          f"{nll['mean_nll_bf16']:.4f} nats/token (largest per-answer difference {nll['max_abs_difference']:.4f}); "
          f"{nll['seconds_fp32']:.1f} s fp32, {nll['seconds_bf16']:.1f} s bf16")  # fmt: skip
    print(f"SFT, {sft['steps']} steps on {sft['rows']} rows: {sft['fp32']['seconds_per_step']:.2f} s/step fp32, "
          f"{sft['bf16']['seconds_per_step']:.2f} s/step bf16 autocast ({sft['bf16_speedup']:.2f}x); largest loss "
          f"difference at one step {sft['largest_loss_difference']:.4f}")  # fmt: skip
    achieved = "; ".join(f"{row['task']} fp32 {row['fp32_gflops']:.0f}, bf16 {row['bf16_gflops']:.0f}" for row in mc)
    print(f"packed scorer GFLOP/s (2 x weights x tokens, attention excluded): {achieved}")
    print("step  loss fp32  loss bf16")
    for step, (a, b) in enumerate(zip(sft["fp32"]["losses"], sft["bf16"]["losses"]), start=1):
        print(f"{step:>4}  {a:>9.4f}  {b:>9.4f}")
    args.output.parent.mkdir(exist_ok=True)
    report = {"matmul_peak_gflops": peaks, "mc_scoring": mc, "heldout_nll": nll, "sft": sft}
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
