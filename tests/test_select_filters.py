"""IES, key phrases, the concept consistency graph and near-duplicate instructions."""

from __future__ import annotations

import numpy as np
import pytest

from sdd_data.errors import SddError
from sdd_data.select.concepts import ConceptGraph, key_phrases, normalise_concept
from sdd_data.select.dedupe import near_duplicates
from sdd_data.select.rank import instruction_efficiency


def test_ies_divides_degradation_by_the_log_of_the_squared_token_count():
    ies = instruction_efficiency(np.array([1.0, 1.0, 2.0]), np.array([10, 0, 3]), np.array([90, 0, 0]))
    assert ies[0] == pytest.approx(1.0 / np.log(100.0**2))
    assert ies[1] == 1.0
    assert ies[2] == pytest.approx(2.0 / np.log(9.0))


def test_ies_refuses_mismatched_or_negative_counts():
    with pytest.raises(SddError, match="one value per row"):
        instruction_efficiency(np.ones(2), np.ones(3), np.ones(2))
    with pytest.raises(SddError, match="non-negative"):
        instruction_efficiency(np.ones(1), np.array([-1]), np.array([1]))


def test_key_phrases_split_at_stopwords_and_punctuation():
    phrases = key_phrases("Water boils at 100 degrees Celsius at sea level. Explain why.", top_k=3)
    assert phrases == ["100 degrees celsius", "water boils", "sea level"]
    assert normalise_concept("Water  Boils") == "water boil"
    assert normalise_concept("cities glass") == "city glass"


def _offer(graph: ConceptGraph, text: str):
    concepts = graph.concepts(text, top_k=6)
    conflict = graph.conflict(concepts)
    if conflict is None:
        graph.accept(concepts)
    return conflict


def test_a_planted_contradiction_is_a_conflict():
    graph = ConceptGraph()
    assert _offer(graph, "Water boils at 100 degrees.") is None
    assert _offer(graph, "Ice melts above 50 degrees.") is None
    assert _offer(graph, "Water boils at 50 degrees.") == ("50 degree", "water boil")
    assert _offer(graph, "The waters boil at 100 degrees!") is None
    assert _offer(graph, "Water boils at sea level.") is None


def test_near_duplicate_concepts_merge_into_the_existing_vertex():
    graph = ConceptGraph(merge_score=90)
    graph.accept(["photosynthesis process"])
    assert graph.canonical("photosynthesis proces") == "photosynthesis process"
    assert graph.canonical("photography") == "photography"


def test_near_duplicate_instructions_keep_the_best_copy():
    instructions = [
        "Write a poem about the sea.",
        "write a poem about the sea",
        "Name three fruits.",
        "Name three fruits that are red.",
        "The sea: write a poem about",
        "Write a poem about the seas!",
    ]
    duplicate_of = near_duplicates(instructions, priority=np.array([0, 5, 0, 0, 0, 0]))
    assert duplicate_of.tolist() == [1, -1, -1, -1, 1, 1]


def test_near_duplicates_are_found_among_many_rows():
    rng = np.random.default_rng(0)
    words = [f"word{i}" for i in range(500)]
    instructions = [" ".join(rng.choice(words, 8)) for _ in range(5000)]
    planted = {row: instructions[row] + "." for row in range(0, 5000, 50)}
    duplicate_of = near_duplicates(instructions + list(planted.values()))
    assert (duplicate_of[5000:] == np.array(list(planted))).all()
    assert (duplicate_of[:5000] == -1).all()
