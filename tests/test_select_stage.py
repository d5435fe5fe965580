"""The embedding cache and the select stage on the tiny Llama: outputs, provenance and bad input."""

from __future__ import annotations

import json
import shutil

import datasets
import numpy as np
import pyarrow.parquet as pq
import pytest
import sentence_transformers
from data_samples import write_jsonl

from sdd_data.data.sources import SourceSpec
from sdd_data.errors import SddError
from sdd_data.select import embed as embed_module
from sdd_data.select.embed import embed_texts, resolve_embedder
from sdd_data.select.selection import SelectConfig
from sdd_data.select.stage import SelectStageConfig, select


@pytest.fixture
def encoded(monkeypatch):
    """Counts the texts the real sentence-transformers model is asked to embed."""
    seen: list[str] = []
    real_encode = sentence_transformers.SentenceTransformer.encode

    def counting_encode(self, sentences, *args, **kwargs):
        seen.extend(sentences)
        return real_encode(self, sentences, *args, **kwargs)

    monkeypatch.setattr(sentence_transformers.SentenceTransformer, "encode", counting_encode)
    return seen


def test_embeddings_are_normalised_and_cached_per_text(encoded, tmp_path):
    texts = ["Water boils at 100 degrees.", "Name three fruits.", "Water boils at 100 degrees."]
    first = embed_texts(texts, "minilm", cache_dir=tmp_path, show_progress=False)
    assert first.dtype == np.float32 and first.shape == (3, 384)
    assert np.allclose(np.linalg.norm(first, axis=1), 1.0, atol=1e-5)
    assert encoded == texts[:2]
    assert first[0] @ first[2] == pytest.approx(1.0) and first[0] @ first[1] < 0.5
    encoded.clear()
    again = embed_texts(texts[:2] + ["Name four fruits."], "all-MiniLM-L6-v2", cache_dir=tmp_path, show_progress=False)
    assert encoded == ["Name four fruits."]
    assert np.array_equal(again[:2], first[:2]) and again[2] @ first[1] > 0.8


@pytest.fixture
def embedder_digests(monkeypatch):
    """Counts how often an embedder folder is digested (each digest reads the whole folder)."""
    folders: list[str] = []
    real_digest = embed_module.model_folder_digest

    def counting_digest(folder):
        folders.append(str(folder))
        return real_digest(folder)

    monkeypatch.setattr(embed_module, "model_folder_digest", counting_digest)
    return folders


def test_an_embedder_folder_is_digested_only_when_its_identity_is_needed(embedder_digests, tmp_path):
    embedder = resolve_embedder("minilm")
    assert embedder.name == "all-MiniLM-L6-v2" and embedder_digests == []
    assert embedder.identity == embedder.identity and len(embedder_digests) == 1
    assert embedder.identity.startswith("all-MiniLM-L6-v2@")
    local = resolve_embedder(embedder.path)
    assert local.identity == f"local@{embedder.identity.split('@')[1]}"
    embed_texts(["Name three fruits."], "minilm", cache_dir=tmp_path, show_progress=False)
    assert len(embedder_digests) == 3


def test_unknown_embedders_are_clear_errors(tmp_path):
    with pytest.raises(SddError, match="does not exist"):
        resolve_embedder(str(tmp_path / "missing"))
    with pytest.raises(SddError, match="holds no sentence-transformers"):
        resolve_embedder(str(tmp_path))


def config(tmp_path, model, budget="12", **changes) -> SelectStageConfig:
    values = {
        "source": SourceSpec(data="example"),
        "original_model": model,
        "pruned_model": model,
        "output": str(tmp_path / "selected"),
        "cache_dir": str(tmp_path / "cache"),
        "max_length": 128,
        "selection": SelectConfig(budget=budget),
    }
    values.update(changes)
    return SelectStageConfig(**values)


