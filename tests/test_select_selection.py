"""PASER selection end to end, the baselines and the written report."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sdd_data.errors import SddError
from sdd_data.select import SELECTORS, ClusterConfig, SelectConfig, select_rows
from sdd_data.select.report import report_table, write_report


def dataset(n_rows: int = 240, n_blobs: int = 4, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_blobs, 64))
    truth = rng.integers(0, n_blobs, n_rows)
    embeddings = (centres[truth] + 0.3 * rng.normal(size=(n_rows, 64))).astype(np.float32)
    degradation = rng.gamma(2.0, 0.1, n_rows) * (1 + truth)
    prompt_tokens = rng.integers(5, 80, n_rows)
    response_tokens = rng.integers(5, 300, n_rows)
    instructions = [f"task {row} about topic{truth[row]} item{row}" for row in range(n_rows)]
    return embeddings, degradation, prompt_tokens, response_tokens, instructions


@pytest.mark.parametrize("budget, expected", [(60, 60), (0.5, 120), (1.0, 240), (10_000, 240)])
def test_paser_selects_exactly_the_budget(budget, expected):
    result = select_rows(*dataset(), config=SelectConfig(budget=budget))
    assert result.selected.sum() == expected
    assert result.report["n_clusters"] == 4
    assert sum(row["budget"] for row in result.report["clusters"]) == expected
    assert set(result.reason) <= {"selected", "budget_exhausted"}


def test_budgets_follow_cluster_degradation_and_ies_order_within_clusters():
    embeddings, degradation, prompt_tokens, response_tokens, instructions = dataset()
    result = select_rows(
        embeddings, degradation, prompt_tokens, response_tokens, instructions, config=SelectConfig(budget=60)
    )
    clusters = sorted(result.report["clusters"], key=lambda row: row["mean_degradation"])
    assert [row["budget"] for row in clusters] == sorted(row["budget"] for row in clusters)
    for cluster in range(result.report["n_clusters"]):
        members = result.cluster == cluster
        chosen, left = result.ies[members & result.selected], result.ies[members & ~result.selected]
        assert chosen.min() >= left.max()
        assert sorted(result.rank[members].tolist()) == list(range(1, members.sum() + 1))


def test_conflicts_and_duplicates_are_skipped_and_their_budget_moves_on():
    embeddings, degradation, prompt_tokens, response_tokens, instructions = dataset(n_rows=40, n_blobs=2)
    degradation = np.linspace(2.0, 1.0, 40)
    texts = [f"Fact{row} holds in place{row}." for row in range(40)]
    texts[0], texts[1], texts[2] = (
        "Water boils at 100 degrees.",
        "Ice melts above 50 degrees.",
        "Water boils at 50 degrees.",
    )
    instructions = [f"distinct instruction number {row} " + "x" * row for row in range(40)]
    instructions[3] = instructions[0] + "!"
    embeddings[:] = embeddings[0]
    embeddings += np.random.default_rng(0).normal(scale=1e-3, size=embeddings.shape).astype(np.float32)
    config = SelectConfig(budget=36, clustering=ClusterConfig(n_clusters=1))
    result = select_rows(embeddings, degradation, np.full(40, 10), np.full(40, 10), instructions, texts, config)
    assert result.reason[2] == "concept_conflict:50 degree|water boil"
    assert result.reason[3] == "near_duplicate_of:0"
    assert result.selected.sum() == 36
    assert result.report["concept_conflicts"] == 1 and result.report["near_duplicates"] == 1


def test_budget_left_by_conflicts_moves_to_other_clusters():
    embeddings, degradation, prompt_tokens, response_tokens, _ = dataset(n_rows=200, n_blobs=2, seed=1)
    instructions = [f"instruction {row} " + "y" * (row % 37) for row in range(200)]
    config = SelectConfig(budget=120, dedupe=False)
    clusters = select_rows(embeddings, degradation, prompt_tokens, response_tokens, instructions, config=config).cluster
    # Rows of cluster 0 pair 4 × 5 recurring concepts, so most of them conflict; cluster 1 never does.
    texts = [f"Alpha{row % 4}. Beta{row % 5}." if clusters[row] == 0 else f"Gamma{row}." for row in range(200)]
    result = select_rows(embeddings, degradation, prompt_tokens, response_tokens, instructions, texts, config)
    conflicts = sum(reason.startswith("concept_conflict:") for reason in result.reason)
    assert conflicts > 20
    assert result.report["fill_rounds"] > 1
    assert result.selected.sum() == 120


@pytest.mark.parametrize("method", ["random", "longest", "degradation", "paser"])
def test_every_method_is_deterministic_and_shares_the_result_shape(method):
    config = SelectConfig(budget=30, method=method, seed=5)
    first, second = select_rows(*dataset(), config=config), select_rows(*dataset(), config=config)
    assert np.array_equal(first.selected, second.selected)
    assert first.selected.sum() == 30 and len(first.reason) == 240
    assert set(first.columns()) == {"selected", "cluster", "degradation", "ies", "rank", "reason"}


def test_baselines_pick_what_their_names_say():
    embeddings, degradation, prompt_tokens, response_tokens, instructions = dataset()
    rows = (embeddings, degradation, prompt_tokens, response_tokens, instructions)
    longest = select_rows(*rows, config=SelectConfig(budget=10, method="longest"))
    assert set(longest.selected_indices) == set(np.argsort(-response_tokens, kind="stable")[:10])
    highest = select_rows(*rows, config=SelectConfig(budget=10, method="degradation"))
    assert set(highest.selected_indices) == set(np.argsort(-degradation)[:10])
    other_seed = select_rows(*rows, config=SelectConfig(budget=10, method="random", seed=6))
    same_seed = select_rows(*rows, config=SelectConfig(budget=10, method="random", seed=5))
    assert not np.array_equal(other_seed.selected, same_seed.selected)
    assert set(SELECTORS) == {"paser", "random", "longest", "degradation"}


def test_bad_inputs_are_refused():
    embeddings, degradation, prompt_tokens, response_tokens, instructions = dataset()
    with pytest.raises(SddError, match="unknown selection method"):
        select_rows(
            embeddings, degradation, prompt_tokens, response_tokens, instructions, config=SelectConfig(method="best")
        )
    with pytest.raises(SddError, match="one entry per row"):
        select_rows(embeddings[:10], degradation, prompt_tokens, response_tokens, instructions)
    with pytest.raises(SddError, match="non-negative"):
        select_rows(embeddings, -degradation, prompt_tokens, response_tokens, instructions)
    with pytest.raises(SddError, match="budget"):
        select_rows(
            embeddings, degradation, prompt_tokens, response_tokens, instructions, config=SelectConfig(budget=0)
        )


def test_report_json_table_and_png(tmp_path):
    result = select_rows(*dataset(), config=SelectConfig(budget=40))
    paths = write_report(result, tmp_path)
    assert json.loads(paths["json"].read_text())["selected"] == 40
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = report_table(result)
    assert "eigengap" in table and "mean_degradation" in table


def test_the_config_flattens_into_documented_options():
    from sdd_data.config import build_config, leaf_fields

    leaves = leaf_fields(SelectConfig)
    assert all(doc for _, _, doc in leaves.values())
    config = build_config(SelectConfig, {"budget": 500, "cluster_mode": "exact", "n_clusters": 3})
    assert config.budget == "500" and build_config(SelectConfig, {"budget": 0.2}).budget == "0.2"
    assert config.clustering.cluster_mode == "exact" and config.clustering.n_clusters == 3
