"""Semantic-structural clustering (PASER's S2RIC) of instruction embeddings, in two modes.

Both modes build an affinity graph A, take the symmetric normalised Laplacian
L_sym = I − D^{-1/2} A D^{-1/2}, embed every row with the eigenvectors of its smallest
eigenvalues (computed as the largest of D^{-1/2} A D^{-1/2}), rescale them by D^{-1/2} (the
random-walk eigenvectors the paper uses) and assign clusters on that spectral embedding.

- `exact` (the paper's kernel, N ≤ `exact_limit`): dense A_ij = exp(−d_ij²/2σ²) with σ the median
  pairwise distance, dense `scipy.linalg.eigh` on the wanted eigenvalues only. Memory N².
- `scalable`: sparse, symmetrised kNN graph with self-tuning weights
  A_ij = exp(−d_ij²/σ_iσ_j) (σ_i: distance to the k-th neighbour) or one global σ (the median kNN
  distance), `scipy.sparse.linalg.eigsh`. Memory and time near-linear in N.

Number of clusters (when not set): the eigengap rule, K = argmax over 2 ≤ k ≤ max_clusters of
λ_{k+1} − λ_k on the ascending eigenvalues of L_sym. A graph with c ≤ max_clusters connected
components has exactly c zero eigenvalues, so K = c: components are never merged.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from sdd_data.errors import SddError, require
from sdd_data.registry import Registry
from sdd_data.select.config import ClusterConfig
from sdd_data.select.neighbors import nearest_neighbours, principal_components

_MEDIAN_PAIRS = 1_000_000
_REGULARISATION = 1e-3


@dataclass
class Clustering:
    """Cluster labels (0..K-1) per row and how they were found."""

    labels: np.ndarray
    n_clusters: int
    k_rule: str
    eigenvalues: np.ndarray
    """The smallest eigenvalues of L_sym, ascending."""
    mode: str
    seconds: dict[str, float] = field(default_factory=dict)


@dataclass
class SpectralEmbedding:
    """Eigenvectors of D^{-1/2} A D^{-1/2}, matching `eigenvalues` (L_sym, ascending), and D^{-1/2}."""

    vectors: np.ndarray
    eigenvalues: np.ndarray
    inverse_sqrt_degree: np.ndarray


SpectralMode = Callable[[np.ndarray, ClusterConfig, int, int], SpectralEmbedding]
Assigner = Callable[[SpectralEmbedding, int, int], np.ndarray]


def _ascending(values: np.ndarray, vectors: np.ndarray, degree: np.ndarray) -> SpectralEmbedding:
    """Largest eigenpairs of D^{-1/2}AD^{-1/2} as the smallest of L_sym = I − D^{-1/2}AD^{-1/2}."""
    order = np.argsort(-values, kind="stable")
    return SpectralEmbedding(vectors[:, order], np.clip(1.0 - values[order], 0.0, 2.0), 1.0 / np.sqrt(degree))


def exact_spectral(embeddings: np.ndarray, config: ClusterConfig, wanted: int, seed: int) -> SpectralEmbedding:
    """Dense diffusion kernel with σ = median pairwise distance (estimated on up to 1M seeded pairs)."""
    linalg = require("scipy.linalg", "select")
    n_rows = len(embeddings)
    if n_rows > config.exact_limit:
        raise SddError(
            f"the exact clustering mode takes at most {config.exact_limit} rows (N² memory), "
            f"got {n_rows}; use --cluster-mode scalable"
        )
    points = embeddings.astype(np.float32)
    squared_norms = np.einsum("ij,ij->i", points, points)
    kernel = points @ points.T
    kernel *= -2
    kernel += squared_norms[:, None]
    kernel += squared_norms[None, :]
    np.maximum(kernel, 0, out=kernel)
    rng = np.random.default_rng(seed)
    first, second = rng.integers(0, n_rows, (2, _MEDIAN_PAIRS))
    distinct = first != second
    sigma_squared = float(np.median(kernel[first[distinct], second[distinct]])) or 1.0
    kernel *= -1 / (2 * sigma_squared)
    np.exp(kernel, out=kernel)
    np.fill_diagonal(kernel, 0)
    degree = np.maximum(kernel.sum(axis=1, dtype=np.float64), np.finfo(np.float32).tiny)
    scale = (1 / np.sqrt(degree)).astype(np.float32)
    kernel *= scale[:, None]
    kernel *= scale[None, :]
    values, vectors = linalg.eigh(
        kernel, subset_by_index=[n_rows - wanted, n_rows - 1], overwrite_a=True, check_finite=False
    )
    return _ascending(values.astype(np.float64), vectors, degree)


def _knn_affinity(embeddings: np.ndarray, config: ClusterConfig, seed: int):
    sparse = require("scipy.sparse", "select")
    if config.sigma not in ("local", "median"):
        raise SddError(f"unknown sigma {config.sigma!r}; known: local, median")
    k = min(config.knn, len(embeddings) - 1)
    points = principal_components(np.asarray(embeddings, dtype=np.float32), config.knn_dims, seed)
    indices, squared = nearest_neighbours(points, k, seed, config.knn_probes, config.knn_exact_below)
    squared = squared.astype(np.float64)
    if config.sigma == "local":
        sigma = np.sqrt(squared[:, -1])
        sigma = np.where(sigma > 0, sigma, max(float(sigma.max()), 1e-12))
        weights = np.exp(-squared / (sigma[:, None] * sigma[indices]))
    else:
        weights = np.exp(-squared / (2 * max(float(np.median(squared)), 1e-24)))
    n_rows = len(points)
    directed = sparse.csr_matrix(
        (weights.ravel(), indices.ravel(), np.arange(0, n_rows * k + 1, k)), shape=(n_rows, n_rows)
    )
    return directed.maximum(directed.T).tocsr()


def scalable_spectral(embeddings: np.ndarray, config: ClusterConfig, wanted: int, seed: int) -> SpectralEmbedding:
    """Sparse kNN graph, eigenpairs by ARPACK on a rank-one regularised D^{-1/2}AD^{-1/2}.

    The regulariser (τ/N)·11ᵀ with τ = 10⁻³ × mean degree links every pair of rows a little, so a
    disconnected graph keeps a simple top eigenvalue and its components still show as eigenvalues of
    L_sym near 0; it is applied as an operator, never stored.
    """
    sparse_linalg = require("scipy.sparse.linalg", "select")
    affinity = _knn_affinity(embeddings, config, seed)
    n_rows = affinity.shape[0]
    tau = _REGULARISATION * affinity.sum() / n_rows
    degree = np.asarray(affinity.sum(axis=1)).ravel() + tau
    scale = 1 / np.sqrt(degree)
    normalised = affinity.multiply(scale[:, None]).multiply(scale[None, :]).tocsr()

    def apply(block: np.ndarray) -> np.ndarray:
        block = block.reshape(n_rows, -1)
        return normalised @ block + (tau / n_rows) * np.outer(scale, scale @ block)

    operator = sparse_linalg.LinearOperator((n_rows, n_rows), matvec=apply, matmat=apply, dtype=np.float64)
    values, vectors = sparse_linalg.eigsh(
        operator, k=wanted, which="LA", tol=1e-4, ncv=min(n_rows, max(3 * wanted, 20)), v0=np.sqrt(degree)
    )
    return _ascending(values, vectors, degree)


def _row_normalised(spectral: SpectralEmbedding, n_clusters: int) -> np.ndarray:
    rows = spectral.vectors[:, :n_clusters] * spectral.inverse_sqrt_degree[:, None]
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    return rows / np.where(norms > 0, norms, 1)


def kmeans_assign(spectral: SpectralEmbedding, n_clusters: int, seed: int) -> np.ndarray:
    """k-means (4 seeded restarts) on the row-normalised spectral embedding."""
    cluster = require("sklearn.cluster", "select")
    model = cluster.KMeans(n_clusters=n_clusters, n_init=4, random_state=seed)
    return model.fit_predict(_row_normalised(spectral, n_clusters))


def nmf_assign(spectral: SpectralEmbedding, n_clusters: int, seed: int) -> np.ndarray:
    """The paper's assignment: NMF of S = |V Vᵀ| (N×N), label = argmax of each row of W."""
    decomposition = require("sklearn.decomposition", "select")
    vectors = spectral.vectors[:, :n_clusters] * spectral.inverse_sqrt_degree[:, None]
    similarity = np.abs(vectors @ vectors.T)
    model = decomposition.NMF(n_components=n_clusters, init="random", random_state=seed, max_iter=400)
    return np.argmax(model.fit_transform(similarity), axis=1)


