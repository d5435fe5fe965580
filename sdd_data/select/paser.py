"""PASER selection: cluster, share the budget by cluster degradation, fill clusters greedily by IES.

1. Cluster the instruction embeddings (`cluster.py`); CDS_k = mean degradation of cluster k.
2. Drop near-duplicate instructions, keeping the copy with the highest IES (`dedupe.py`).
3. Quotas n_k ∝ CDS_k by largest remainder, capped by each cluster's rows (`budget.py`).
4. Visit clusters by descending CDS, each one's rows by descending IES; a row is skipped when its
   concepts conflict with the concept graph of rows accepted so far (`concepts.py`), else selected,
   until the cluster meets its quota or runs out of rows.
5. When conflicts leave quotas unmet, the missing rows are shared again (step 3) among clusters that
   still have unvisited rows, and step 4 resumes where each cluster stopped. So the selection reaches
   the budget whenever enough rows pass the filters in this greedy order.
"""

from __future__ import annotations

import time

import numpy as np

from sdd_data.select.budget import allocate_budget
from sdd_data.select.cluster import cluster_rows
from sdd_data.select.concepts import ConceptGraph
from sdd_data.select.config import SelectConfig
from sdd_data.select.dedupe import near_duplicates
from sdd_data.select.rank import instruction_efficiency
from sdd_data.select.selection import SelectionInputs, SelectionResult


class _GreedyFill:
    """Walks each cluster's candidates in IES order, accepting rows the concept graph allows."""

    def __init__(self, queues: list[np.ndarray], inputs: SelectionInputs, config: SelectConfig, reason: list[str]):
        self.queues = queues
        self.position = np.zeros(len(queues), dtype=np.int64)
        self.taken = np.zeros(len(queues), dtype=np.int64)
        self.texts = inputs.texts
        self.top_k = config.phrases_per_row
        self.graph = ConceptGraph(config.concept_merge_score) if config.concepts else None
        self.reason = reason

    def unvisited(self) -> np.ndarray:
        return np.array([len(queue) for queue in self.queues]) - self.position

    def fill(self, cluster: int, target: int) -> None:
        """Accept rows of `cluster` until it has `target` or no candidates are left."""
        queue = self.queues[cluster]
        while self.taken[cluster] < target and self.position[cluster] < len(queue):
            row = int(queue[self.position[cluster]])
            self.position[cluster] += 1
            if self.graph is not None:
                concepts = self.graph.concepts(self.texts[row], self.top_k)
                conflict = self.graph.conflict(concepts)
                if conflict is not None:
                    self.reason[row] = f"concept_conflict:{conflict[0]}|{conflict[1]}"
                    continue
                self.graph.accept(concepts)
            self.reason[row] = "selected"
            self.taken[cluster] += 1


def _cluster_table(
    labels: np.ndarray,
    cds: np.ndarray,
    quotas: np.ndarray,
    fill: _GreedyFill,
    duplicates: np.ndarray,
    reason: list[str],
) -> list[dict]:
    conflicts = np.bincount(
        labels, weights=[text.startswith("concept_conflict:") for text in reason], minlength=len(cds)
    )
    return [
        {
            "cluster": cluster,
            "size": int((labels == cluster).sum()),
            "mean_degradation": float(cds[cluster]),
            "budget": int(quotas[cluster]),
            "selected": int(fill.taken[cluster]),
            "near_duplicates": int(duplicates[cluster]),
            "concept_conflicts": int(conflicts[cluster]),
        }
        for cluster in range(len(cds))
    ]


def paser_selection(inputs: SelectionInputs, config: SelectConfig, budget: int) -> SelectionResult:
    """PASER: clustering, CDS budgets with redistribution, IES order, near-duplicate and concept filters."""
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    clustering = cluster_rows(inputs.embeddings, config.clustering, config.seed)
    seconds.update({f"cluster_{name}": value for name, value in clustering.seconds.items()})
    labels, n_rows = clustering.labels, len(inputs.degradation)
    ies = instruction_efficiency(inputs.degradation, inputs.prompt_tokens, inputs.response_tokens)
    checkpoint = time.perf_counter()
    duplicate_of = (
        near_duplicates(inputs.instructions, config.dedupe_threshold, priority=ies)
        if config.dedupe
        else np.full(n_rows, -1)
    )
    seconds["dedupe"] = time.perf_counter() - checkpoint
    checkpoint = time.perf_counter()

    sizes = np.bincount(labels, minlength=clustering.n_clusters)
    cds = np.bincount(labels, weights=inputs.degradation, minlength=clustering.n_clusters) / sizes
    by_cluster_then_ies = np.lexsort((np.arange(n_rows), -ies, labels))
    rank = np.empty(n_rows, dtype=np.int64)
    rank[by_cluster_then_ies] = np.arange(n_rows) - np.repeat(np.cumsum(sizes) - sizes, sizes) + 1
    candidates = by_cluster_then_ies[duplicate_of[by_cluster_then_ies] < 0]
    queues = np.split(candidates, np.cumsum(np.bincount(labels[candidates], minlength=clustering.n_clusters))[:-1])

    reason = [f"near_duplicate_of:{kept}" if kept >= 0 else "budget_exhausted" for kept in duplicate_of]
    fill = _GreedyFill(queues, inputs, config, reason)
    quotas = allocate_budget(budget, cds, fill.unvisited())
    initial_quotas = quotas.copy()
    cluster_order = np.argsort(-cds, kind="stable")
    rounds = 0
    while True:
        rounds += 1
        for cluster in cluster_order:
            fill.fill(int(cluster), int(quotas[cluster]))
        missing = budget - int(fill.taken.sum())
        unvisited = fill.unvisited()
        if missing == 0 or unvisited.sum() == 0:
            break
        quotas = fill.taken + allocate_budget(missing, cds, unvisited)
    seconds["greedy"] = time.perf_counter() - checkpoint
    seconds["paser"] = time.perf_counter() - started

    selected = np.array([text == "selected" for text in reason])
    duplicates = np.bincount(labels, weights=duplicate_of >= 0, minlength=clustering.n_clusters)
    report = {
        "method": "paser",
        "rows": n_rows,
        "budget": budget,
        "selected": int(selected.sum()),
        "shortfall": budget - int(selected.sum()),
        "n_clusters": clustering.n_clusters,
        "k_rule": clustering.k_rule,
        "cluster_mode": clustering.mode,
        "eigenvalues": [round(float(value), 6) for value in clustering.eigenvalues],
        "near_duplicates": int((duplicate_of >= 0).sum()),
        "concept_conflicts": sum(text.startswith("concept_conflict:") for text in reason),
        "concept_vertices": len(fill.graph.edges) if fill.graph is not None else 0,
        "fill_rounds": rounds,
        "clusters": _cluster_table(labels, cds, initial_quotas, fill, duplicates, reason),
        "seconds": seconds,
    }
    return SelectionResult(
        method="paser",
        budget=budget,
        selected=selected,
        cluster=labels,
        degradation=inputs.degradation,
        ies=ies,
        rank=rank,
        reason=reason,
        report=report,
    )
