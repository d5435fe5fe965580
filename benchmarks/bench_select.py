"""Selection benchmark: PASER time and peak memory on synthetic rows, scalable vs exact clustering.

Each size runs in its own subprocess (so peak RSS is its own): 384-d embeddings from a mixture of
30 Gaussians of uneven sizes (unit-normalised), gamma degradation scores that differ by cluster,
random token counts and 10-word instructions with 2% planted near-duplicates. The full PASER
selection runs at a 20% budget (clustering, dedupe, IES, concept graph). Peak memory is the
process's RSS high-water mark during selection minus its RSS before it (the inputs).

    python benchmarks/bench_select.py [--sizes 10000 50000 100000] [--exact-sizes 2000 5000 10000]
                                      [--threads 1]

Prints a table and writes benchmarks/results/select.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results" / "select.json"
N_MIXTURE = 30


def synthetic_rows(n_rows: int, seed: int = 0):
    """Embeddings, degradation, token counts, instructions and the true mixture component per row."""
    import numpy as np

    rng = np.random.default_rng(seed)
    weights = rng.dirichlet(np.full(N_MIXTURE, 2.0))
    truth = rng.choice(N_MIXTURE, n_rows, p=weights)
    centres = rng.normal(size=(N_MIXTURE, 384)).astype(np.float32)
    embeddings = centres[truth]
    embeddings += rng.normal(scale=1.2, size=(n_rows, 384)).astype(np.float32)
    embeddings /= np.linalg.norm(embeddings, axis=1, keepdims=True)
    degradation = rng.gamma(2.0, 0.05, n_rows) * rng.uniform(0.2, 2.0, N_MIXTURE)[truth]
    prompt_tokens = rng.integers(8, 200, n_rows)
    response_tokens = rng.integers(16, 600, n_rows)
    vocabulary = [f"w{index}" for index in range(3000)]
    instructions = [" ".join(words) for words in rng.choice(vocabulary, (n_rows, 10))]
    for row in rng.choice(n_rows, n_rows // 50, replace=False):
        instructions[row] = instructions[row - 1] + "!"
    return embeddings, degradation, prompt_tokens, response_tokens, instructions, truth


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_one(mode: str, n_rows: int) -> dict:
    """One selection in this process; returns its timings, memory and clustering quality."""
    from sklearn.metrics import adjusted_rand_score

    from sdd_data.select import ClusterConfig, SelectConfig, select_rows

    rows = synthetic_rows(n_rows)
    *inputs, truth = rows
    before = _rss_mib()
    config = SelectConfig(budget=0.2, clustering=ClusterConfig(cluster_mode=mode))
    started = time.perf_counter()
    result = select_rows(*inputs, config=config)
    seconds = time.perf_counter() - started
    return {
        "mode": mode,
        "rows": n_rows,
        "seconds": round(seconds, 2),
        "phases": {name: round(value, 2) for name, value in result.report["seconds"].items()},
        "peak_rss_mib": round(_rss_mib(), 1),
        "selection_rss_mib": round(_rss_mib() - before, 1),
        "n_clusters": result.report["n_clusters"],
        "selected": result.report["selected"],
        "ari_vs_mixture": round(adjusted_rand_score(truth, result.cluster), 3),
    }


def run_in_subprocess(mode: str, n_rows: int, threads: int | None) -> dict:
    env = dict(os.environ)
    if threads:
        env.update({name: str(threads) for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")})
    completed = subprocess.run(
        [sys.executable, __file__, "--child", mode, str(n_rows)], env=env, capture_output=True, text=True, check=True
    )
    return json.loads(completed.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 50_000, 100_000])
    parser.add_argument("--exact-sizes", type=int, nargs="+", default=[2_000, 5_000, 10_000])
    parser.add_argument("--threads", type=int, default=None, help="BLAS/OpenMP threads (default: library default)")
    parser.add_argument("--child", nargs=2, metavar=("MODE", "ROWS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_one(args.child[0], int(args.child[1]))))
        return
    runs = [("scalable", size) for size in args.sizes] + [("exact", size) for size in args.exact_sizes]
    results = []
    print(f"{'mode':>9} {'rows':>8} {'seconds':>8} {'cluster s':>9} {'RSS MiB':>8} {'+MiB':>7} {'K':>3} {'ARI':>6}")
    for mode, size in runs:
        row = run_in_subprocess(mode, size, args.threads)
        results.append(row)
        cluster_seconds = row["phases"].get("cluster_spectral", 0) + row["phases"].get("cluster_assign", 0)
        print(
            f"{mode:>9} {size:>8} {row['seconds']:>8.2f} {cluster_seconds:>9.2f} {row['peak_rss_mib']:>8.0f} "
            f"{row['selection_rss_mib']:>7.0f} {row['n_clusters']:>3} {row['ari_vs_mixture']:>6.3f}",
            flush=True,
        )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "threads": args.threads},
                "budget": 0.2,
                "runs": results,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
