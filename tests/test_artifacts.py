"""Stage outputs are recognised one way (`artifacts.detect`), and every dataset-holding output reads the same."""

from __future__ import annotations

import json
from pathlib import Path

import datasets
import pytest

from sdd_data import artifacts
from sdd_data.data.sources import SourceSpec
from sdd_data.data.stage_data import read_stage_dataset
from sdd_data.errors import SddError
from sdd_data.publish import PublishConfig, publish
from sdd_data.select import SelectConfig, SelectStageConfig, select
from sdd_data.train.data import load_training_rows


@pytest.fixture
def selected(distilled: Path, tiny_llama_path: str, tmp_path: Path) -> Path:
    """A random selection of two rows made from the finished distill run (no clustering: the run is small)."""
    return random_selection(distilled, tiny_llama_path, tmp_path)


def random_selection(data: Path, model: str, tmp_path: Path) -> Path:
    """Two rows of `data` chosen at random (no clustering, the inputs are small) by the select stage."""
    config = SelectStageConfig(
        source=SourceSpec(data=str(data)),
        pruned_model=model,
        original_model=model,
        output=str(tmp_path / "selected"),
        cache_dir=str(tmp_path / "cache"),
        max_length=64,
        selection=SelectConfig(method="random", budget="2"),
    )
    return select(config, show_progress=False).output


def test_each_stage_output_is_detected_by_its_marker(distilled, tmp_path, tiny_llama_path):
    assert artifacts.detect(distilled) == artifacts.StageOutput(distilled, artifacts.DISTILL_RUN, True)
    assert artifacts.detect(tiny_llama_path).kind == artifacts.MODEL
    eval_folder = tmp_path / "eval"
    eval_folder.mkdir()
    (eval_folder / artifacts.EVAL_RESULTS).write_text("{}")
    assert artifacts.detect(eval_folder).kind == artifacts.EVAL_RESULTS_KIND
    assert artifacts.detect(tmp_path / "missing") is None and artifacts.detect(distilled / "stats.json") is None
    (distilled / artifacts.STATS_FILE).unlink()
    assert artifacts.detect(distilled) == artifacts.StageOutput(distilled, artifacts.DISTILL_RUN, False)
    with pytest.raises(SddError, match="unfinished distill output; rerun `sdd-data distill`"):
        read_stage_dataset(distilled)


def test_a_select_output_holds_the_selection_and_the_distill_runs_provenance(distilled, selected):
    assert artifacts.detect(selected).kind == artifacts.SELECT_OUTPUT
    rows = read_stage_dataset(selected)
    assert rows.table.num_rows == 2 and {"cluster", "rank", "selection_reason"} <= set(rows.table.column_names)
    distill_stats = json.loads((distilled / artifacts.STATS_FILE).read_text())
    assert rows.provenance["source"]["distill_stats"] == distill_stats
    assert len(load_training_rows(str(selected)).conversations) == 2
    with pytest.raises(SddError, match="selected rows only"):
        read_stage_dataset(selected, "dropped")


def test_publish_takes_a_select_output_and_records_the_selection(selected, tmp_path):
    published = tmp_path / "published"
    result = publish(PublishConfig(distilled=str(selected), output_dir=str(published), config_name="picked"))
    assert result.written[0].startswith("data/picked/train-") and not any("dropped" in path for path in result.written)
    assert artifacts.detect(published).kind == artifacts.PUBLISHED
    card = (published / artifacts.CARD_FILE).read_text()
    assert "### Selection" in card and "Method `random`, budget 2" in card
    provenance = json.loads((published / artifacts.PROVENANCE_FILE).read_text())["configs"]["picked"]
    assert provenance["selection"]["selected"] == 2 and provenance["teacher"]["name"] == "teacher"
    reread = read_stage_dataset(published)
    assert reread.config_name == "picked" and reread.table.num_rows == 2
    assert len(datasets.load_dataset(str(published), "picked", split="train")) == 2


def test_a_selection_of_raw_data_cannot_be_published(tiny_llama_path, tmp_path):
    rows = tmp_path / "rows.jsonl"
    rows.write_text(
        "".join(json.dumps({"instruction": f"q{i}", "input": "", "output": f"a{i}"}) + "\n" for i in range(3))
    )
    selected = random_selection(rows, tiny_llama_path, tmp_path)
    with pytest.raises(SddError, match="no distill run made"):
        publish(PublishConfig(distilled=str(selected), output_dir=str(tmp_path / "published")))


def test_other_folders_are_not_datasets(tmp_path, tiny_llama_path):
    with pytest.raises(SddError, match="is not a distill run, a select output or a published folder"):
        read_stage_dataset(tiny_llama_path)
    with pytest.raises(SddError, match="neither a distill run nor a select output"):
        publish(PublishConfig(distilled=str(tmp_path), output_dir=str(tmp_path / "out")))
