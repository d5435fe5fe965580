"""Generation on CPU: the teacher engines and dtypes against an earlier revision's default and the machine's limit.

Every candidate is the real `sdd-data distill` command in its own process, so the wall time counts the start
(imports, model load, engine start) as a user sees it. The baseline is the same command run from a `git
worktree` of `--baseline-rev` (the code before the decode cache and grouped attention), fp32 as it was.
Each run's decisions and kept rewrites are compared with the baseline's, row by row.

The limit: SmolLM2 spends about 2 x 134.5M FLOPs a generated token in its matrix multiplies; the benchmark
measures this machine's matmul peak at a decode step's shapes (rows x 576 by 576 x 1,536, best of 3) for
each dtype, and prints the achieved FLOP/s beside it.

    python benchmarks/bench_generation.py [--datasets example,gsm8k] [--candidates ...] [--baseline-rev REV]

Writes each dataset's table into benchmarks/results/generation.json (other datasets' tables stay) and prints it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).parent))

from machine_peak import SMOLLM2_FLOPS_PER_TOKEN as FLOPS_PER_TOKEN  # noqa: E402
from machine_peak import matmul_peak  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
GSM8K = ROOT.parent / "shared" / "data" / "gsm8k" / "train.jsonl"
RESULTS = ROOT / "benchmarks" / "results" / "generation.json"

DATASETS = {
    "example": ["--data", "example"],
    "gsm8k": ["--data", str(GSM8K), "--limit", "200"],
}
HF, VLLM, BATCH_64 = ["--engine", "transformers"], ["--engine", "vllm"], ["--batch-size", "64"]
FP32, BF16 = ["--dtype", "float32"], ["--dtype", "bfloat16"]
NO_LOOKUP = ["--prompt-lookup", "0"]
CANDIDATES = {
    "baseline fp32": ("baseline", HF + FP32),
    "transformers fp32 no lookup": ("current", HF + FP32 + NO_LOOKUP),
    "transformers fp32": ("current", HF + FP32),
    "transformers fp32 batch 64": ("current", HF + FP32 + BATCH_64),
    "transformers bf16 no lookup": ("current", HF + BF16 + NO_LOOKUP),
    "transformers bf16": ("current", HF + BF16),
    "transformers bf16 batch 64": ("current", HF + BF16 + BATCH_64),
    "vllm fp32": ("current", VLLM + FP32),
    "vllm bf16": ("current", VLLM + BF16),
}
"""Name -> (which code runs it, its distill flags). The current transformers engine drafts by prompt lookup unless
`no lookup` says otherwise."""
VLLM_ENV = {"VLLM_CPU_KVCACHE_SPACE": "4", "VLLM_CPU_NUM_OF_RESERVED_CPU": "0"}


def checkout(revision: str, folder: Path) -> Path:
    """A detached worktree of `revision` in `folder` (the code the baseline runs)."""
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(folder), revision], check=True)
    return folder


def run_distill(code: Path, data: list[str], flags: list[str], max_new_tokens: int, output: Path) -> dict:
    """One `sdd-data distill` process on the code in `code`: wall seconds and the rows it wrote."""
    command = [sys.executable, "-m", "sdd_data.cli", "distill", *data, "--output", str(output), *flags,
               "--max-new-tokens", str(max_new_tokens)]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(code), **(VLLM_ENV if "vllm" in flags else {})}
    started = time.perf_counter()
    finished = subprocess.run(command, env=env, cwd=code, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if finished.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{finished.stderr[-3000:]}")
    rows = {}
    for name in ("distilled.parquet", "dropped.parquet"):
        if (output / name).exists():
            rows.update({row["id"]: row for row in pq.read_table(output / name).to_pylist()})
    return {"seconds": seconds, "rows": rows}


def summary(run: dict, baseline: dict, peak: dict[str, float]) -> dict:
    """Tokens/s, achieved FLOP/s against the dtype's peak, and what differs from the baseline's rows."""
    rows, base = run["rows"], baseline["rows"]
    tokens = sum(row["teacher_tokens"] for row in rows.values())
    kept = sum(row["decision"] == "rewrite" for row in rows.values())
    return {
        "seconds": round(run["seconds"], 1),
        "teacher_tokens": tokens,
        "tokens_per_second": round(tokens / run["seconds"], 1),
        "achieved_gflops": round(tokens * FLOPS_PER_TOKEN / run["seconds"] / 1e9, 1),
        "peak_gflops": round(peak[run["dtype"]] / 1e9, 1),
        "kept_rewrites": kept,
        "decisions_differing": sum(rows[key]["decision"] != base[key]["decision"] for key in base),
        "rewrites_differing": sum(rows[key]["teacher_response"] != base[key]["teacher_response"] for key in base),
        "differing_ids": sorted(key for key in base if rows[key]["decision"] != base[key]["decision"]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", default="example,gsm8k")
    parser.add_argument("--candidates", default=",".join(CANDIDATES), help="comma-separated names of CANDIDATES")
    parser.add_argument("--baseline-rev", default="79dccd0", help="revision whose fp32 default is the baseline")
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument("--peak-rows", type=int, default=32, help="rows of the decode step whose matmul peak is shown")
    args = parser.parse_args()

    peak = {name: matmul_peak(name, args.peak_rows) for name in ("float32", "bfloat16")}
    shown = ", ".join(f"{name} {flops / 1e9:.0f} GFLOP/s" for name, flops in peak.items())
    print(f"matmul peak at a {args.peak_rows}-row decode step: {shown}")
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}  # other datasets' runs stay
    settings = {"max_new_tokens": args.max_new_tokens, "peak_gflops": {k: round(v / 1e9, 1) for k, v in peak.items()}}
    with tempfile.TemporaryDirectory() as scratch:
        codes = {"current": ROOT, "baseline": checkout(args.baseline_rev, Path(scratch) / "baseline")}
        try:
            for dataset in args.datasets.split(","):
                runs = {}
                for name in ["baseline fp32", *[c for c in args.candidates.split(",") if c != "baseline fp32"]]:
                    code, flags = CANDIDATES[name]
                    output = Path(scratch) / f"{dataset}-{name.replace(' ', '-')}"
                    runs[name] = run_distill(codes[code], DATASETS[dataset], flags, args.max_new_tokens, output)
                    runs[name]["dtype"] = "bfloat16" if "bf16" in name else "float32"
                    print(f"  {dataset}: {name} done in {runs[name]['seconds']:.1f} s", flush=True)
                table = {name: summary(run, runs["baseline fp32"], peak) for name, run in runs.items()}
                results[dataset] = {**settings, "baseline_rev": args.baseline_rev, "candidates": table}
                print_table(dataset, table)
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(codes["baseline"])])
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"written to {RESULTS}")


def print_table(dataset: str, table: dict) -> None:
    base = table["baseline fp32"]["tokens_per_second"]
    print(f"\n{dataset}: candidate | wall s | tokens | tokens/s | x baseline | GFLOP/s of peak | kept | decisions ≠")
    for name, row in table.items():
        print(
            f"  {name:28s} {row['seconds']:7.1f} {row['teacher_tokens']:7d} {row['tokens_per_second']:8.1f} "
            f"{row['tokens_per_second'] / base:6.2f}x {row['achieved_gflops']:6.1f}/{row['peak_gflops']:.0f} "
            f"{row['kept_rewrites']:5d} {row['decisions_differing']:4d}"
        )


if __name__ == "__main__":
    main()