@pytest.fixture(scope="module")
def variant(tiny_llama_path, tmp_path_factory):
    import torch
    import transformers

    model = transformers.AutoModelForCausalLM.from_pretrained(tiny_llama_path)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.mul_(1.3)
    path = tmp_path_factory.mktemp("tiny-scaled")
    model.save_pretrained(path, safe_serialization=True)
    transformers.AutoTokenizer.from_pretrained(tiny_llama_path).save_pretrained(path)
    return str(path)


def test_the_stage_writes_the_selection_report_and_provenance(
    tiny_llama_path, variant, tmp_path, capsys, embedder_digests
):
    stage_config = config(tmp_path, tiny_llama_path, pruned_model=variant)
    outcome = select(stage_config, show_progress=True)
    assert len(embedder_digests) == 1
    output = outcome.output
    selected = datasets.load_from_disk(str(output / "data"))
    assert len(selected) == 12
    source_columns = {"id", "source", "instruction", "input", "response", "reference_answer", "task", "meta"}
    assert set(selected.column_names) == source_columns | {"cluster", "degradation", "ies", "rank", "selection_reason"}
    assert all(reason.startswith("selected: cluster ") for reason in selected["selection_reason"])
    table = pq.read_table(output / "outcome.parquet")
    assert len(table) == 36 and sum(table.column("selected").to_pylist()) == 12
    assert (np.array(table.column("degradation").to_pylist()) > 0).all()
    provenance = json.loads((output / "sdd_data.json").read_text())
    assert provenance["counts"]["selected"] == 12 and provenance["scorer"]["note"].startswith("exact")
    assert provenance["scorer"]["scored_rows"] == 36
    report = json.loads((output / "report.json").read_text())
    assert sum(row["budget"] for row in report["clusters"]) == 12
    assert (output / "clusters.png").stat().st_size > 0
    assert "method paser: 12 of 36 rows selected" in capsys.readouterr().out

    with pytest.raises(SddError, match="not empty"):
        select(stage_config, show_progress=False)
    stage_config.overwrite = True
    stage_config.selection.budget = "25%"
    again = select(stage_config, show_progress=False)
    assert again.provenance["scorer"]["scored_rows"] == 0 and again.provenance["scorer"]["cached_rows"] == 36
    assert len(datasets.load_from_disk(str(output / "data"))) == 9
    assert not [path for path in output.parent.iterdir() if path.name.startswith(".")]

    remade = shutil.copytree(variant, tmp_path / "remade", copy_function=shutil.copyfile)  # new times, same model
    stage_config.pruned_model = str(remade)
    assert select(stage_config, show_progress=False).provenance["scorer"]["scored_rows"] == 0


@pytest.mark.parametrize(
    "budget, message",
    [("0", "budget must be positive"), ("many", "budget must be a row"), ("1.5", "fractional budget")],
)
def test_bad_budgets_fail_before_any_model_runs(tmp_path, budget, message):
    with pytest.raises(SddError, match=message):
        select(config(tmp_path, "/nonexistent/model", budget=budget), show_progress=False)


def test_bad_inputs_are_clear_errors(tiny_llama_path, tmp_path):
    few = tmp_path / "few.jsonl"
    write_jsonl(few, [{"instruction": f"q{i}", "response": f"a{i}"} for i in range(3)])
    with pytest.raises(SddError, match="too few to pick a number of clusters"):
        select(config(tmp_path, tiny_llama_path, source=SourceSpec(data=str(few))), show_progress=False)
    five = config(tmp_path, tiny_llama_path, source=SourceSpec(data="example", limit=5))
    five.selection.clustering.n_clusters = 5
    with pytest.raises(SddError, match="need more rows than clusters"):
        select(five, show_progress=False)
    no_responses = tmp_path / "questions.jsonl"
    no_responses.write_text(json.dumps({"instruction": "q"}) + "\n")
    with pytest.raises(SddError, match="selection scores responses"):
        select(config(tmp_path, tiny_llama_path, source=SourceSpec(data=str(no_responses))), show_progress=False)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{}")
    with pytest.raises(SddError, match="cannot load the tokenizer in .*broken"):
        select(config(tmp_path, tiny_llama_path, pruned_model=str(broken)), show_progress=False)
    with pytest.raises(SddError, match="does not exist"):
        select(config(tmp_path, tiny_llama_path, pruned_model=str(tmp_path / "missing")), show_progress=False)


