"""Scale benchmark, in one run on the same machine:

(a) ray: the distill stage through `--executor ray` (a local Ray cluster started by the run, one replica
    with every CPU) against the local engine, on the same GSM8K rows (transformers engine). Goal: <= 15%.
(b) stream: the distill stage with the vllm engine, its rows fed continuously across >= 8 shards, against
    one bare `LLM.generate` call on all the prompts (model load included on both sides). Goal: <= 3%.
(c) cpu: the transformers engine's ragged decoding (batches of 32, a row leaves when it ends) against the
    decoding it replaced (`model.generate` on batches of 8, every row waiting for the longest) on the
    prompts of the README's first command, model loaded once. Goal: >= 2x the tokens/s.

    python benchmarks/bench_scale.py [--parts ray,stream,cpu] [--repeats 2]

Prints a table and writes benchmarks/results/scale.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from bench_distill import bare_engine_seconds, stage_seconds  # noqa: E402
from generate_baseline import generate_with_model_generate  # noqa: E402

from sdd_data.data.sources import SourceSpec, load_rows  # noqa: E402
from sdd_data.distill.config import RayOptions  # noqa: E402
from sdd_data.distill.templates import get_template  # noqa: E402
from sdd_data.engines import load_engine  # noqa: E402
from sdd_data.engines.base import DecodingConfig, EngineConfig  # noqa: E402
from sdd_data.models.resolve import resolve_model  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHARED_GSM8K = ROOT.parent / "shared" / "data" / "gsm8k" / "train.jsonl"
GSM8K = SHARED_GSM8K if SHARED_GSM8K.exists() else ROOT / "tests" / "data" / "gsm8k" / "train.jsonl"
RESULTS = Path(__file__).parent / "results" / "scale.json"


def alternate(first, second, repeats: int) -> tuple[list[float], list[float]]:
    """Time two callables alternately, `repeats` times each."""
    firsts, seconds = [], []
    for _ in range(repeats):
        firsts.append(first())
        seconds.append(second())
    return firsts, seconds


def ratio_entry(baseline_name: str, baseline: list[float], name: str, timed: list[float], **facts) -> dict:
    base, other = statistics.median(baseline), statistics.median(timed)
    return {
        **facts,
        f"{baseline_name}_seconds": baseline,
        f"{name}_seconds": timed,
        f"{baseline_name}_median": round(base, 2),
        f"{name}_median": round(other, 2),
        "overhead": round(other / base - 1, 4),
    }


def ray_part(teacher: str, rows: int, max_new_tokens: int, repeats: int) -> dict:
    """(a) the Ray executor against the local engine on the same rows."""
    spec, decoding = SourceSpec(data=str(GSM8K), limit=rows), DecodingConfig(max_new_tokens=max_new_tokens)
    cpus = float(len(os.sched_getaffinity(0)))
    local, ray = alternate(
        lambda: stage_seconds(spec, teacher, "transformers", decoding),
        lambda: stage_seconds(
            spec, teacher, "transformers", decoding, executor="ray", ray=RayOptions(cpus_per_replica=cpus)
        ),
        repeats,
    )
    return ratio_entry("local", local, "ray", ray, rows=rows, max_new_tokens=max_new_tokens, goal="<= 15%")


def stream_part(teacher: str, rows: int, shard_size: int, max_new_tokens: int, repeats: int) -> dict:
    """(b) the vllm distill stage over many shards against one bare generate call on every prompt."""
    spec, decoding = SourceSpec(data=str(GSM8K), limit=rows), DecodingConfig(max_new_tokens=max_new_tokens)
    bare, stage = alternate(
        lambda: bare_engine_seconds(spec, teacher, "vllm", decoding),
        lambda: stage_seconds(spec, teacher, "vllm", decoding, shard_size=shard_size),
        repeats,
    )
    shards = -(-rows // shard_size)
    return ratio_entry(
        "bare_generate", bare, "stage", stage, rows=rows, shards=shards, max_new_tokens=max_new_tokens, goal="<= 3%"
    )


def cpu_part(teacher: str, max_new_tokens: int) -> dict:
    """(c) ragged decoding against model.generate batches of 8, on the README example's prompts."""
    rows = load_rows(SourceSpec(data="example")).rows
    engine = load_engine("transformers", teacher, EngineConfig())
    template = get_template("auto", {row["task"] for row in rows})
    prompts = [template.render(row, engine.tokenizer) for row in rows]
    token_ids = [engine.tokenizer(prompt, add_special_tokens=False).input_ids for prompt in prompts]
    decoding = DecodingConfig(max_new_tokens=max_new_tokens)

    started = time.perf_counter()
    old = generate_with_model_generate(engine, token_ids, decoding)
    old_seconds = time.perf_counter() - started
    started = time.perf_counter()
    new = engine.generate(prompts, [0] * len(prompts), decoding)
    new_seconds = time.perf_counter() - started
    engine.close()
    old_tokens, new_tokens = sum(g.completion_tokens for g in old), sum(g.completion_tokens for g in new)
    return {
        "rows": len(rows),
        "max_new_tokens": max_new_tokens,
        "model_generate_batch_8": {"seconds": round(old_seconds, 2), "tokens": old_tokens},
        "ragged_batch_32": {"seconds": round(new_seconds, 2), "tokens": new_tokens},
        "model_generate_tokens_per_second": round(old_tokens / old_seconds, 2),
        "ragged_tokens_per_second": round(new_tokens / new_seconds, 2),
        "speedup": round((new_tokens / new_seconds) / (old_tokens / old_seconds), 2),
        "same_generations": sum(a == b for a, b in zip(old, new)),
        "goal": ">= 2x",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parts", default="ray,stream,cpu")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--ray-rows", type=int, default=200)
    parser.add_argument("--ray-max-new-tokens", type=int, default=32)
    parser.add_argument("--stream-rows", type=int, default=96)
    parser.add_argument("--stream-shard-size", type=int, default=8)
    parser.add_argument("--stream-max-new-tokens", type=int, default=128)
    parser.add_argument("--cpu-max-new-tokens", type=int, default=256)
    args = parser.parse_args()
    teacher = resolve_model("smollm2").path
    parts = set(args.parts.split(","))
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}

    if "cpu" in parts:
        results["cpu"] = cpu = cpu_part(teacher, args.cpu_max_new_tokens)
        print(
            f"(c) CPU default, {cpu['rows']} example rows: model.generate x8 {cpu['model_generate_tokens_per_second']}"
            f" tok/s, ragged x32 {cpu['ragged_tokens_per_second']} tok/s: {cpu['speedup']}x (goal >= 2x);"
            f" {cpu['same_generations']}/{cpu['rows']} identical generations"
        )
    if "stream" in parts:
        results["stream"] = stream = stream_part(
            teacher, args.stream_rows, args.stream_shard_size, args.stream_max_new_tokens, args.repeats
        )
        print(
            f"(b) vllm stage over {stream['shards']} shards vs one bare generate: {stream['stage_median']} s vs "
            f"{stream['bare_generate_median']} s, overhead {stream['overhead']:.1%} (goal <= 3%)"
        )
    if "ray" in parts:
        results["ray"] = ray = ray_part(teacher, args.ray_rows, args.ray_max_new_tokens, args.repeats)
        print(
            f"(a) Ray executor vs local engine, {ray['rows']} rows: {ray['ray_median']} s vs {ray['local_median']} s,"
            f" overhead {ray['overhead']:.1%} (goal <= 15%)"
        )
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"written to {RESULTS}")


if __name__ == "__main__":
    main()
