"""Approximate k-nearest neighbours in linear memory, for the sparse affinity graph.

Rows are first projected onto their leading principal components, then split into about √N
cells by a few seeded k-means steps on a sample. Each cell's rows are compared only with the rows
of the `probes` cells whose centres lie nearest to its own centre, in blocks, so time grows like
N·√N·probes and memory like N·k. Up to `exact_below` rows there is one cell: the search is exact.
Blocks run on up to 8 threads, one per usable CPU; the result is the same with any number of threads.
"""

from __future__ import annotations

import contextlib
import os
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

from sdd_data.errors import require

_SAMPLE_ROWS = 20_000
_BLOCK_ENTRIES = 1 << 23
_CELL_STEPS = 8
_MAX_WORKERS = 8


def principal_components(points: np.ndarray, dims: int, seed: int) -> np.ndarray:
    """The rows projected onto their `dims` leading principal components (unchanged if dims is 0 or ≥ d)."""
    if dims <= 0 or dims >= points.shape[1]:
        return points
    rng = np.random.default_rng(seed)
    sample = points[rng.choice(len(points), min(len(points), _SAMPLE_ROWS), replace=False)]
    mean = sample.mean(axis=0, dtype=np.float64)
    centred = sample - mean
    _, vectors = np.linalg.eigh(centred.T.astype(np.float64) @ centred)
    basis = vectors[:, ::-1][:, :dims].astype(np.float32)
    mean = mean.astype(np.float32)
    projected = np.empty((len(points), dims), dtype=np.result_type(points, basis))
    step = max(1, _BLOCK_ENTRIES // points.shape[1])
    for start in range(0, len(points), step):
        projected[start : start + step] = (points[start : start + step] - mean) @ basis
    return projected


def _nearest_centre(points: np.ndarray, centres: np.ndarray) -> np.ndarray:
    half_norms = 0.5 * np.einsum("ij,ij->i", centres, centres)
    labels = np.empty(len(points), dtype=np.int64)
    step = max(1, _BLOCK_ENTRIES // len(centres))
    for start in range(0, len(points), step):
        labels[start : start + step] = np.argmax(points[start : start + step] @ centres.T - half_norms, axis=1)
    return labels


def _cell_centres(points: np.ndarray, n_cells: int, rng: np.random.Generator) -> np.ndarray:
    """A few Lloyd steps on a sample: rough centres are enough to route the search."""
    sample = points[rng.choice(len(points), min(len(points), max(_SAMPLE_ROWS, 30 * n_cells)), replace=False)]
    centres = sample[rng.choice(len(sample), n_cells, replace=False)].copy()
    for _ in range(_CELL_STEPS):
        labels = _nearest_centre(sample, centres)
        sums = np.zeros_like(centres)
        np.add.at(sums, labels, sample)
        counts = np.bincount(labels, minlength=n_cells)
        filled = counts > 0
        centres[filled] = sums[filled] / counts[filled, None]
    return centres


def _probe_lists(centres: np.ndarray, cells: list[np.ndarray], probes: int, k: int) -> list[np.ndarray]:
    """Per cell: itself first, then the nearest other cells until `probes` cells and > k rows."""
    squared = np.einsum("ij,ij->i", centres, centres)
    distances = squared[:, None] + squared[None, :] - 2 * centres @ centres.T
    sizes = np.array([len(cell) for cell in cells])
    lists = []
    for cell, row in enumerate(distances):
        order = np.argsort(row, kind="stable")
        order = np.concatenate([[cell], order[order != cell]])
        enough = np.cumsum(sizes[order]) > k
        stop = max(probes, int(np.argmax(enough)) + 1 if enough.any() else len(order))
        lists.append(order[:stop])
    return lists


def _workers() -> int:
    """Threads for the block search: the usable CPUs, at most `_MAX_WORKERS` (each holds one block)."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(_MAX_WORKERS, usable))


def nearest_neighbours(
    points: np.ndarray, k: int, seed: int, probes: int = 8, exact_below: int = 5_000
) -> tuple[np.ndarray, np.ndarray]:
    """(indices, squared distances), both N×k: each row's k nearest other rows, nearest first."""
    n_rows = len(points)
    rng = np.random.default_rng(seed)
    n_cells = 1 if n_rows <= exact_below else int(round(np.sqrt(n_rows)))
    if n_cells == 1:
        labels, centres = np.zeros(n_rows, dtype=np.int64), points[:1]
    else:
        centres = _cell_centres(points, n_cells, rng)
        labels = _nearest_centre(points, centres)
    order = np.argsort(labels, kind="stable")
    bounds = np.searchsorted(labels[order], np.arange(n_cells + 1))
    cells = [order[bounds[cell] : bounds[cell + 1]] for cell in range(n_cells)]
    squared_norms = np.einsum("ij,ij->i", points, points)
    indices = np.empty((n_rows, k), dtype=np.int64)
    distances = np.empty((n_rows, k), dtype=np.float32)

    def search(queries: np.ndarray, start: int, candidates: np.ndarray, candidate_points: np.ndarray) -> None:
        """The k nearest candidates of each query; the queries are candidates start, start + 1, ..."""
        # |q|² is the same along a row, so it is added only to the k kept distances.
        block = points[queries] @ candidate_points.T
        block *= -2
        block += squared_norms[candidates]
        own = np.arange(len(queries))
        block[own, start + own] = np.inf
        nearest = np.argpartition(block, k - 1, axis=1)[:, :k]
        nearest_distances = np.take_along_axis(block, nearest, axis=1) + squared_norms[queries, None]
        by_distance = np.argsort(nearest_distances, axis=1, kind="stable")
        indices[queries] = candidates[np.take_along_axis(nearest, by_distance, axis=1)]
        distances[queries] = np.maximum(np.take_along_axis(nearest_distances, by_distance, axis=1), 0)

    # Blocks run on a few threads (numpy releases the GIL in the matrix product and the partition); each
    # writes its own rows, so the result does not depend on the threads. Few blocks wait at a time.
    workers = _workers()
    # One BLAS thread per block when several blocks run at once: more would only compete for the cores.
    single_blas = require("threadpoolctl", "select").threadpool_limits(1, user_api="blas") if workers > 1 else None
    with single_blas or contextlib.nullcontext(), ThreadPoolExecutor(workers) as pool:
        pending: deque[Future] = deque()
        for cell, probe in zip(cells, _probe_lists(centres, cells, probes, k)):
            if len(cell) == 0:
                continue
            candidates = np.concatenate([cells[other] for other in probe])
            candidate_points = points[candidates]
            step = max(1, _BLOCK_ENTRIES // len(candidates))
            for start in range(0, len(cell), step):
                pending.append(pool.submit(search, cell[start : start + step], start, candidates, candidate_points))
                while len(pending) > 2 * workers:
                    pending.popleft().result()
        for task in pending:
            task.result()
    return indices, distances
