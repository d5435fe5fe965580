"""Merge benchmark: peak memory and time of `sdd-data merge` against a plain copy through the same I/O path.

Two fp32 random Llama checkpoints are generated (or given with --models): the other model is
0.8 · base + 0.6 · noise, so most tensors take the SLERP path, the norms the `identical` one. Each
measurement runs in a fresh subprocess that reports its own peak RSS (VmHWM of /proc/self/status:
the high-water mark of this process image, not inherited across exec as ru_maxrss is) and the
seconds of its work alone (interpreter start and imports excluded):

- imports:   import torch, safetensors and the merge modules, nothing else (the floor all RSS is over);
- copy-base: read every tensor of the base model with CheckpointReader, write it with ShardedWriter;
- copy-both: the same for both input checkpoints: every file the merge reads, read and written;
- merge:     the merge stage on the canonical recipe (self_attn/mlp gradients, fallback 0.5).

Goals: merge RSS over the imports floor ≤ 2 × the largest tensor + 10%; merge time ≤ 1.25 × the
copy-both time (the plain copy of the same files).

    python benchmarks/bench_merge.py [--hidden 1024] [--layers 8] [--vocab 32000] [--repeats 3]

Prints a table and writes benchmarks/results/merge.json.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import yaml

from sdd_data.merge.safetensors_stream import CheckpointReader, ShardedWriter
from sdd_data.merge.stage import MergeConfig, merge

RESULTS = Path(__file__).parent / "results" / "merge.json"
RECIPE_T = [
    {"filter": "self_attn", "value": [0, 0.5, 0.3, 0.7, 1]},
    {"filter": "mlp", "value": [1, 0.5, 0.7, 0.3, 0]},
    {"value": 0.5},
]


def llama_shapes(hidden: int, layers: int, vocab: int, intermediate: int) -> dict[str, tuple[int, ...]]:
    """Tensor names and shapes of a Llama with tied embeddings (no lm_head)."""
    shapes = {"model.embed_tokens.weight": (vocab, hidden)}
    for layer in range(layers):
        prefix = f"model.layers.{layer}."
        for name in ("q_proj", "k_proj", "v_proj", "o_proj"):
            shapes[f"{prefix}self_attn.{name}.weight"] = (hidden, hidden)
        shapes[f"{prefix}mlp.gate_proj.weight"] = shapes[f"{prefix}mlp.up_proj.weight"] = (intermediate, hidden)
        shapes[f"{prefix}mlp.down_proj.weight"] = (hidden, intermediate)
        shapes[f"{prefix}input_layernorm.weight"] = shapes[f"{prefix}post_attention_layernorm.weight"] = (hidden,)
    shapes["model.norm.weight"] = (hidden,)
    return shapes


def write_random_pair(folder: Path, hidden: int, layers: int, vocab: int, intermediate: int) -> tuple[Path, Path]:
    """Two checkpoints of the same random Llama, the second a perturbed copy, in 1 GB shards."""
    from transformers import LlamaConfig

    config = LlamaConfig(
        hidden_size=hidden,
        num_hidden_layers=layers,
        vocab_size=vocab,
        intermediate_size=intermediate,
        num_attention_heads=hidden // 128,
        head_dim=128,
        tie_word_embeddings=True,
    )
    shapes = llama_shapes(hidden, layers, vocab, intermediate)
    generator = torch.Generator().manual_seed(0)
    paths = (folder / "base", folder / "other")
    writers = []
    for path in paths:
        path.mkdir()
        config.save_pretrained(path)
        writers.append(ShardedWriter(path, [(name, torch.float32, shape) for name, shape in shapes.items()], 10**9))
    for name, shape in shapes.items():
        if len(shape) == 1:
            base = other = torch.ones(shape)
        else:
            base = torch.randn(shape, generator=generator) * 0.02
            other = 0.8 * base + 0.6 * 0.02 * torch.randn(shape, generator=generator)
        writers[0].write(name, [base])
        writers[1].write(name, [other])
    for writer in writers:
        writer.finish()
    return paths


def peak_rss_bytes() -> int:
    """The peak resident set size of this process image (VmHWM), or ru_maxrss where /proc is missing."""
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def copy_checkpoint(source: str, output: Path) -> None:
    """Read every tensor of a checkpoint and write it again, through the merge's reader and writer."""
    output.mkdir(parents=True)
    reader = CheckpointReader(source)
    writer = ShardedWriter(output, [(info.name, info.dtype, info.shape) for info in reader.tensors.values()], 5 * 10**9)
    for name in reader.tensors:
        tensor = reader.read(name)
        writer.write(name, [tensor])
        del tensor
    writer.finish()


