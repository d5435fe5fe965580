"""Selection benchmark: PASER time and peak memory on synthetic rows, up to a million, and the rates of the
steps before it (embedding, degradation scoring) on real rows.

Each measurement runs in its own subprocess (so peak RSS is its own).

- Sizes: 384-d embeddings from a mixture of 30 Gaussians of uneven sizes (unit-normalised), gamma
  degradation scores that differ by cluster, random token counts and 10-word instructions with 2% planted
  near-duplicates. The full PASER selection runs at a 20% budget (clustering, dedupe, IES, concept graph),
  scalable and exact clustering. Peak memory is the process's RSS high-water mark; "+MiB" is that minus the
  RSS before selection (the inputs).
- A million rows (`--million`): the same selection on 1,000,000 such rows, seconds per phase and peak RSS;
  then the recall of the approximate neighbour search: for `--recall-queries` random rows, the share of
  their true k nearest neighbours (brute force, in the search's own principal-component space and in the
  full 384-d space) that the search returned.
- Subsample (`--subsample`): a random subsample of the million rows clustered twice, with the exact
  neighbour search (one cell) and with the approximate one; the adjusted Rand index between the two, and
  of each against the true mixture.
- Rates on real Alpaca rows: all-MiniLM-L6-v2 embedding of the user turns (`--embed-rows`), and
  degradation scoring of `--score-rows` rows (response mode, max 1,024 tokens) by SmolLM2-135M-Instruct
  against a copy with blocks 20-23 removed, per scorer engine (`--engines`). The vllm scorer starts both
  engines on every call, so it is timed on a few rows and on all of them; the difference gives the rate.

    python benchmarks/bench_select.py [--sizes 10000 50000 100000] [--exact-sizes 2000 5000 10000]
        [--million 1000000] [--recall-queries 1000] [--subsample 50000] [--embed-rows 2000]
        [--score-rows 200] [--engines transformers vllm] [--threads N]

A size list may be empty and a count 0 to skip that part. Prints tables and writes
benchmarks/results/select.json (parts not run keep their earlier results there).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results" / "select.json"
ALPACA = Path(__file__).resolve().parents[2] / "shared" / "data" / "alpaca" / "alpaca_2k.json"
N_MIXTURE = 30
BUDGET = 0.2
PRUNED_BLOCKS = (20, 21, 22, 23)
VLLM_FIRST_ROWS = 16
NOISE_CHUNK = 65_536


def synthetic_rows(n_rows: int, seed: int = 0):
    """Embeddings, degradation, token counts, instructions and the true mixture component per row."""
    import numpy as np

    rng = np.random.default_rng(seed)
    weights = rng.dirichlet(np.full(N_MIXTURE, 2.0))
    truth = rng.choice(N_MIXTURE, n_rows, p=weights)
    centres = rng.normal(size=(N_MIXTURE, 384)).astype(np.float32)
    embeddings = centres[truth]
    # The noise is drawn in chunks (the same numbers as one draw) to keep float64 temporaries small.
    for start in range(0, n_rows, NOISE_CHUNK):
        block = embeddings[start : start + NOISE_CHUNK]
        block += rng.normal(scale=1.2, size=block.shape).astype(np.float32)
        block /= np.linalg.norm(block, axis=1, keepdims=True)
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


def _select(inputs: list, mode: str) -> tuple[dict, object]:
    """One PASER selection at the benchmark's budget; its timings, memory and result."""
    from sdd_data.select import ClusterConfig, SelectConfig, select_rows

    before = _rss_mib()
    config = SelectConfig(budget=BUDGET, clustering=ClusterConfig(cluster_mode=mode))
    started = time.perf_counter()
    result = select_rows(*inputs, config=config)
    seconds = time.perf_counter() - started
    row = {
        "mode": mode,
        "rows": len(inputs[1]),
        "seconds": round(seconds, 2),
        "phases": {name: round(value, 2) for name, value in result.report["seconds"].items()},
        "peak_rss_mib": round(_rss_mib(), 1),
        "selection_rss_mib": round(_rss_mib() - before, 1),
        "n_clusters": result.report["n_clusters"],
        "selected": result.report["selected"],
    }
    return row, result


