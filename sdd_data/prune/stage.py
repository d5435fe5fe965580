"""The prune stage: score the model on calibration text, cut blocks and/or width, and save the pruned model.

The method (`--method`, a registered `PruneMethod`) decides what is scored and cut. A depth method removes
n decoder blocks chosen from block scores; explicit `blocks` skip block scoring. A width method cuts every
remaining block to a smaller width; blocks, if any, are cut first (chosen by its block method) and the
width is scored on what remains. The output is a standard Hugging Face checkpoint with
`sdd_data_prune.json` inside it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

from sdd_data import __version__
from sdd_data.artifacts import PRUNE_RECORD
from sdd_data.cards import describe_pruning
from sdd_data.errors import SddError
from sdd_data.models import DTYPES, load_causal_lm, load_tokenizer, resolve_device, resolve_model
from sdd_data.output_folder import check_output_free
from sdd_data.prune.checkpoint import (
    check_blocks,
    check_supported,
    checkpoint_dtype,
    read_model_config,
    save_model_atomically,
)
from sdd_data.prune.config import PruneConfig
from sdd_data.prune.method import Calibration, PruneMethod
from sdd_data.prune.methods import PRUNE_METHODS, method_names
from sdd_data.prune.plan import PruningPlan, model_shape

NUMBER_LIST = re.compile(r"\[\s*((?:-?[0-9][0-9.eE+-]*,?\s*)+)\]")
"""A JSON list of plain numbers, as json.dumps(indent=2) writes it over many lines."""


@dataclass
class PruneResult:
    """The pruned checkpoint, what was removed and the scores behind the choice (None for explicit blocks)."""

    output: Path
    removed_blocks: list[int]
    """0-based indices of the removed decoder blocks in the source model."""
    num_blocks: int
    """Decoder blocks of the source model."""
    method: str
    """The scoring method, or `explicit` when the blocks were given."""
    angular_distance: list[float] | None
    """Mean d(ℓ, n) for each start block ℓ (removing ℓ…ℓ+n−1)."""
    block_influence: list[float] | None
    """Block influence of each block."""
    record: dict
    """Everything saved in the checkpoint's sdd_data_prune.json: shapes before and after, kept units, scores."""


def parse_blocks(text: str) -> list[int]:
    """0-based block indices from a comma list like `20,21,22,23`."""
    parts = [part.strip() for part in text.split(",") if part.strip()]
    try:
        return [int(part) for part in parts]
    except ValueError:
        raise SddError(f"blocks must be a comma list of 0-based integers like 20,21,22,23, got {text!r}") from None


def prune(config: PruneConfig, show_progress: bool = True) -> PruneResult:
    """Choose what to cut (by score, or blocks as given), print the scores, and save the pruned checkpoint."""
    method = check_options(config)
    output = Path(config.output)
    check_output_free(output)
    resolved = resolve_model(config.model)
    num_blocks = check_supported(resolved.path)
    _check_targets(config, read_model_config(resolved.path))
    explicit = None
    if config.blocks is not None:
        explicit = check_blocks(parse_blocks(config.blocks), num_blocks)  # before any weight loads
        if config.blocks_to_remove is not None and config.blocks_to_remove != len(explicit):
            raise SddError(f"blocks lists {len(explicit)} blocks but blocks_to_remove is {config.blocks_to_remove}")
    elif config.blocks_to_remove is not None:
        from sdd_data.prune.block_scores import check_block_count

        check_block_count(num_blocks, config.blocks_to_remove)

    width = method.kind == "width"
    if explicit is not None and not width:
        model = load_causal_lm(resolved.path, trust_remote_code=config.trust_remote_code)
        plan, scores, calibration, changed = PruningPlan(removed_blocks=explicit), None, None, False
    else:
        model, plan, scores, calibration, changed = _score(method, config, resolved.path, explicit, show_progress)
    if changed or config.dtype not in ("auto", checkpoint_dtype(resolved.path)):  # save the checkpoint's weights
        del model
        model = load_causal_lm(resolved.path, trust_remote_code=config.trust_remote_code)
    block_method = "explicit" if explicit is not None else (method.block_method.name if plan.removed_blocks else None)
    if plan.removed_blocks:
        print(f"removing 0-based blocks {', '.join(map(str, plan.removed_blocks))} of {num_blocks}")

    before = model_shape(model)
    plan.apply(model)
    record = {
        "sdd_data_version": __version__,
        "method": method.name if width or scores is not None else "explicit",
        "block_method": block_method,
        "removed_blocks": plan.removed_blocks,
        "num_blocks_before": num_blocks,
        "num_blocks_after": num_blocks - len(plan.removed_blocks),
        "shape": {"before": before, "after": model_shape(model)},
        "kept": plan.kept_units(),
        "source_model": {"name": resolved.name, "revision": resolved.revision},
        "scores": scores,
        "calibration": calibration,
    }
    print(f"pruned: {describe_pruning(record)['description']}")
    save_model_atomically(model, resolved.path, output, {PRUNE_RECORD: record_text(record)})
    print(f"saved the pruned model to {output}")
    block_scores = scores or {}
    return PruneResult(
        output=output,
        removed_blocks=plan.removed_blocks,
        num_blocks=num_blocks,
        method=record["method"],
        angular_distance=(block_scores.get("angular_distance") or {}).get("by_start_block"),
        block_influence=block_scores.get("block_influence"),
        record=record,
    )


