"""Fixtures for publishing tests: the local Hub server, and a small finished distill run to publish."""

from __future__ import annotations

from pathlib import Path

import pytest
from data_samples import write_jsonl
from hub_server import HubServer
from test_distill import ROWS, config_for

from sdd_data.cli import main
from sdd_data.distill.stage import distill

TOKEN = "hf_test_token_1234567890abcdef"
USER = "tester"


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """The Hub look-alike, with huggingface_hub and datasets pointed at it (online, token set, no Xet)."""
    import datasets.config
    import huggingface_hub.constants as constants

    with HubServer({TOKEN: USER}) as server:
        monkeypatch.setenv("HF_ENDPOINT", server.endpoint)
        monkeypatch.setenv("HF_TOKEN", TOKEN)
        monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
        monkeypatch.setattr(constants, "ENDPOINT", server.endpoint)
        monkeypatch.setattr(
            constants, "HUGGINGFACE_CO_URL_TEMPLATE", server.endpoint + "/{repo_id}/resolve/{revision}/{filename}"
        )
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
        monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
        monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub-cache"))
        monkeypatch.setattr(datasets.config, "HF_ENDPOINT", server.endpoint)
        monkeypatch.setattr(
            datasets.config, "HUB_DATASETS_URL", server.endpoint + "/datasets/{repo_id}/resolve/{revision}/{path}"
        )
        monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", False)
        monkeypatch.setattr(datasets.config, "HF_DATASETS_OFFLINE", False)
        yield server


@pytest.fixture
def distilled(tmp_path: Path) -> Path:
    """A finished distill run of test_distill's rows with its scripted teacher (one row dropped as invalid)."""
    source = tmp_path / "gsm8k.jsonl"
    write_jsonl(source, ROWS)
    teacher = tmp_path / "teacher"
    teacher.mkdir()
    (teacher / "config.json").write_text("{}")
    return distill(config_for(str(source), str(teacher), tmp_path / "run"), show_progress=False).output


def cli_error(capsys, *args) -> str:
    """Run `sdd-data publish` expecting a refusal; its one-line message."""
    capsys.readouterr()
    assert main(["publish", *args]) == 2
    printed = capsys.readouterr().err
    errors = [line for line in printed.splitlines() if line.startswith("sdd-data publish: error: ")]
    assert len(errors) == 1 and "Traceback" not in printed, printed
    return errors[0]
