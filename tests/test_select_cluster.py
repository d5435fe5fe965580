"""Exact and scalable spectral clustering on well-separated synthetic blobs."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from sdd_data.errors import SddError
from sdd_data.select.cluster import ClusterConfig, cluster_rows, eigengap_clusters
from sdd_data.select.neighbors import nearest_neighbours


def blobs(n_rows: int = 300, n_blobs: int = 5, dims: int = 384, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_blobs, dims))
    truth = rng.integers(0, n_blobs, n_rows)
    points = centres[truth] + 0.5 * rng.normal(size=(n_rows, dims))
    return points.astype(np.float32), truth


@pytest.mark.parametrize("mode", ["exact", "scalable"])
def test_each_mode_finds_the_five_blobs(mode):
    points, truth = blobs()
    clustering = cluster_rows(points, ClusterConfig(cluster_mode=mode), seed=0)
    assert clustering.n_clusters == 5
    assert clustering.k_rule.startswith("eigengap")
    assert adjusted_rand_score(truth, clustering.labels) >= 0.9


def test_exact_and_scalable_modes_agree():
    points, _ = blobs()
    exact = cluster_rows(points, ClusterConfig(cluster_mode="exact"), seed=0)
    scalable = cluster_rows(points, ClusterConfig(cluster_mode="scalable"), seed=0)
    assert adjusted_rand_score(exact.labels, scalable.labels) >= 0.9


def test_the_paper_nmf_assignment_and_a_fixed_k():
    points, truth = blobs()
    clustering = cluster_rows(points, ClusterConfig(cluster_mode="exact", assign="nmf", n_clusters=5), seed=0)
    assert clustering.k_rule == "fixed"
    assert adjusted_rand_score(truth, clustering.labels) >= 0.9


def test_clustering_is_deterministic_for_a_seed():
    points, _ = blobs(seed=3)
    first = cluster_rows(points, ClusterConfig(), seed=7)
    second = cluster_rows(points, ClusterConfig(), seed=7)
    assert np.array_equal(first.labels, second.labels)


def test_disconnected_graphs_give_one_cluster_per_component():
    points, truth = blobs(n_rows=200, n_blobs=4)
    points[truth == 0] += 1000.0
    clustering = cluster_rows(points, ClusterConfig(knn=10), seed=0)
    assert clustering.n_clusters == 4
    assert adjusted_rand_score(truth, clustering.labels) >= 0.9


def test_fewer_rows_than_clusters_is_an_error():
    points, _ = blobs(n_rows=6)
    with pytest.raises(SddError, match="more rows than clusters"):
        cluster_rows(points, ClusterConfig(n_clusters=8))
    with pytest.raises(SddError, match="too few"):
        cluster_rows(points[:3], ClusterConfig())


def test_exact_mode_refuses_large_inputs_and_nmf_needs_it():
    points, _ = blobs(n_rows=50)
    with pytest.raises(SddError, match="scalable"):
        cluster_rows(points, ClusterConfig(cluster_mode="exact", exact_limit=40))
    with pytest.raises(SddError, match="exact"):
        cluster_rows(points, ClusterConfig(assign="nmf"))
    with pytest.raises(SddError, match="unknown clustering mode"):
        cluster_rows(points, ClusterConfig(cluster_mode="dense"))


def test_eigengap_rule():
    assert eigengap_clusters(np.array([0, 0, 0, 0.5, 0.6, 0.7]), max_clusters=4) == 3
    assert eigengap_clusters(np.array([0, 0.01, 0.02, 0.03, 0.9, 0.95]), max_clusters=4) == 4


def test_approximate_neighbours_match_the_exact_ones_on_clustered_data():
    rng = np.random.default_rng(1)
    centres = rng.normal(size=(30, 16))
    points = (centres[rng.integers(0, 30, 6000)] + 0.3 * rng.normal(size=(6000, 16))).astype(np.float32)
    approximate, _ = nearest_neighbours(points, 10, seed=0, exact_below=1000)
    exact, distances = nearest_neighbours(points, 10, seed=0, exact_below=10_000)
    assert (np.diff(distances, axis=1) >= 0).all()
    assert not (exact == np.arange(6000)[:, None]).any()
    recall = np.mean([len(set(a) & set(e)) / 10 for a, e in zip(approximate, exact)])
    assert recall >= 0.9
