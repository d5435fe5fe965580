"""Card rendering and merging, checked with huggingface_hub's card classes and the Hub server's validator."""

import copy

import pytest
from huggingface_hub import DatasetCard, DatasetCardData, ModelCard

from sdd_data.cards import dataset_card, model_card, size_category

PROVENANCE = {
    "splits": {"train": 1200, "dropped": 3},
    "source": {
        "name": "openai/gsm8k",
        "hub_id": "openai/gsm8k",
        "fingerprint": "abc123",
        "preset": "gsm8k",
        "license": "mit",
    },
    "teacher": {"name": "meta-llama/Llama-3.1-8B-Instruct", "revision": "0e9e39f"},
    "engine": {"engine": "vllm", "vllm": "0.9.0", "dtype": "bfloat16"},
    "template": {
        "name": "gsm8k-chat",
        "system": "",
        "user": "{instruction}\n\n{reference}",
        "assistant_prefix": "Great! Let's think step by step. ",
        "chat": True,
        "description": "math",
    },
    "decoding": {"max_new_tokens": 512, "temperature": 0.0, "top_p": 1.0, "top_k": 0, "seed": 0},
    "seed_policy": "greedy decoding",
    "on_failure": "original",
    "filter": {"on_failure": "original"},
    "rows_in": 1203,
    "rows_out": 1200,
    "decisions": {"rewrite": 1000, "original": 200, "dropped": 3},
    "reasons_by_decision": {"original": {"answer_mismatch": 150, "truncated": 50}, "dropped": {"invalid_row": 3}},
    "by_task": {"math": {"rows": 1200, "decisions": {"rewrite": 1000, "original": 200}, "reasons": {}}},
    "tokens": {"prompt": 1, "completion": 2},
    "selection": None,
}


def render(configs, name, existing=None, **options):
    return dataset_card(
        existing,
        configs,
        name,
        dataset_path="me/distilled",
        license_id=options.get("license_id"),
        pretty_name=options.get("pretty_name"),
    )


def test_the_dataset_card_tells_the_whole_story(hub):
    content = render({"gsm8k": PROVENANCE}, "gsm8k", license_id="cc-by-4.0")
    card = DatasetCard(content)
    metadata = card.data.to_dict()
    DatasetCardData(**metadata)
    card.validate("dataset")  # the Hub server's validate-yaml
    assert metadata["license"] == "cc-by-4.0" and metadata["size_categories"] == ["1K<n<10K"]
    assert metadata["source_datasets"] == ["openai/gsm8k"] and metadata["task_categories"] == ["text-generation"]
    assert metadata["configs"][0]["data_files"][1] == {"split": "dropped", "path": "data/gsm8k/dropped-*"}
    for text in (
        "`meta-llama/Llama-3.1-8B-Instruct` at revision `0e9e39f`",
        "vllm `0.9.0`",
        "`max_new_tokens=512`",
        "Great! Let's think step by step.",
        "{instruction}",
        "| `original` | `answer_mismatch` | 150 |",
        'load_dataset("me/distilled", "gsm8k", split="train")',
        "trl sft",
        "openai/gsm8k (license: mit)",
    ):
        assert text in card.text, text
    assert "### Selection" not in card.text


def test_merging_keeps_other_configs_and_text_written_by_hand():
    first = render({"gsm8k": PROVENANCE}, "gsm8k", license_id="mit", pretty_name="Math")
    edited = first + "\n## Notes\n\nNotes written by hand.\n"
    alpaca = copy.deepcopy(PROVENANCE) | {"source": {**PROVENANCE["source"], "name": "alpaca.jsonl", "hub_id": None}}
    merged = DatasetCard(render({"gsm8k": PROVENANCE, "alpaca": alpaca}, "alpaca", edited))
    assert [entry["config_name"] for entry in merged.data.configs] == ["gsm8k", "alpaca"]
    assert merged.data.license == "mit" and merged.data.pretty_name == "Math"
    assert "Notes written by hand." in merged.text and "| `alpaca` |" in merged.text
    assert merged.text.index("## Config `gsm8k`") < merged.text.index("## Config `alpaca`") < merged.text.index("Notes")
    again = DatasetCard(render({"gsm8k": PROVENANCE, "alpaca": alpaca}, "gsm8k", str(merged)))
    assert again.text.count("## Config `gsm8k`") == 1 and again.text.count("## Config `alpaca`") == 1


