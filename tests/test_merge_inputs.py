"""Merge inputs that cannot be merged as given: another tokenizer, damaged checkpoints, an unreadable recipe.

Each is one line naming the file and what to do, and no output folder appears.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import transformers
import yaml

from sdd_data.cli import main
from sdd_data.merge.stage import MergeConfig, merge


def recipe_for(folder: Path, base: Path | str, other: Path | str) -> Path:
    path = folder / "merge.yaml"
    recipe = {
        "models": [{"model": str(base)}, {"model": str(other)}],
        "merge_method": "slerp",
        "base_model": str(base),
        "parameters": {"t": 0.5},
    }
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return path


def merge_error(capsys, tmp_path: Path, recipe: Path) -> str:
    """Run `sdd-data merge` expecting a refusal; its one-line message (and no output folder)."""
    capsys.readouterr()
    assert main(["merge", "--merge-config", str(recipe), "--output", str(tmp_path / "merged")]) == 2
    printed = capsys.readouterr().err
    errors = [line for line in printed.splitlines() if line.startswith("sdd-data merge: error: ")]
    assert len(errors) == 1 and "Traceback" not in printed, printed
    assert not (tmp_path / "merged").exists()
    assert [path.name for path in tmp_path.iterdir() if ".partial-" in path.name] == []
    return errors[0]


@pytest.fixture
def pair(tiny_llama_path, tiny_llama_variant_path, tmp_path) -> tuple[Path, Path]:
    """Copies of two checkpoints of one architecture that share one tokenizer."""
    base = Path(shutil.copytree(tiny_llama_path, tmp_path / "base"))
    other = Path(shutil.copytree(tiny_llama_variant_path, tmp_path / "other"))
    return base, other


def test_models_sharing_a_tokenizer_merge_and_keep_it(pair, tmp_path):
    base, other = pair
    result = merge(MergeConfig(merge_config=str(recipe_for(tmp_path, base, other)), output=str(tmp_path / "merged")))
    assert (result.output / "tokenizer.json").read_bytes() == (base / "tokenizer.json").read_bytes()


def test_tokenizer_files_of_the_same_bytes_settle_it_without_loading_a_tokenizer(pair, tmp_path, monkeypatch):
    from sdd_data.merge import checkpoints

    def no_loading(*args, **kwargs):
        raise AssertionError("a tokenizer was loaded although the files are the same bytes")

    monkeypatch.setattr(checkpoints, "load_tokenizer", no_loading)
    base, other = pair
    checkpoints.check_same_tokenizers(base, other)
    settings = json.loads((other / "tokenizer_config.json").read_text())
    (other / "tokenizer_config.json").write_text(json.dumps({**settings, "is_local": False}))  # where, not what
    checkpoints.check_same_tokenizers(base, other)
    (other / "tokenizer_config.json").write_text(json.dumps({**settings, "padding_side": "left"}))
    with pytest.raises(AssertionError, match="a tokenizer was loaded"):
        checkpoints.check_same_tokenizers(base, other)  # files that differ are loaded and compared


def test_a_different_vocabulary_is_refused(pair, tmp_path, capsys):
    base, other = pair
    tokenizer = transformers.AutoTokenizer.from_pretrained(other)
    tokenizer.add_tokens(["<tool_call>"])
    tokenizer.save_pretrained(other)
    error = merge_error(capsys, tmp_path, recipe_for(tmp_path, base, other))
    assert f"the base model {base} and {other} must share one tokenizer" in error
    assert "vocabulary" in error and "'<tool_call>'" in error and "fine-tuned from one parent" in error


def test_a_different_chat_template_is_refused(pair, tmp_path, capsys):
    base, other = pair
    tokenizer = transformers.AutoTokenizer.from_pretrained(other)
    tokenizer.chat_template = "{% for message in messages %}{{ message['content'] }}{% endfor %}"
    tokenizer.save_pretrained(other)
    error = merge_error(capsys, tmp_path, recipe_for(tmp_path, base, other))
    assert "differ in: chat template" in error


def test_a_model_without_a_tokenizer_beside_one_with_is_refused(pair, tmp_path, capsys):
    base, other = pair
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja"):
        (other / name).unlink(missing_ok=True)
    error = merge_error(capsys, tmp_path, recipe_for(tmp_path, base, other))
    assert f"{other} has no tokenizer" in error and "copy the tokenizer files" in error


def test_an_unloadable_tokenizer_is_named(pair, tmp_path, capsys):
    base, other = pair
    (other / "tokenizer.json").write_text("{not json")
    error = merge_error(capsys, tmp_path, recipe_for(tmp_path, base, other))
    assert f"cannot load the tokenizer in {other}" in error


@pytest.mark.parametrize(
    "damage, names",
    [
        (lambda folder: (folder / "config.json").write_text("{oops"), "config.json is not readable JSON"),
        (lambda folder: (folder / "config.json").write_text("[]"), "config.json must hold a JSON object"),
        (
            lambda folder: (folder / "model.safetensors").write_bytes(b"garbage, not safetensors"),
            "model.safetensors is not a readable safetensors file",
        ),
        (
            lambda folder: (folder / "model.safetensors").write_bytes(
                (folder / "model.safetensors").read_bytes()[:-64]
            ),
            "model.safetensors is not a readable safetensors file",
        ),
        (
            lambda folder: (folder / "model.safetensors.index.json").write_text("{broken"),
            "model.safetensors.index.json is not a readable index",
        ),
        (
            lambda folder: (folder / "model.safetensors.index.json").write_text('{"weight_map": ["x"]}'),
            "model.safetensors.index.json has no `weight_map`",
        ),
    ],
)
def test_a_damaged_checkpoint_is_named_in_one_line(pair, tmp_path, capsys, damage, names):
    base, other = pair
    damage(other)
    error = merge_error(capsys, tmp_path, recipe_for(tmp_path, base, other))
    assert names in error and str(other) in error


def test_a_recipe_that_is_not_text_or_a_folder_is_named(pair, tmp_path, capsys):
    (tmp_path / "merge.yaml").write_bytes(b"\xff\xfe\x00binary")
    assert "cannot read merge config" in merge_error(capsys, tmp_path, tmp_path / "merge.yaml")
    (tmp_path / "recipes").mkdir()
    assert "is a folder" in merge_error(capsys, tmp_path, tmp_path / "recipes")


def test_a_model_path_that_is_a_file_is_named(pair, tmp_path, capsys):
    base, _ = pair
    (tmp_path / "weights.bin").write_bytes(b"x")
    error = merge_error(capsys, tmp_path, recipe_for(tmp_path, base, tmp_path / "weights.bin"))
    assert "weights.bin" in error and "is a file" in error


def test_printing_the_schedule_checks_the_tokenizers_too(pair, tmp_path, capsys):
    base, other = pair
    (other / "tokenizer.json").write_text(json.dumps({"not": "a tokenizer"}))
    capsys.readouterr()
    recipe = recipe_for(tmp_path, base, other)
    assert main(["merge", "--merge-config", str(recipe), "--print-schedule"]) == 2
    assert "cannot load the tokenizer" in capsys.readouterr().err
