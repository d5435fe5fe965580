"""A dataset distilled by the real SmolLM2 teacher round-trips through the Hub look-alike."""

import datasets
import pyarrow.parquet as pq
import pytest
from hub_fixtures import TOKEN
from huggingface_hub import DatasetCard

from sdd_data.data.sources import SourceSpec
from sdd_data.distill.stage import DistillConfig, distill
from sdd_data.engines.base import DecodingConfig
from sdd_data.publish.stage import PublishConfig, publish

pytestmark = pytest.mark.slow


def test_a_smollm2_distilled_dataset_round_trips(hub, smollm2_path, tmp_path):
    run = distill(
        DistillConfig(
            source=SourceSpec(data="example", limit=8),
            teacher=smollm2_path,
            output=str(tmp_path / "run"),
            decoding=DecodingConfig(max_new_tokens=48),
        ),
        show_progress=False,
    ).output
    publish(PublishConfig(distilled=str(run), repo_id="tester/smol-example", license="apache-2.0"))

    loaded = datasets.load_dataset("tester/smol-example", "example", split="train")
    expected = pq.read_table(run / "distilled.parquet").to_pylist()
    assert sorted(loaded["id"]) == sorted(row["id"] for row in expected)
    by_id = {row["id"]: row for row in loaded}
    for row in expected:
        assert by_id[row["id"]]["messages"] == row["messages"]
        assert by_id[row["id"]]["decision"] == row["decision"]

    card = DatasetCard.load("tester/smol-example", repo_type="dataset")
    assert card.data.license == "apache-2.0"
    assert "SmolLM2-135M-Instruct" in card.text
    assert "dequantized to float32 from GGUF Q4_1" in card.text  # the converted checkpoint, given by its path
    assert TOKEN not in card.content