def test_a_foreign_card_is_kept_and_extended():
    foreign = (
        "---\nlicense: apache-2.0\nconfigs:\n- config_name: raw\n  data_files: raw/*.csv\nlanguage:\n- en\n"
        "---\n# Mine\n\nMy text.\n"
    )
    card = DatasetCard(render({"gsm8k": PROVENANCE}, "gsm8k", foreign))
    assert [entry["config_name"] for entry in card.data.configs] == ["raw", "gsm8k"]
    assert card.data.license == "apache-2.0" and card.data.language == ["en"]
    assert card.text.endswith("<!-- sdd-data:end config gsm8k -->\n\n# Mine\n\nMy text.\n")


def test_selection_results_are_rendered_when_present():
    selected = PROVENANCE | {
        "selection": {
            "method": "paser",
            "budget": 500,
            "clusters": [{"cluster": 0, "size": 700, "kept": 300}, {"cluster": 1, "size": 500, "kept": 200}],
        }
    }
    text = DatasetCard(render({"gsm8k": selected}, "gsm8k")).text
    assert "Method `paser`, budget 500." in text
    assert "| cluster | size | kept |\n|---|---|---|\n| 0 | 700 | 300 |\n| 1 | 500 | 200 |" in text


def test_size_categories():
    assert [size_category(rows) for rows in (0, 999, 1000, 99_999, 100_000, 2_000_000_000)] == [
        "n<1K",
        "n<1K",
        "1K<n<10K",
        "10K<n<100K",
        "100K<n<1M",
        "n>1B",
    ]


def test_the_model_card_renders_and_validates(hub):
    content = model_card(
        model_name="Llama-3.1-8B-Instruct-pruned-6-recovered",
        base_model="meta-llama/Llama-3.1-8B-Instruct",
        pruning={"method": "explicit", "removed_blocks": [22, 23, 24, 25, 26, 27], "num_blocks_before": 32},
        dataset="me/distilled",
        dataset_config="gsm8k",
        recipe={"method": "lora", "learning_rate": 2e-4, "epochs": 2},
        evaluation=[{"task": "gsm8k", "base": 0.84, "pruned": 0.41, "recovered": 0.72}],
        license_id="llama3.1",
    )
    card = ModelCard(content)
    card.validate("model")
    assert card.data.base_model == "meta-llama/Llama-3.1-8B-Instruct" and card.data.datasets == ["me/distilled"]
    assert "with 6 of its decoder blocks removed, then fine-tuned" in card.text
    assert "Pruning: removed 6 of 32 decoder blocks (0-based: 22, 23, 24, 25, 26, 27) given by hand." in card.text
    assert "| task | base | pruned | recovered |\n|---|---|---|---|\n| gsm8k | 0.84 | 0.41 | 0.72 |" in card.text
    assert "| `learning_rate` | 0.0002 |" in card.text


@pytest.mark.parametrize(
    "metadata, error",
    [
        ("configs:\n- data_files: x/*", "config_name"),
        ("tags: pruning", "tags must be a list"),
        ("license: 3", "license must be a string"),
        ("size_categories:\n- huge", "unknown value"),
    ],
)
def test_the_hub_server_refuses_invalid_metadata_like_the_hub(hub, metadata, error):
    with pytest.raises(ValueError, match=error):
        DatasetCard(f"---\n{metadata}\n---\n# x\n").validate("dataset")