CLUSTER_MODES: Registry[SpectralMode] = Registry(
    "clustering mode", {"exact": exact_spectral, "scalable": scalable_spectral}
)
"""Mode name -> function (embeddings, config, eigenpairs wanted, seed) -> spectral embedding."""
ASSIGNERS: Registry[Assigner] = Registry("cluster assignment", {"kmeans": kmeans_assign, "nmf": nmf_assign})
"""Assignment name -> function (spectral embedding, K, seed) -> labels."""


def eigengap_clusters(eigenvalues: np.ndarray, max_clusters: int) -> int:
    """K = argmax over 2 ≤ k ≤ max_clusters of λ_{k+1} − λ_k (eigenvalues ascending)."""
    gaps = np.diff(eigenvalues[: max_clusters + 1])
    return int(np.argmax(gaps[1:max_clusters])) + 2


def _compact(labels: np.ndarray) -> np.ndarray:
    """Labels renumbered 0..K-1 by first appearance, so empty clusters leave no holes."""
    _, first, inverse = np.unique(labels, return_index=True, return_inverse=True)
    return np.argsort(np.argsort(first))[inverse]


def cluster_rows(embeddings: np.ndarray, config: ClusterConfig, seed: int = 0) -> Clustering:
    """Cluster the rows of an N×d embedding matrix (seeded and deterministic)."""
    if config.cluster_mode not in CLUSTER_MODES:
        raise SddError(f"unknown clustering mode {config.cluster_mode!r}; known: {', '.join(CLUSTER_MODES.names())}")
    if config.assign not in ASSIGNERS:
        raise SddError(f"unknown cluster assignment {config.assign!r}; known: {', '.join(ASSIGNERS.names())}")
    if config.assign == "nmf" and config.cluster_mode != "exact":
        raise SddError("the nmf assignment needs N² memory: use it with --cluster-mode exact")
    if embeddings.ndim != 2 or not np.isfinite(embeddings).all():
        raise SddError("embeddings must be a finite N×d matrix")
    n_rows = len(embeddings)
    fixed = config.n_clusters
    if fixed is not None and fixed < 1:
        raise SddError(f"n_clusters must be at least 1, got {fixed}")
    if fixed is not None and n_rows <= fixed:
        raise SddError(f"{n_rows} rows cannot be split into {fixed} clusters: need more rows than clusters")
    # The eigengap rule needs λ(k+1), so at most N − 2 clusters can be told apart.
    max_clusters = min(config.max_clusters, n_rows - 2)
    if fixed is None and max_clusters < 2:
        raise SddError(
            f"{n_rows} rows are too few to pick a number of clusters (need at least 4, "
            f"and max_clusters ≥ 2, got {config.max_clusters})"
        )
    started = time.perf_counter()
    if fixed == 1:
        spectral = None
    else:
        wanted = fixed if fixed is not None else max_clusters + 1
        spectral = CLUSTER_MODES.get(config.cluster_mode)(embeddings, config, wanted, seed)
    embedded = time.perf_counter()
    if fixed is None:
        n_clusters = eigengap_clusters(spectral.eigenvalues, max_clusters)
        rule = f"eigengap: argmax of λ(k+1) − λ(k) of L_sym over 2 ≤ k ≤ {max_clusters}"
    else:
        n_clusters, rule = fixed, "fixed"
    labels = (
        ASSIGNERS.get(config.assign)(spectral, n_clusters, seed)
        if spectral is not None
        else np.zeros(n_rows, dtype=np.int64)
    )
    labels = _compact(np.asarray(labels))
    finished = time.perf_counter()
    return Clustering(
        labels=labels,
        n_clusters=int(labels.max()) + 1,
        k_rule=rule,
        eigenvalues=spectral.eigenvalues if spectral is not None else np.zeros(1),
        mode=config.cluster_mode,
        seconds={"spectral": embedded - started, "assign": finished - embedded},
    )