def child(kind: str, base: str, other: str, output: str) -> None:
    """One measurement in this (fresh) process: print its peak RSS and the seconds of its work."""
    import sdd_data.merge.checkpoints  # noqa: F401 - the stage's imports belong to every measurement's floor

    started = time.perf_counter()
    if kind in ("copy-base", "copy-both"):
        copy_checkpoint(base, Path(output) / "base")
    if kind == "copy-both":
        copy_checkpoint(other, Path(output) / "other")
    if kind == "merge":
        recipe = Path(output).parent / "merge.yaml"
        recipe.write_text(
            yaml.safe_dump(
                {
                    "models": [{"model": base}, {"model": other}],
                    "merge_method": "slerp",
                    "base_model": base,
                    "parameters": {"t": RECIPE_T},
                }
            )
        )
        merge(MergeConfig(merge_config=str(recipe), output=output), show_progress=False)
    seconds = time.perf_counter() - started
    print(json.dumps({"seconds": seconds, "max_rss_bytes": peak_rss_bytes()}))


def measure(kind: str, base: Path, other: Path, scratch: Path) -> dict:
    """Run one measurement in a fresh interpreter, with a fresh output folder."""
    output = scratch / "output"
    if output.exists():
        shutil.rmtree(output)
    done = subprocess.run(
        [sys.executable, __file__, "--child", kind, str(base), str(other), str(output)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_benchmark(base: Path, other: Path, repeats: int, scratch: Path) -> dict:
    """Alternate copy and merge runs; report medians over the imports-only floor."""
    reader = CheckpointReader(base)
    largest = max(info.nbytes for info in reader.tensors.values())
    total = sum(info.nbytes for info in reader.tensors.values())
    floor = measure("imports", base, other, scratch)["max_rss_bytes"]
    runs = {"copy-base": [], "copy-both": [], "merge": []}
    for _ in range(repeats):
        for kind in runs:
            runs[kind].append(measure(kind, base, other, scratch))
    summary = {}
    for kind, results in runs.items():
        rss = statistics.median(result["max_rss_bytes"] for result in results)
        summary[kind] = {
            "seconds": [round(result["seconds"], 3) for result in results],
            "median_seconds": round(statistics.median(result["seconds"] for result in results), 3),
            "median_peak_rss_bytes": int(rss),
            "rss_over_imports_bytes": int(rss - floor),
            "rss_over_imports_in_largest_tensors": round((rss - floor) / largest, 3),
        }
    merge_seconds = summary["merge"]["median_seconds"]
    return {
        "model_bytes": total,
        "tensors": len(reader.tensors),
        "largest_tensor_bytes": largest,
        "imports_peak_rss_bytes": floor,
        "repeats": repeats,
        **summary,
        "merge_over_copy_both_time": round(merge_seconds / summary["copy-both"]["median_seconds"], 3),
        "merge_over_copy_base_time": round(merge_seconds / summary["copy-base"]["median_seconds"], 3),
        "torch_threads_of_the_merge": 1,
        "goals": {"rss_over_imports_in_largest_tensors": 2.2, "merge_over_copy_both_time": 1.25},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs=2, metavar=("BASE", "OTHER"), help="merge these checkpoints instead")
    parser.add_argument("--hidden", type=int, default=1024)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--vocab", type=int, default=32000)
    parser.add_argument("--intermediate", type=int, default=2048)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return

    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        base, other = (
            map(Path, args.models)
            if args.models
            else write_random_pair(folder, args.hidden, args.layers, args.vocab, args.intermediate)
        )
        result = run_benchmark(base, other, args.repeats, folder)
    mib = 2**20
    print(
        f"\nmerge vs copy: {result['tensors']} tensors, {result['model_bytes'] / mib:,.0f} MiB per model, "
        f"largest tensor {result['largest_tensor_bytes'] / mib:,.0f} MiB, median of {result['repeats']}"
    )
    print(f"imports-only peak RSS {result['imports_peak_rss_bytes'] / mib:,.0f} MiB (subtracted below)")
    print(f"{'':9} {'seconds':>8} {'peak RSS over imports':>22} {'in largest tensors':>19}")
    for kind in ("copy-base", "copy-both", "merge"):
        row = result[kind]
        print(
            f"{kind:9} {row['median_seconds']:8.2f} {row['rss_over_imports_bytes'] / mib:18,.0f} MiB "
            f"{row['rss_over_imports_in_largest_tensors']:19.2f}"
        )
    print(
        f"merge / copy-both time {result['merge_over_copy_both_time']:.2f} (goal <= 1.25), merge / copy-base "
        f"{result['merge_over_copy_base_time']:.2f}; merge RSS over imports "
        f"{result['merge']['rss_over_imports_in_largest_tensors']:.2f} largest tensors (goal <= 2.2)"
    )
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written to {RESULTS}")


if __name__ == "__main__":
    main()