def record_text(record: dict) -> str:
    """The record as indented JSON, with each list of numbers on one line (per-layer scores stay readable)."""
    text = json.dumps(record, indent=2)
    return (
        NUMBER_LIST.sub(lambda match: f"[{', '.join(part.strip() for part in match.group(1).split(','))}]", text) + "\n"
    )


def check_options(config: PruneConfig) -> PruneMethod:
    """Refuse options that cannot run, before any model loads (`sdd-data run` calls it for every step); the
    method the options name."""
    if config.method not in PRUNE_METHODS:
        raise SddError(f"unknown method {config.method!r}; use one of {', '.join(PRUNE_METHODS)}")
    method = PRUNE_METHODS.get(config.method)
    if config.dtype != "auto" and config.dtype not in DTYPES:
        raise SddError(f"unknown dtype {config.dtype!r}: use auto, {', '.join(DTYPES)}")
    if config.calibration_rows < 1:
        raise SddError(f"calibration_rows must be at least 1, got {config.calibration_rows}")
    targets = {"ffn_size": config.ffn_size, "kv_heads": config.kv_heads, "hidden_size": config.hidden_size}
    given = [name for name, value in targets.items() if value is not None]
    for name in given:
        if isinstance(targets[name], bool) or not isinstance(targets[name], int) or targets[name] < 1:
            raise SddError(f"{name} must be a positive integer, got {targets[name]!r}")
    if given and method.kind == "depth":
        width_methods = " or ".join(method_names("width"))
        raise SddError(f"{', '.join(given)} cut width: use --method {width_methods}, not {method.name}")
    method.check_options(config)
    return method


def _check_targets(config: PruneConfig, model_config: dict) -> None:
    """Refuse, before any weight loads, a width target not smaller than the model's size on its axis, or a
    head / hidden cut whose shape transformers or vLLM could not load."""
    current = {
        "ffn_size": ("intermediate_size", "intermediate size"),
        "kv_heads": ("num_key_value_heads", "KV heads"),
        "hidden_size": ("hidden_size", "hidden size"),
    }
    for option, (key, name) in current.items():
        target = getattr(config, option)
        size = model_config.get(key) or (
            model_config.get("num_attention_heads") if key == "num_key_value_heads" else None
        )
        if target is not None and size is not None and target >= size:
            raise SddError(f"{option} {target} must be smaller than the model's {name} {size}")
    if not (config.kv_heads or config.hidden_size):
        return
    from sdd_data.prune.attention_width import head_layout

    heads, kv_heads, head_dim = head_layout(SimpleNamespace(**model_config))
    if config.kv_heads is not None:
        heads = config.kv_heads * (heads // kv_heads)
    hidden = config.hidden_size or model_config["hidden_size"]
    if hidden % heads:
        raise SddError(
            f"the cut model would have hidden size {hidden} and {heads} query heads: transformers refuses a hidden "
            f"size that is not a multiple of the heads; choose --hidden-size / --kv-heads so that it is"
        )
    if model_config.get("model_type") == "qwen2" and hidden != heads * head_dim:
        raise SddError(
            f"vLLM computes a Qwen2 model's head_dim as hidden_size / heads: a cut to hidden size {hidden} with "
            f"{heads} query heads of {head_dim} would not load there; keep hidden size = heads × {head_dim} "
            "(cut --kv-heads and --hidden-size together) or cut only --ffn-size"
        )


def _score(method: PruneMethod, config: PruneConfig, model_path: str, explicit: list[int] | None, show_progress: bool):
    """Load calibration rows and the model; choose blocks and width. (model, plan, scores, calibration, changed):
    `changed` says the returned model is no longer the source (blocks were cut from it to score the width)."""
    from sdd_data.data.sources import SourceSpec, load_rows
    from sdd_data.prune.calibration import calibration_batches, calibration_texts

    source = load_rows(SourceSpec(data=config.calibration_data, limit=config.calibration_rows))
    tokenizer = load_tokenizer(model_path, trust_remote_code=config.trust_remote_code)
    texts = calibration_texts(source.rows, tokenizer)
    batches = calibration_batches(tokenizer, texts, config.max_length, config.batch_size)
    model = load_causal_lm(
        model_path, dtype=config.dtype, device=resolve_device(config.device), trust_remote_code=config.trust_remote_code
    )
    if len(texts) < config.calibration_rows:
        print(f"calibrating on {len(texts)} rows: {source.name} has no more usable rows")
    scores: dict = {}
    removed = explicit or []
    calibration = Calibration(source.rows, tokenizer, batches)
    if explicit is None and config.blocks_to_remove:
        chooser = method.block_method
        block_scores = chooser.score(model, calibration, config.blocks_to_remove, show_progress)
        removed = chooser.choose(block_scores, config.blocks_to_remove)
        chooser.print_scores(block_scores, removed)
        scores["angular_distance"] = {"n": len(removed), "by_start_block": block_scores.angular_distance}
        scores["block_influence"] = block_scores.block_influence
    width = method.cut_width(model, removed, calibration, config, show_progress)
    plan = PruningPlan(removed_blocks=removed, **width.kept)
    scores.update(width.scores)
    calibration_record = {
        "source": source.name,
        "fingerprint": source.fingerprint,
        "rows": len(texts),
        "tokens": sum(int(batch["attention_mask"].sum()) for batch in batches),
        "max_length": config.max_length,
        "format": "chat_template" if getattr(tokenizer, "chat_template", None) else "plain_text",
    }
    return model, plan, scores or None, calibration_record, width.model_changed