def test_a_model_without_weights_is_a_clear_error(tiny_llama_path, tmp_path):
    import shutil

    weightless = tmp_path / "weightless"
    shutil.copytree(tiny_llama_path, weightless)
    for weights in weightless.glob("*.safetensors"):
        weights.unlink()
    with pytest.raises(SddError, match="cannot load the model in .*weightless: .*model.safetensors"):
        select(config(tmp_path, tiny_llama_path, pruned_model=str(weightless)), show_progress=False)
    assert not (tmp_path / "selected").exists()


def test_a_distill_run_folder_is_read_through_its_messages(tiny_llama_path, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    rows = [
        {
            "id": f"r{i}",
            "instruction": f"Question number {i} about topic {i % 3}?",
            "input": "",
            "response": "old",
            "decision": "dropped" if i == 0 else "rewrite",
            "messages": None
            if i == 0
            else [
                {"role": "user", "content": f"Question number {i} about topic {i % 3}?"},
                {"role": "assistant", "content": f"Answer {i}."},
            ],
        }
        for i in range(10)
    ]
    import pyarrow as pa

    table = pa.Table.from_pylist(rows)
    pq.write_table(table, run / "distilled.parquet")
    datasets.Dataset(table).save_to_disk(str(run / "data"))
    (run / "run.json").write_text(json.dumps({"identity": {}}))
    (run / "stats.json").write_text(json.dumps({"source": {"fingerprint": "abc"}}))
    outcome = select(
        config(tmp_path, tiny_llama_path, source=SourceSpec(data=str(run)), budget="4"), show_progress=False
    )
    selected = datasets.load_from_disk(str(outcome.output / "data"))
    assert len(selected) == 4 and "r0" not in selected["id"] and "messages" in selected.column_names
    assert outcome.provenance["counts"]["rows"] == 9 and outcome.provenance["counts"]["set_aside"] == 1
    dropped = pq.read_table(outcome.output / "outcome.parquet").to_pylist()[-1]
    assert dropped["id"] == "r0" and dropped["reason"] == "dropped_by_distill" and not dropped["selected"]


def test_rows_set_aside_before_selection_are_in_the_outcome(tiny_llama_path, variant, tmp_path):
    from sdd_data.data.sources import load_rows

    rows = [{key: row[key] for key in ("id", "instruction", "input", "response")} for row in
            load_rows(SourceSpec(data="example")).rows]  # fmt: skip
    rows += [{"id": "blank", "instruction": "Say nothing.", "input": "", "response": "  "},
             {"id": "no-question", "instruction": "", "input": "", "response": "An answer."}]  # fmt: skip
    data = tmp_path / "rows.jsonl"
    write_jsonl(data, rows)
    result = select(config(tmp_path, tiny_llama_path, pruned_model=variant, source=SourceSpec(data=str(data))),
                    show_progress=False)  # fmt: skip
    outcome = {row["id"]: row for row in pq.read_table(result.output / "outcome.parquet").to_pylist()}
    assert set(outcome) == {row["id"] for row in rows}
    assert outcome["blank"]["reason"] == "invalid_row:response_empty" and not outcome["blank"]["selected"]
    assert outcome["no-question"]["selection_reason"] == "set aside before selection: invalid_row:instruction_empty"
    assert outcome["blank"]["cluster"] is None and outcome["blank"]["degradation"] is None
    assert result.provenance["counts"]["set_aside"] == 2 and result.provenance["counts"]["selected"] == 12
    assert len(datasets.load_from_disk(str(result.output / "data"))) == 12