def run_one(mode: str, n_rows: int) -> dict:
    """One selection in this process; returns its timings, memory and clustering quality."""
    from sklearn.metrics import adjusted_rand_score

    *inputs, truth = synthetic_rows(n_rows)
    row, result = _select(inputs, mode)
    return {**row, "ari_vs_mixture": round(adjusted_rand_score(truth, result.cluster), 3)}


def _brute_force_neighbours(points, queries, k: int):
    """The k nearest other rows of each query row, by comparing it with every row."""
    import numpy as np

    squared_norms = np.einsum("ij,ij->i", points, points)
    found = np.empty((len(queries), k), dtype=np.int64)
    for start in range(0, len(queries), 64):
        block = queries[start : start + 64]
        distances = squared_norms[None, :] - 2 * (points[block] @ points.T)
        distances[np.arange(len(block)), block] = np.inf
        found[start : start + len(block)] = np.argpartition(distances, k - 1, axis=1)[:, :k]
    return found


def neighbour_recall(embeddings, n_queries: int, seed: int = 0) -> dict:
    """Recall of the selection's approximate neighbour search on random query rows, against brute force."""
    import numpy as np

    from sdd_data.select import ClusterConfig
    from sdd_data.select.neighbors import nearest_neighbours, principal_components

    config = ClusterConfig()
    started = time.perf_counter()
    points = principal_components(embeddings, config.knn_dims, seed)
    indices, _ = nearest_neighbours(points, config.knn, seed, exact_below=config.knn_exact_below)
    search_seconds = time.perf_counter() - started
    queries = np.random.default_rng(seed + 1).choice(len(points), n_queries, replace=False)

    def recall(truth) -> float:
        found = indices[queries]
        return float(np.mean([len(set(mine) & set(true)) / config.knn for mine, true in zip(found, truth)]))

    return {
        "queries": n_queries,
        "k": config.knn,
        "search_seconds": round(search_seconds, 2),
        "recall_in_search_space": round(recall(_brute_force_neighbours(points, queries, config.knn)), 4),
        "recall_in_embedding_space": round(recall(_brute_force_neighbours(embeddings, queries, config.knn)), 4),
    }


def run_million(n_rows: int, n_queries: int) -> dict:
    """The selection on n_rows synthetic rows, then the neighbour recall on the same rows."""
    from sklearn.metrics import adjusted_rand_score

    *inputs, truth = synthetic_rows(n_rows)
    row, result = _select(inputs, "scalable")
    row["ari_vs_mixture"] = round(adjusted_rand_score(truth, result.cluster), 3)
    del result
    if n_queries:
        row["neighbour_recall"] = neighbour_recall(inputs[0], n_queries)
    return row


def run_subsample(n_rows: int, n_sample: int, seed: int = 0) -> dict:
    """The selection's clustering of a random subsample, with the exact and the approximate neighbour search."""
    import numpy as np
    from sklearn.metrics import adjusted_rand_score

    from sdd_data.select import ClusterConfig
    from sdd_data.select.cluster import cluster_rows

    embeddings, *_, truth = synthetic_rows(n_rows)
    chosen = np.sort(np.random.default_rng(seed + 2).choice(n_rows, n_sample, replace=False))
    sample, sample_truth = np.ascontiguousarray(embeddings[chosen]), truth[chosen]
    del embeddings
    runs = {}
    for name, exact_below in (("exact", n_sample), ("approximate", ClusterConfig().knn_exact_below)):
        started = time.perf_counter()
        clustering = cluster_rows(sample, ClusterConfig(knn_exact_below=exact_below), seed)
        runs[name] = {
            "seconds": round(time.perf_counter() - started, 2),
            "n_clusters": clustering.n_clusters,
            "labels": clustering.labels,
            "ari_vs_mixture": round(adjusted_rand_score(sample_truth, clustering.labels), 4),
        }
    agreement = adjusted_rand_score(runs["exact"]["labels"], runs["approximate"]["labels"])
    for run in runs.values():
        del run["labels"]
    return {"rows": n_sample, "drawn_from": n_rows, "ari_exact_vs_approximate": round(agreement, 4), **runs}


def _alpaca_rows(n_rows: int) -> list[dict]:
    rows = json.loads(ALPACA.read_text())[:n_rows]
    return [{"instruction": row["instruction"], "input": row["input"], "response": row["output"]} for row in rows]


