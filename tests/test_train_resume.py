"""A training run that dies after saving a checkpoint resumes from it when run again: the same steps, the
same weights as a run that never stopped. Checkpoints from other settings are never resumed."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import pytest
from data_samples import write_jsonl

from sdd_data.artifacts import TRAIN_RECORD
from sdd_data.train.stage import RUN_IDENTITY_FILE, TrainConfig, train

REPO = Path(__file__).resolve().parent.parent
SFT_CPU = REPO / "recipes" / "smollm2-135m-instruct" / "sft-cpu" / "config.yaml"
# Two batches an epoch, a checkpoint every two steps: the run dies at the end of its first epoch.
CHECKPOINTED = {
    "logging_steps": 1,
    "max_length": 64,
    "per_device_train_batch_size": 2,
    "gradient_accumulation_steps": 1,
    "learning_rate": 1e-3,
    "save_strategy": "steps",
    "save_steps": 2,
}
CRASH_STEP = 2
ROWS = [
    [{"role": "user", "content": f"What is {n} + {n}?"}, {"role": "assistant", "content": f"It is {2 * n}."}]
    for n in range(4)
]

# Run in a child: the trainer ends the process as soon as the checkpoint of CRASH_STEP is on disk.
CRASH_SCRIPT = """
import json, os, sys
from transformers import Trainer
from sdd_data.train.stage import TrainConfig, train

save = Trainer._save_checkpoint

def save_then_die(self, *args, **kwargs):
    save(self, *args, **kwargs)
    if self.state.global_step == int(sys.argv[2]):
        os._exit(3)

Trainer._save_checkpoint = save_then_die
train(TrainConfig(**json.loads(sys.argv[1])), show_progress=False)
"""


def _config(model: str, data: Path, output: Path, **overrides) -> TrainConfig:
    return TrainConfig(
        recipe=str(SFT_CPU), model=model, data=str(data), output=str(output), max_steps=4,
        overrides={**CHECKPOINTED, **overrides},
    )  # fmt: skip


def _crash(config: TrainConfig) -> None:
    child = subprocess.run(
        [sys.executable, "-c", CRASH_SCRIPT, json.dumps(asdict(config)), str(CRASH_STEP)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert child.returncode == 3, child.stderr[-2000:]


def _weights(folder: Path) -> dict:
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(folder, use_safetensors=True).state_dict()


@pytest.fixture
def rows(tmp_path: Path) -> Path:
    path = tmp_path / "rows.jsonl"
    write_jsonl(path, [{"messages": turns} for turns in ROWS])
    return path


@pytest.fixture(scope="module")
def uninterrupted(tiny_llama_path: str, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The weights of the same training run straight through."""
    folder = tmp_path_factory.mktemp("straight")
    data = folder / "rows.jsonl"
    write_jsonl(data, [{"messages": turns} for turns in ROWS])
    result = train(_config(tiny_llama_path, data, folder / "model"), show_progress=False)
    assert result.metrics["global_step"] == 4 and "resumed_from_step" not in result.metrics
    return _weights(folder / "model")


def test_a_run_killed_after_a_checkpoint_resumes_to_the_same_weights(
    tiny_llama_path: str,
    rows: Path,
    tmp_path: Path,
    uninterrupted: dict,
    capsys: pytest.CaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
):
    import torch
    from transformers import Trainer

    config = _config(tiny_llama_path, rows, tmp_path / "model")
    _crash(config)
    checkpoints = tmp_path / "model.checkpoints"
    assert not (tmp_path / "model").exists()
    assert (checkpoints / f"checkpoint-{CRASH_STEP}").is_dir() and (checkpoints / RUN_IDENTITY_FILE).is_file()

    half_saved = checkpoints / f"checkpoint-{CRASH_STEP + 1}"  # killed while saving: no trainer state yet
    half_saved.mkdir()
    (half_saved / "model.safetensors").write_bytes(b"")
    steps_run = []
    step = Trainer.training_step
    monkeypatch.setattr(Trainer, "training_step", lambda self, *a, **k: steps_run.append(1) or step(self, *a, **k))
    result = train(config)
    assert len(steps_run) == 4 - CRASH_STEP  # only the steps after the checkpoint ran again
    assert f"resuming from checkpoint-{CRASH_STEP}" in capsys.readouterr().out
    assert result.metrics["global_step"] == 4 and result.metrics["resumed_from_step"] == CRASH_STEP
    assert len(result.losses) == 4  # the checkpoint carries the losses logged before it
    record = json.loads((tmp_path / "model" / TRAIN_RECORD).read_text())
    assert record["metrics"]["resumed_from_step"] == CRASH_STEP
    resumed = _weights(tmp_path / "model")
    assert set(resumed) == set(uninterrupted)
    for name, weight in uninterrupted.items():
        torch.testing.assert_close(resumed[name], weight, rtol=0, atol=1e-6, msg=name)
    assert not checkpoints.exists()


def test_checkpoints_of_other_settings_are_not_resumed(
    tiny_llama_path: str, rows: Path, tmp_path: Path, capsys: pytest.CaptureFixture
):
    _crash(_config(tiny_llama_path, rows, tmp_path / "model"))
    result = train(_config(tiny_llama_path, rows, tmp_path / "model", learning_rate=5e-4))
    assert "come from other settings or data: training starts over" in capsys.readouterr().out
    assert "resumed_from_step" not in result.metrics and len(result.losses) == 4


def test_checkpoints_of_other_data_are_not_resumed(tiny_llama_path: str, rows: Path, tmp_path: Path):
    _crash(_config(tiny_llama_path, rows, tmp_path / "model"))
    write_jsonl(rows, [{"messages": turns} for turns in reversed(ROWS)])
    result = train(_config(tiny_llama_path, rows, tmp_path / "model"), show_progress=False)
    assert "resumed_from_step" not in result.metrics and len(result.losses) == 4
