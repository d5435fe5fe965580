"""The prune stage: score the model on calibration text, cut blocks and/or width, and save the pruned model.

Depth (maths in block_scores): `angular` removes the n contiguous blocks whose input and the input n
blocks later are closest in angle at the last token (Gromov et al.); `block-influence` removes the n
blocks that change their input least, over all tokens (ShortGPT). Explicit `blocks` skip block scoring.
Width: `minitron` (activation importance of MLP neurons, KV groups and hidden channels) and `sdmprune`
(MLP neurons by a self-distillation Taylor term); blocks, if any, are cut first (by block influence)
and the width is scored on what remains. The output is a standard Hugging Face checkpoint with
`sdd_data_prune.json` inside it.
"""

from __future__ import annotations

import copy
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
    remove_blocks,
    save_model_atomically,
)
from sdd_data.prune.config import DEPTH_METHODS, METHODS, WIDTH_METHODS, PruneConfig
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
    check_options(config)
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

    width = config.method in WIDTH_METHODS
    if explicit is not None and not width:
        model = load_causal_lm(resolved.path, trust_remote_code=config.trust_remote_code)
        plan, scores, calibration, changed = PruningPlan(removed_blocks=explicit), None, None, False
    else:
        model, plan, scores, calibration, changed = _score(config, resolved.path, num_blocks, explicit, show_progress)
    if changed or config.dtype not in ("auto", checkpoint_dtype(resolved.path)):  # save the checkpoint's weights
        del model
        model = load_causal_lm(resolved.path, trust_remote_code=config.trust_remote_code)
    block_method = "explicit" if explicit is not None else (_block_method(config) if plan.removed_blocks else None)
    if plan.removed_blocks:
        print(f"removing 0-based blocks {', '.join(map(str, plan.removed_blocks))} of {num_blocks}")

    before = model_shape(model)
    plan.apply(model)
    record = {
        "sdd_data_version": __version__,
        "method": config.method if width or scores is not None else "explicit",
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


def check_options(config: PruneConfig) -> None:
    """Refuse options that cannot run, before any model loads (`sdd-data run` calls it for every step)."""
    if config.method not in METHODS:
        raise SddError(f"unknown method {config.method!r}; use one of {', '.join(METHODS)}")
    if config.dtype != "auto" and config.dtype not in DTYPES:
        raise SddError(f"unknown dtype {config.dtype!r}: use auto, {', '.join(DTYPES)}")
    if config.calibration_rows < 1:
        raise SddError(f"calibration_rows must be at least 1, got {config.calibration_rows}")
    targets = {"ffn_size": config.ffn_size, "kv_heads": config.kv_heads, "hidden_size": config.hidden_size}
    given = [name for name, value in targets.items() if value is not None]
    for name in given:
        if isinstance(targets[name], bool) or not isinstance(targets[name], int) or targets[name] < 1:
            raise SddError(f"{name} must be a positive integer, got {targets[name]!r}")
    if config.method in DEPTH_METHODS:
        if given:
            raise SddError(f"{', '.join(given)} cut width: use --method minitron or sdmprune, not {config.method}")
        if config.blocks is None and config.blocks_to_remove is None:
            raise SddError("say how many blocks to remove (--blocks-to-remove N) or which ones (--blocks 20,21,22,23)")
    elif config.method == "minitron" and not given:
        raise SddError("minitron needs a width target: --ffn-size, --kv-heads or --hidden-size")
    elif config.method == "sdmprune":
        if config.ffn_size is None:
            raise SddError("sdmprune prunes MLP neurons: give the MLP size to keep with --ffn-size")
        if config.kv_heads is not None or config.hidden_size is not None:
            raise SddError("sdmprune prunes only MLP neurons: drop --kv-heads / --hidden-size (minitron prunes those)")
        if not 0 < config.sdmprune_warmup < 1:
            raise SddError(f"sdmprune_warmup must be between 0 and 1 (exclusive), got {config.sdmprune_warmup}")
        if config.completion_tokens < 1:
            raise SddError(f"completion_tokens must be at least 1, got {config.completion_tokens}")


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


def _block_method(config: PruneConfig) -> str:
    """How blocks are scored: the method itself for depth methods, block influence alongside a width method."""
    return config.method if config.method in DEPTH_METHODS else "block-influence"


def _score(config: PruneConfig, model_path: str, num_blocks: int, explicit: list[int] | None, show_progress: bool):
    """Load calibration rows and the model; choose blocks and width. (model, plan, scores, calibration, changed):
    `changed` says the returned model is no longer the source (blocks were cut from it to score the width)."""
    from sdd_data.data.sources import SourceSpec, load_rows
    from sdd_data.prune.calibration import calibration_batches, calibration_texts, score_blocks
    from sdd_data.prune.minitron import WidthTargets, minitron_width
    from sdd_data.prune.sdmprune import SdmpruneSettings, sdmprune_neurons

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
    if explicit is None and config.blocks_to_remove:
        block_scores = score_blocks(model, batches, config.blocks_to_remove, show_progress)
        removed = _choose(_block_method(config), block_scores, config.blocks_to_remove)
        _print_scores(_block_method(config), block_scores, removed)
        scores["angular_distance"] = {"n": len(removed), "by_start_block": block_scores.angular_distance}
        scores["block_influence"] = block_scores.block_influence
    changed = config.method == "minitron" and bool(removed)  # minitron scores the width on the cut model itself
    if config.method == "minitron":
        if removed:
            remove_blocks(model, removed)
        targets = WidthTargets(config.ffn_size, config.kv_heads, config.hidden_size)
        kept, width_scores = minitron_width(model, batches, targets, show_progress)
    elif config.method == "sdmprune":
        settings = SdmpruneSettings(
            config.ffn_size, config.completion_tokens, config.sdmprune_warmup, config.max_length, config.batch_size
        )
        student = copy.deepcopy(model)
        if removed:
            remove_blocks(student, removed)
        neurons, width_scores = sdmprune_neurons(model, student, tokenizer, source.rows, settings, show_progress)
        del student
        kept = {"neurons": neurons}
    else:
        kept, width_scores = {}, {}
    plan = PruningPlan(removed_blocks=removed, **kept)
    scores.update(width_scores)
    calibration = {
        "source": source.name,
        "fingerprint": source.fingerprint,
        "rows": len(texts),
        "tokens": sum(int(batch["attention_mask"].sum()) for batch in batches),
        "max_length": config.max_length,
        "format": "chat_template" if getattr(tokenizer, "chat_template", None) else "plain_text",
    }
    return model, plan, scores or None, calibration, changed


def _choose(method: str, scores, n: int) -> list[int]:
    from sdd_data.prune.block_scores import choose_contiguous, choose_lowest

    if method == "angular":
        return choose_contiguous(scores.angular_distance, n)
    return choose_lowest(scores.block_influence, n)


def _print_scores(method: str, scores, removed: list[int]) -> None:
    """The score table of the block method, marking what is removed."""
    n = len(removed)
    if method == "angular":
        print(
            f"angular distance d(l, n={n}) between the inputs of block l and block l+{n} at the last token "
            f"(mean of {scores.rows} rows; 0 = same direction)"
        )
        print("start  blocks   distance")
        for start, distance in enumerate(scores.angular_distance):
            mark = "  <- removed" if start == removed[0] else ""
            print(f"{start:>5}  {f'{start}-{start + n - 1}':<7}  {distance:.4f}{mark}")
        return
    print(f"block influence 1 - mean cos(input, output) over {scores.tokens} tokens of {scores.rows} rows")
    print("block  influence")
    for block, influence in enumerate(scores.block_influence):
        mark = "  <- removed" if block in removed else ""
        print(f"{block:>5}  {influence:.4f}{mark}")
