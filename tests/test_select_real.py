"""Selection with the real SmolLM2 teacher and a depth-pruned copy, on 200 Alpaca rows (slow)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from data_samples import ALPACA

pytestmark = pytest.mark.slow

ROWS = 200
# Two 135M models score about 150 tokens/s each on one busy CPU core: the 200-row stage runs use the
# cheap instruction mode (about 15 tokens per row); the response mode is checked on RESPONSE_ROWS rows.
MODE = "instruction"
RESPONSE_ROWS = 24
MAX_LENGTH = 64
# A 4-cycle of concepts (water boil - 100 degree - ice melt - 50 degree - water boil): in any order,
# the row visited last finds both of its concepts known but never accepted together.
# Their instructions are stopwords only, so the only concepts they bring are those of their answers.
PLANTED = [
    ("What is it?", "Water boils at 100 degrees."),
    ("Why is that?", "Ice melts above 50 degrees."),
    ("How is this?", "Water boils at 50 degrees."),
    ("Where is it?", "Ice melts at 100 degrees."),
]
PLANTED_CONCEPTS = {"water boil", "100 degree", "ice melt", "50 degree"}


@pytest.fixture(scope="module")
def rows_file(tmp_path_factory) -> Path:
    rows = json.loads(ALPACA.read_text())[:ROWS]
    rows += [{"instruction": instruction, "input": "", "output": output} for instruction, output in PLANTED]
    path = tmp_path_factory.mktemp("alpaca") / "alpaca_planted.json"
    path.write_text(json.dumps(rows))
    return path


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("select-cache")


def stage_config(rows_file, cache, original, pruned, output, budget):
    from sdd_data.data.sources import SourceSpec
    from sdd_data.select.selection import SelectConfig
    from sdd_data.select.stage import SelectStageConfig

    return SelectStageConfig(
        source=SourceSpec(data=str(rows_file)),
        original_model=original,
        pruned_model=pruned,
        output=str(output),
        cache_dir=str(cache),
        max_length=MAX_LENGTH,
        batch_size=16,
        degradation=MODE,
        selection=SelectConfig(budget=budget),
    )


@pytest.fixture(scope="module")
def selection(rows_file, cache, smollm2_path, pruned_smollm2_path, tmp_path_factory):
    from sdd_data.select.stage import select

    output = tmp_path_factory.mktemp("selected") / "alpaca-50"
    return select(stage_config(rows_file, cache, smollm2_path, pruned_smollm2_path, output, "50"))


def test_the_stage_selects_exactly_the_row_budget(selection):
    import datasets

    selected = datasets.load_from_disk(str(selection.output / "data"))
    assert len(selected) == 50
    assert {"instruction", "input", "response", "cluster", "degradation", "ies", "rank", "selection_reason"} <= set(
        selected.column_names
    )
    report = json.loads((selection.output / "report.json").read_text())
    assert sum(row["budget"] for row in report["clusters"]) == 50 == report["selected"]
    assert report["rows"] == ROWS + len(PLANTED)
    provenance = json.loads((selection.output / "sdd_data.json").read_text())
    assert provenance["scorer"]["scored_rows"] == ROWS + len(PLANTED)
    assert provenance["pruned_model"]["name"].endswith("pruned")


@pytest.mark.parametrize("mode", ["response", "instruction"])
def test_the_pruned_copy_degrades_and_the_original_against_itself_does_not(mode, smollm2_path, pruned_smollm2_path):
    import transformers

    from sdd_data.data.sources import SourceSpec, load_rows
    from sdd_data.select.score_inputs import scoring_rows
    from sdd_data.select.scorer_base import ScorerOptions
    from sdd_data.select.transformers_scorer import TransformersScorer

    rows = load_rows(SourceSpec(data=str(ALPACA), limit=RESPONSE_ROWS)).rows
    tokenizer = transformers.AutoTokenizer.from_pretrained(smollm2_path)
    scored = scoring_rows(tokenizer, rows, mode, MAX_LENGTH)
    options = ScorerOptions(batch_size=RESPONSE_ROWS)
    itself = TransformersScorer(smollm2_path, smollm2_path, options).score(scored)
    pruned = TransformersScorer(smollm2_path, pruned_smollm2_path, options).score(scored)
    assert np.abs(itself).max() <= 1e-6
    assert (pruned > itself + 1e-3).all()
    assert 0.01 < pruned.mean() < np.log(2)


def test_the_concept_filter_rejects_a_planted_contradiction(
    rows_file, cache, smollm2_path, pruned_smollm2_path, tmp_path
):
    from sdd_data.select.stage import select

    everything = select(
        stage_config(rows_file, cache, smollm2_path, pruned_smollm2_path, tmp_path / "all", "100%"), show_progress=False
    )
    assert everything.provenance["scorer"]["scored_rows"] == 0  # every score came from the cache
    planted = everything.result.reason[ROWS:]
    conflicts = [reason for reason in planted if reason.startswith("concept_conflict:")]
    assert conflicts, planted
    assert set(conflicts[0].split(":", 1)[1].split("|")) <= PLANTED_CONCEPTS
    outcome = pq.read_table(tmp_path / "all" / "outcome.parquet").to_pylist()
    assert outcome[ROWS + planted.index(conflicts[0])]["selected"] is False
