"""Removing decoder blocks from a checkpoint and saving the result as a standard Hugging Face model.

The pruned model keeps the source's dtype, tokenizer, chat template and generation config; its
remaining blocks are renumbered (each attention module's `layer_idx`, which indexes the KV cache)
and every per-layer list of its config is cut to match, so it loads with `from_pretrained` and vLLM.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sdd_data.errors import SddError, require
from sdd_data.models import HUB_ALLOW_PATTERNS, load_causal_lm
from sdd_data.output_folder import check_output_free, staged_output

SUPPORTED_MODEL_TYPES = ("llama", "mistral", "qwen2", "qwen3", "smollm3")
"""Causal LMs whose decoder blocks sit in `model.model.layers` and carry `self_attn.layer_idx`."""
SIDE_FILE_PATTERNS = [
    pattern for pattern in HUB_ALLOW_PATTERNS if "safetensors" not in pattern and pattern != "config.json"
]
PER_LAYER_KEYS = ("layer_types", "no_rope_layers")
"""Config lists with one entry per decoder layer in the supported model types (Qwen2/3, SmolLM3)."""


def read_model_config(model_path: str | Path) -> dict:
    """A checkpoint's config.json as a dict, or a one-line error naming what is wrong with it."""
    config_path = Path(model_path) / "config.json"
    if not config_path.is_file():
        raise SddError(f"{model_path} has no config.json: not a transformers checkpoint")
    try:
        config = json.loads(config_path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise SddError(f"{config_path} is not valid JSON: {error}") from None
    if not isinstance(config, dict):
        raise SddError(f"{config_path} is not a model config (a JSON object)")
    return config


def check_supported(model_path: str | Path) -> int:
    """Refuse a checkpoint whose architecture has no known block layout; return its number of decoder blocks."""
    config = read_model_config(model_path)
    config_path = Path(model_path) / "config.json"
    model_type, architecture = str(config.get("model_type", "unknown")), str((config.get("architectures") or ["?"])[0])
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise SddError(
            f"cannot prune {architecture} (model_type {model_type!r}) in {model_path}: pruning supports "
            f"the model types {', '.join(SUPPORTED_MODEL_TYPES)}"
        )
    blocks = config.get("num_hidden_layers")
    if isinstance(blocks, bool) or not isinstance(blocks, int) or blocks < 1:
        raise SddError(f"{config_path}: num_hidden_layers must be a positive integer, got {blocks!r}")
    return blocks


def check_blocks(blocks: Sequence[int], num_layers: int) -> list[int]:
    """The blocks to remove, sorted, after refusing empty, duplicate, out-of-range or all-blocks requests."""
    if not blocks:
        raise SddError("no blocks to remove: give at least one 0-based block index")
    if any(isinstance(block, bool) or not isinstance(block, int) for block in blocks):
        raise SddError(f"block indices must be integers, got {list(blocks)!r}")
    duplicates = sorted({block for block in blocks if list(blocks).count(block) > 1})
    if duplicates:
        raise SddError(f"block(s) {', '.join(map(str, duplicates))} are listed more than once")
    outside = [block for block in blocks if not 0 <= block < num_layers]
    if outside:
        raise SddError(
            f"block(s) {', '.join(map(str, outside))} do not exist: the model has {num_layers} blocks, "
            f"0-based indices 0..{num_layers - 1}"
        )
    if len(blocks) >= num_layers:
        raise SddError(f"cannot remove all {num_layers} blocks of the model; keep at least one")
    return sorted(blocks)


def checkpoint_dtype(model_path: str | Path) -> str:
    """The dtype a checkpoint's config.json declares (float32 when it names none)."""
    config = json.loads((Path(model_path) / "config.json").read_text())
    return str(config.get("dtype") or config.get("torch_dtype") or "float32")


def remove_blocks(model: Any, blocks: Sequence[int]) -> list[int]:
    """Delete decoder blocks in place, renumber the rest and cut per-layer config lists; the kept indices."""
    torch = require("torch", "hf")
    layers = model.model.layers
    num_layers = len(layers)
    removed = set(check_blocks(blocks, num_layers))
    kept = [index for index in range(num_layers) if index not in removed]
    model.model.layers = torch.nn.ModuleList([layers[index] for index in kept])
    for new_index, layer in enumerate(model.model.layers):
        for module in layer.modules():
            if hasattr(module, "layer_idx"):
                module.layer_idx = new_index
    _cut_per_layer_lists(model.config, num_layers, kept)
    model.config.num_hidden_layers = len(kept)
    return kept


def _cut_per_layer_lists(config: Any, num_layers: int, kept: list[int]) -> None:
    """Keep the kept layers' entries of the config's per-layer lists (layer_types, no_rope_layers); any other list,
    whatever its length, is left as it is."""
    for key in PER_LAYER_KEYS:
        current = getattr(config, key, None)
        if current is None:
            continue
        if len(current) != num_layers:
            raise SddError(f"the config's {key} has {len(current)} entries for {num_layers} layers: cannot prune it")
        setattr(config, key, type(current)(current[index] for index in kept))


def save_pruned_checkpoint(
    model_path: str, blocks: Sequence[int], output: str | Path, trust_remote_code: bool = False
) -> Path:
    """Remove 0-based decoder blocks from a checkpoint and save it, with its tokenizer, to `output`."""
    output = Path(output)
    check_output_free(output)
    check_supported(model_path)
    model = load_causal_lm(model_path, trust_remote_code=trust_remote_code)
    remove_blocks(model, blocks)
    return save_model_atomically(model, model_path, output)


def save_model_atomically(
    model: Any, source_path: str | Path, output: Path, extra_files: dict[str, str] | None = None
) -> Path:
    """Save `model` with the source's tokenizer and generation files into a temp folder, then rename it to `output`."""
    with staged_output(output) as staging:
        model.save_pretrained(staging, safe_serialization=True)
        for pattern in SIDE_FILE_PATTERNS:
            for path in Path(source_path).glob(pattern):
                shutil.copy2(path, staging / path.name)
        for name, text in (extra_files or {}).items():
            (staging / name).write_text(text)
    return output