def embed_rate(n_rows: int) -> dict:
    """all-MiniLM-L6-v2 on the user turns of n_rows Alpaca rows, with an empty cache (model load included)."""
    from sdd_data.data.records import user_prompt
    from sdd_data.select.embed import embed_texts

    texts = [user_prompt(row["instruction"], row["input"]) for row in _alpaca_rows(n_rows)]
    with tempfile.TemporaryDirectory() as cache:
        started = time.perf_counter()
        embed_texts(texts, cache_dir=cache, show_progress=False)
        seconds = time.perf_counter() - started
    return {"rows": len(texts), "seconds": round(seconds, 2), "rows_per_second": round(len(texts) / seconds, 1)}


def score_rate(engine: str, n_rows: int) -> dict:
    """Degradation scoring of n_rows Alpaca rows (response mode) by SmolLM2 against its pruned copy."""
    from sdd_data.models import load_tokenizer, resolve_model
    from sdd_data.prune import save_pruned_checkpoint
    from sdd_data.select.score_inputs import scoring_rows
    from sdd_data.select.scorer_base import ScorerOptions
    from sdd_data.select.scorers import SCORERS

    original = resolve_model("smollm2").path
    rows = scoring_rows(load_tokenizer(original), _alpaca_rows(n_rows), "response", 1024)
    tokens = sum(len(row.token_ids) for row in rows)
    with tempfile.TemporaryDirectory() as folder:
        pruned = str(save_pruned_checkpoint(original, PRUNED_BLOCKS, Path(folder) / "pruned"))
        started = time.perf_counter()
        scorer = SCORERS.get(engine)(original, pruned, ScorerOptions())
        load_seconds = time.perf_counter() - started
        timings = []
        for part in (rows[:VLLM_FIRST_ROWS], rows) if engine == "vllm" else (rows,):
            started = time.perf_counter()
            scorer.score(part)
            timings.append(time.perf_counter() - started)
        description = scorer.describe()
        scorer.close()
    result = {
        "engine": engine,
        "rows": len(rows),
        "tokens": tokens,
        "dtype": description.get("dtype"),
        "load_seconds": round(load_seconds, 2),
        "seconds": round(timings[-1], 2),
    }
    if engine == "vllm":
        # Each call starts both engines: the rate is the extra rows over the extra seconds.
        marginal = timings[1] - timings[0]
        result |= {"first_rows": VLLM_FIRST_ROWS, "first_seconds": round(timings[0], 2)}
        result["rows_per_second"] = round((len(rows) - VLLM_FIRST_ROWS) / marginal, 2)
        first_tokens = sum(len(row.token_ids) for row in rows[:VLLM_FIRST_ROWS])
        result["tokens_per_second"] = round((tokens - first_tokens) / marginal, 1)
    else:
        result["rows_per_second"] = round(len(rows) / timings[0], 2)
        result["tokens_per_second"] = round(tokens / timings[0], 1)
    return result


CHILDREN = {
    "size": lambda mode, rows: run_one(mode, int(rows)),
    "million": lambda rows, queries: run_million(int(rows), int(queries)),
    "subsample": lambda rows, sample: run_subsample(int(rows), int(sample)),
    "embed": lambda rows: embed_rate(int(rows)),
    "score": lambda engine, rows: score_rate(engine, int(rows)),
}


