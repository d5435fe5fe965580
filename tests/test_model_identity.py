"""A model folder's digest follows what loading it reads, not when or how its files were written."""

from __future__ import annotations

import json
import os
import shutil

import pytest
import torch
from safetensors.torch import save_file

from sdd_data.models.identity import model_folder_digest, weights_digest


def _model(folder, norm=1.0, metadata=None, order=("embed", "norm")):
    folder.mkdir()
    tensors = {"embed": torch.arange(6.0).reshape(2, 3), "norm": torch.full((4,), norm)}
    save_file({name: tensors[name] for name in order}, folder / "model.safetensors", metadata=metadata)
    (folder / "config.json").write_text(json.dumps({"hidden_size": 3}))
    (folder / "tokenizer.json").write_text('{"vocab": {"a": 0}}')
    return folder


def test_a_model_made_again_identically_keeps_its_digest(tmp_path):
    first = _model(tmp_path / "first")
    (first / "sdd_data_prune.json").write_text(json.dumps({"seconds": 48.1}))
    (first / "README.md").write_text("made at 01:00")
    again = _model(tmp_path / "again", metadata={"saved_by": "another run"}, order=("norm", "embed"))
    (again / "sdd_data_prune.json").write_text(json.dumps({"seconds": 51.7}))
    (again / "README.md").write_text("made at 02:00")
    os.utime(again / "config.json", (0, 0))
    assert model_folder_digest(first) == model_folder_digest(again)
    assert weights_digest(first) == weights_digest(again)


def test_any_change_to_what_the_model_computes_changes_the_digest(tmp_path):
    base = model_folder_digest(_model(tmp_path / "base"))
    assert model_folder_digest(_model(tmp_path / "weights", norm=0.5)) != base

    config = shutil.copytree(tmp_path / "base", tmp_path / "config")
    (config / "config.json").write_text(json.dumps({"hidden_size": 3, "rope_theta": 5.0}))
    assert model_folder_digest(config) != base

    template = shutil.copytree(tmp_path / "base", tmp_path / "template")
    (template / "chat_template.jinja").write_text("{{ messages }}")
    assert model_folder_digest(template) != base
    assert weights_digest(template) == weights_digest(tmp_path / "base"), "the weights alone did not change"


@pytest.mark.parametrize(
    "content",
    [b"\x10\x00\x00\x00\x00\x00\x00\x00not a header....", b"\xff" * 8 + b"{}", b"\x02\x00\x00\x00\x00\x00\x00\x00[]"],
)
def test_an_unreadable_weights_file_is_taken_by_its_bytes(tmp_path, content):
    folder = _model(tmp_path / "broken")
    (folder / "model.safetensors").write_bytes(content)
    digest = model_folder_digest(folder)
    (folder / "model.safetensors").write_bytes(content + b"!")
    assert model_folder_digest(folder) != digest
