"""CLI start-up benchmark: `sdd-data --help` and `sdd-data <stage> --help` against a bare interpreter start.

Each command runs in a fresh interpreter, alternating with the baseline (`python -c "import argparse"`),
and the median wall time of each is taken. A run under `python -X importtime` then lists the slowest
imports of `sdd-data --help` (cumulative microseconds) and whether torch, transformers, vLLM or pyarrow
were among them.

Goal: `sdd-data --help` in under 1 s, with none of the heavy libraries imported.

    python benchmarks/bench_startup.py [--repeats 7]

Prints a table and writes benchmarks/results/startup.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

HEAVY = ("torch", "transformers", "vllm", "pyarrow")
COMMANDS = {
    "baseline: python -c 'import argparse'": ["-c", "import argparse"],
    "sdd-data --help": ["-m", "sdd_data.cli", "--help"],
    "sdd-data distill --help": ["-m", "sdd_data.cli", "distill", "--help"],
    "sdd-data eval --help": ["-m", "sdd_data.cli", "eval", "--help"],
}


def wall_seconds(arguments: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, *arguments], check=True, capture_output=True)
    return time.perf_counter() - started


def slowest_imports(count: int = 8) -> tuple[list[tuple[str, int]], list[str]]:
    """The slowest imports of `sdd-data --help` by cumulative time, and which heavy libraries were imported."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "sdd_data.cli", "--help"], check=True, capture_output=True, text=True
    )
    rows = []
    for line in result.stderr.splitlines():
        if line.startswith("import time:") and "|" in line and "cumulative" not in line:
            _, cumulative, name = (part.strip() for part in line.removeprefix("import time:").split("|"))
            rows.append((name, int(cumulative)))
    heavy = sorted({name.split(".")[0] for name, _ in rows} & set(HEAVY))
    return sorted(rows, key=lambda row: -row[1])[:count], heavy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()

    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for _ in range(args.repeats):
        for name, arguments in COMMANDS.items():
            times[name].append(wall_seconds(arguments))
    medians = {name: statistics.median(values) for name, values in times.items()}
    baseline = medians[next(iter(COMMANDS))]
    imports, heavy = slowest_imports()

    print(f"{'command':<40} {'median s':>9} {'x baseline':>11}")
    for name, median in medians.items():
        print(f"{name:<40} {median:>9.3f} {median / baseline:>11.2f}")
    print(f"\nheavy libraries imported by `sdd-data --help`: {', '.join(heavy) or 'none'}")
    print("slowest imports of `sdd-data --help` (cumulative µs):")
    for name, microseconds in imports:
        print(f"  {microseconds:>9}  {name}")
    goal_met = medians["sdd-data --help"] < 1.0 and not heavy
    print(f"\ngoal (< 1 s, no heavy import): {'met' if goal_met else 'NOT met'}")

    output = Path(__file__).parent / "results" / "startup.json"
    output.parent.mkdir(exist_ok=True)
    report = {
        "repeats": args.repeats,
        "median_seconds": medians,
        "ratio_to_baseline": {name: median / baseline for name, median in medians.items()},
        "heavy_imported": heavy,
        "slowest_imports_us": dict(imports),
        "goal_met": goal_met,
    }
    output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {output}")


if __name__ == "__main__":
    main()