def run_child(threads: int | None, *args: object) -> dict:
    """One measurement in a fresh interpreter; its JSON result."""
    env = dict(os.environ)
    if threads:
        env.update({name: str(threads) for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")})
    completed = subprocess.run(
        [sys.executable, __file__, "--child", *map(str, args)], env=env, capture_output=True, text=True, check=False
    )
    if completed.returncode != 0:
        raise SystemExit(f"{' '.join(map(str, args))} failed:\n{completed.stderr[-3000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def _sizes(args: argparse.Namespace) -> list[dict]:
    runs = [("scalable", size) for size in args.sizes] + [("exact", size) for size in args.exact_sizes]
    results = []
    if runs:
        print(f"{'mode':>9} {'rows':>8} {'seconds':>8} {'cluster s':>9} {'RSS MiB':>8} {'+MiB':>7} {'K':>3} {'ARI':>6}")
    for mode, size in runs:
        row = run_child(args.threads, "size", mode, size)
        results.append(row)
        cluster_seconds = row["phases"].get("cluster_spectral", 0) + row["phases"].get("cluster_assign", 0)
        print(
            f"{mode:>9} {size:>8} {row['seconds']:>8.2f} {cluster_seconds:>9.2f} {row['peak_rss_mib']:>8.0f} "
            f"{row['selection_rss_mib']:>7.0f} {row['n_clusters']:>3} {row['ari_vs_mixture']:>6.3f}",
            flush=True,
        )
    return results


def _print_million(row: dict) -> None:
    phases = ", ".join(f"{name} {value:.1f}" for name, value in row["phases"].items())
    print(
        f"{row['rows']:,} rows: {row['seconds']:.1f} s ({phases}), peak RSS {row['peak_rss_mib'] / 1024:.2f} GiB "
        f"(+{row['selection_rss_mib'] / 1024:.2f} GiB over the inputs), K = {row['n_clusters']}, "
        f"ARI vs mixture {row['ari_vs_mixture']:.3f}",
        flush=True,
    )
    recall = row.get("neighbour_recall")
    if recall:
        print(
            f"  neighbour recall@{recall['k']} on {recall['queries']} queries: "
            f"{recall['recall_in_search_space']:.3f} (search space), {recall['recall_in_embedding_space']:.3f} "
            f"(384-d); search {recall['search_seconds']:.1f} s",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[10_000, 50_000, 100_000])
    parser.add_argument("--exact-sizes", type=int, nargs="*", default=[2_000, 5_000, 10_000])
    parser.add_argument("--million", type=int, default=1_000_000, help="rows of the large run (0 skips it)")
    parser.add_argument("--recall-queries", type=int, default=1_000, help="query rows of the recall check")
    parser.add_argument("--subsample", type=int, default=50_000, help="rows clustered with both searches (0 skips)")
    parser.add_argument("--embed-rows", type=int, default=2_000, help="Alpaca rows embedded (0 skips)")
    parser.add_argument("--score-rows", type=int, default=200, help="Alpaca rows scored per engine (0 skips)")
    parser.add_argument("--engines", nargs="*", default=["transformers", "vllm"], help="scorer engines timed")
    parser.add_argument("--threads", type=int, default=None, help="BLAS/OpenMP threads (default: library default)")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(CHILDREN[args.child[0]](*args.child[1:])))
        return
    results = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    results |= {"machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "threads": args.threads}}
    results["budget"] = BUDGET

    def save() -> None:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(results, indent=2) + "\n")

    if args.sizes or args.exact_sizes:
        results["runs"] = _sizes(args)
        save()
    large = results.setdefault("million", {})
    if args.million:
        large["selection"] = run_child(args.threads, "million", args.million, args.recall_queries)
        _print_million(large["selection"])
        save()
    if args.million and args.subsample:
        large["subsample"] = sample = run_child(args.threads, "subsample", args.million, args.subsample)
        print(
            f"{sample['rows']:,}-row subsample: ARI exact vs approximate search "
            f"{sample['ari_exact_vs_approximate']:.4f}; "
            f"vs mixture {sample['exact']['ari_vs_mixture']:.4f} (exact, {sample['exact']['seconds']:.1f} s) and "
            f"{sample['approximate']['ari_vs_mixture']:.4f} (approximate, {sample['approximate']['seconds']:.1f} s)",
            flush=True,
        )
        save()
    rates = results.setdefault("rates", {})
    if args.embed_rows:
        rates["embed"] = embed = run_child(args.threads, "embed", args.embed_rows)
        print(f"embedding: {embed['rows']} rows in {embed['seconds']:.1f} s, {embed['rows_per_second']:.1f} rows/s")
        save()
    for engine in args.engines if args.score_rows else []:
        rates[f"score_{engine}"] = score = run_child(args.threads, "score", engine, args.score_rows)
        print(
            f"scoring ({engine}): {score['rows']} rows, {score['tokens']} tokens in {score['seconds']:.1f} s, "
            f"{score['rows_per_second']:.2f} rows/s, {score['tokens_per_second']:.0f} tokens/s",
            flush=True,
        )
        save()
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
