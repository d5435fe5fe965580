"""A broken checkpoint gives the same one-line error from every stage that loads a model."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from sdd_data.cli import main

SFT_CPU = Path(__file__).resolve().parents[1] / "recipes" / "smollm2-135m-instruct" / "sft-cpu" / "config.yaml"
MC_ROW = {"query": "Which number is even?", "choices": ["three", "four"], "gold": 1}
CHAT_ROW = {"messages": [{"role": "user", "content": "Name a fruit."}, {"role": "assistant", "content": "An apple."}]}


@pytest.fixture(scope="module")
def broken(tiny_llama_path: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny Llama with its weights file overwritten: config and tokenizer load, the weights do not."""
    folder = tmp_path_factory.mktemp("broken") / "checkpoint"
    shutil.copytree(tiny_llama_path, folder)
    (folder / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not a safetensors header")
    return folder


def stage_commands(broken: Path, healthy: str, tmp_path: Path) -> dict[str, list[str]]:
    mc = tmp_path / "mc.jsonl"
    mc.write_text(json.dumps(MC_ROW) + "\n")
    chat = tmp_path / "chat.jsonl"
    chat.write_text(json.dumps(CHAT_ROW) + "\n")
    out = tmp_path / "out"
    return {
        "distill": ["distill", "--data", "example", "--limit", "2", "--teacher", str(broken), "--output", f"{out}-d"],
        "select": [
            "select", "--data", "example", "--original-model", healthy, "--pruned-model", str(broken),
            "--budget", "12", "--max-length", "64", "--cache-dir", str(tmp_path / "cache"), "--output", f"{out}-s",
        ],
        "prune": ["prune", "--model", str(broken), "--blocks", "1", "--output", f"{out}-p"],
        "train": [
            "train", "--recipe", str(SFT_CPU), "--data", str(chat), "--model", str(broken), "--output", f"{out}-t",
        ],
        "eval": ["eval", "--models", f"broken={broken}", "--tasks", f"mc:{mc}", "--output", f"{out}-e"],
        "speculative": [
            "eval", "--models", f"original={healthy}", "--tasks", f"mc:{mc}", "--speculative", str(broken),
            "--speculative-limit", "1", "--output", f"{out}-v",
        ],
    }  # fmt: skip


def test_every_stage_that_loads_a_model_gives_the_same_one_line_error(broken, tiny_llama_path, tmp_path, capsys):
    errors = {}
    for name, arguments in stage_commands(broken, tiny_llama_path, tmp_path).items():
        assert main(arguments) == 2, name
        stderr = capsys.readouterr().err
        error_lines = [line for line in stderr.splitlines() if line.startswith(f"sdd-data {arguments[0]}: ")]
        assert "Traceback" not in stderr and len(error_lines) == 1, (name, stderr[-2000:])
        assert stderr.rstrip().endswith(error_lines[0])  # the error is the last thing printed
        errors[name] = error_lines[0].split(": error: ", 1)[1]
    assert len(errors) == 6 and set(errors.values()) == {errors["distill"]}, errors
    assert errors["distill"].startswith(f"cannot load the model in {broken}: ")
    assert not any(tmp_path.glob("out-*/*.safetensors"))
