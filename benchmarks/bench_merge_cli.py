"""Merge CLI benchmark: `sdd-data merge` beside `mergekit-yaml` on the same SLERP recipe, each a whole process.

The recipe merges SmolLM2-135M-Instruct with a perturbed copy of itself (every weight plus seeded noise, the
tokenizer files copied as they are) with `t` gradients over self_attn and mlp, fp32, as mergekit's SLERP
example does. Each tool's command runs as its own process (interpreter start and imports included), the two
alternating, `--repeats` times; the wall time and the peak resident memory of the process (its VmHWM) are
reported, with the ratios mergekit / sdd-data. mergekit is taken from `--mergekit-yaml` (its command) or PATH;
install it in its own environment (`pip install torch==2.13.0 mergekit==0.1.5`). Without it, only sdd-data runs
and the table says so.

    python benchmarks/bench_merge_cli.py [--repeats 3] [--mergekit-yaml /path/to/venv/bin/mergekit-yaml]

Prints a table and writes benchmarks/results/merge_cli.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

RESULTS = Path(__file__).parent / "results" / "merge_cli.json"
T_GRADIENTS = [
    {"filter": "self_attn", "value": [0, 0.5, 0.3, 0.7, 1]},
    {"filter": "mlp", "value": [1, 0.5, 0.7, 0.3, 0]},
    {"value": 0.5},
]


def perturbed_copy(model: Path, output: Path) -> Path:
    """The model with seeded noise added to every weight, its other files (tokenizer, config) copied as they are."""
    import torch
    from safetensors.torch import load_file, save_file

    shutil.copytree(model, output)
    generator = torch.Generator().manual_seed(0)
    for path in output.glob("*.safetensors"):
        tensors = load_file(path)
        noisy = {
            name: (t + 0.01 * torch.randn(t.shape, generator=generator, dtype=t.dtype)) for name, t in tensors.items()
        }
        save_file(noisy, path, metadata={"format": "pt"})
    return output


def recipe(base: Path, other: Path, path: Path) -> Path:
    """The SLERP recipe in mergekit's format, which `sdd-data merge` reads too."""
    values = {
        "merge_method": "slerp",
        "base_model": str(base),
        "models": [{"model": str(base)}, {"model": str(other)}],
        "parameters": {"t": T_GRADIENTS},
        "dtype": "float32",
    }
    path.write_text(yaml.safe_dump(values, sort_keys=False))
    return path


def _high_water_mark(pid: int) -> int | None:
    """VmHWM of a running process (the peak resident memory of its current image), or None once it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return None


def timed(command: list[str]) -> dict:
    """Run a command as a process: its wall seconds and peak resident memory.

    The peak is the process's own VmHWM, read every 5 ms while it runs (it only grows, so the last reading is
    the peak but for the last few milliseconds). ru_maxrss would not do: Linux counts in it the memory of the
    process image before exec, here this benchmark's own, with its tensors."""
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = 0
    while process.poll() is None:
        peak = max(peak, _high_water_mark(process.pid) or 0)
        time.sleep(0.005)
    seconds = time.perf_counter() - started
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed: {process.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
    return {"seconds": round(seconds, 3), "peak_rss_bytes": peak}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--mergekit-yaml", default=shutil.which("mergekit-yaml"))
    args = parser.parse_args()
    from sdd_data.models.resolve import resolve_model

    base = Path(resolve_model("smollm2").path)
    sdd_cli = [sys.executable, "-m", "sdd_data.cli", "merge"]
    runs: dict[str, list[dict]] = {"sdd-data": []}
    if args.mergekit_yaml:
        runs["mergekit"] = []
    with tempfile.TemporaryDirectory() as folder:
        scratch = Path(folder)
        other = perturbed_copy(base, scratch / "other")
        config = recipe(base, other, scratch / "slerp.yaml")
        for repeat in range(args.repeats):
            for tool in runs:
                output = scratch / f"{tool}-{repeat}"
                if tool == "sdd-data":
                    command = [*sdd_cli, "--merge-config", str(config), "--output", str(output)]
                else:
                    command = [args.mergekit_yaml, str(config), str(output), "--copy-tokenizer"]
                runs[tool].append(timed(command))
                shutil.rmtree(output, ignore_errors=True)
    report: dict = {"model": "SmolLM2-135M-Instruct + perturbed copy, fp32, SLERP with t gradients"}
    for tool, results in runs.items():
        report[tool] = {
            "seconds": [result["seconds"] for result in results],
            "median_seconds": statistics.median(result["seconds"] for result in results),
            "median_peak_rss_bytes": int(statistics.median(result["peak_rss_bytes"] for result in results)),
        }
    print(f"{'tool':<10}{'median s':>10}{'peak RSS MB':>13}  runs (s)")
    for tool in runs:
        entry = report[tool]
        megabytes = entry["median_peak_rss_bytes"] / 1e6
        print(f"{tool:<10}{entry['median_seconds']:>10.2f}{megabytes:>13.0f}  {entry['seconds']}")
    if "mergekit" in runs:
        ours, theirs = report["sdd-data"], report["mergekit"]
        report["mergekit_over_sdd_data_time"] = round(theirs["median_seconds"] / ours["median_seconds"], 2)
        report["mergekit_over_sdd_data_rss"] = round(theirs["median_peak_rss_bytes"] / ours["median_peak_rss_bytes"], 2)
        time_ratio, memory_ratio = report["mergekit_over_sdd_data_time"], report["mergekit_over_sdd_data_rss"]
        print(f"mergekit / sdd-data: {time_ratio}x time, {memory_ratio}x peak memory")
    else:
        report["mergekit"] = "not installed: give --mergekit-yaml or put mergekit-yaml on PATH"
        print("mergekit is not installed: only sdd-data was timed")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
