"""Distill benchmark: (a) the stage against the bare engine call, (b) the filter's rows per minute.

(a) runs the same GSM8K rows through the real teacher twice, alternating: once as the bare engine
    call on the already rendered prompts (model load + generate), once as the whole `distill` stage
    (load the data, render, generate, filter, write shards and outputs). The overhead is the ratio of
    the medians minus one; the goal is at most 3%.
(b) times the consistency filter alone on 100k synthetic rows (goal: at least 1M rows/minute).

    python benchmarks/bench_distill.py [--rows 48] [--max-new-tokens 96] [--repeats 3] [--engine transformers]

Prints a table and writes benchmarks/results/distill.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from filter_bench import run_filter_benchmark  # noqa: E402

from sdd_data.data.sources import SourceSpec, load_rows  # noqa: E402
from sdd_data.distill.shards import row_seed  # noqa: E402
from sdd_data.distill.stage import DistillConfig, distill  # noqa: E402
from sdd_data.distill.templates import get_template  # noqa: E402
from sdd_data.engines import load_engine  # noqa: E402
from sdd_data.engines.base import DecodingConfig, EngineConfig  # noqa: E402
from sdd_data.models.resolve import resolve_model  # noqa: E402

GSM8K = Path(__file__).resolve().parents[2] / "shared" / "data" / "gsm8k" / "train.jsonl"
RESULTS = Path(__file__).parent / "results" / "distill.json"


def bare_engine_seconds(spec: SourceSpec, teacher: str, engine_name: str, decoding: DecodingConfig) -> float:
    """Model load + one generate call on prompts rendered beforehand (rendering is not timed)."""
    rows = load_rows(spec).rows
    template = get_template("auto", {row["task"] for row in rows})
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(teacher)
    prompts = [template.render(row, tokenizer) for row in rows]
    seeds = [row_seed(decoding.seed, row["id"]) for row in rows]
    started = time.perf_counter()
    engine = load_engine(engine_name, teacher, EngineConfig())
    engine.generate(prompts, seeds, decoding)
    engine.close()
    return time.perf_counter() - started


def stage_seconds(spec: SourceSpec, teacher: str, engine_name: str, decoding: DecodingConfig, **options) -> float:
    """The whole distill stage into a fresh output folder (`options`: more DistillConfig fields)."""
    with tempfile.TemporaryDirectory() as output:
        config = DistillConfig(
            source=spec, teacher=teacher, engine=engine_name, output=output, decoding=decoding, **options
        )
        started = time.perf_counter()
        distill(config, show_progress=False)
        return time.perf_counter() - started


def run_stage_benchmark(rows: int, max_new_tokens: int, repeats: int, engine_name: str) -> dict:
    """Alternate bare-engine and stage runs on the same rows; report medians and the overhead ratio."""
    teacher = resolve_model("smollm2").path
    spec = SourceSpec(data=str(GSM8K), limit=rows)
    decoding = DecodingConfig(max_new_tokens=max_new_tokens)
    bare, stage = [], []
    for _ in range(repeats):
        bare.append(bare_engine_seconds(spec, teacher, engine_name, decoding))
        stage.append(stage_seconds(spec, teacher, engine_name, decoding))
    bare_median, stage_median = statistics.median(bare), statistics.median(stage)
    return {
        "engine": engine_name,
        "rows": rows,
        "max_new_tokens": max_new_tokens,
        "repeats": repeats,
        "bare_engine_seconds": bare,
        "stage_seconds": stage,
        "bare_engine_median": round(bare_median, 3),
        "stage_median": round(stage_median, 3),
        "overhead": round(stage_median / bare_median - 1, 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=48)
    parser.add_argument("--max-new-tokens", type=int, default=96)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--engine", default="transformers")
    parser.add_argument("--filter-rows", type=int, default=100_000)
    args = parser.parse_args()

    stage = run_stage_benchmark(args.rows, args.max_new_tokens, args.repeats, args.engine)
    filtering = run_filter_benchmark(args.filter_rows)
    print(
        f"\n(a) distill stage vs bare {stage['engine']} engine, {stage['rows']} GSM8K rows, "
        f"{stage['max_new_tokens']} new tokens, median of {stage['repeats']}"
    )
    print(f"    bare engine  {stage['bare_engine_median']:8.2f} s")
    print(f"    stage        {stage['stage_median']:8.2f} s")
    print(f"    overhead     {stage['overhead']:8.2%}   (goal <= 3%)")
    print(
        f"(b) filter on {filtering['rows']:,} synthetic rows: {filtering['rows_per_minute']:,.0f} rows/min "
        f"on one core (goal >= 1,000,000)"
    )
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps({"stage": stage, "filter": filtering}, indent=2) + "\n")
    print(f"written to {RESULTS}")


if __name__ == "__main__":
    main()
