"""The prune stage: score decoder blocks on calibration text, remove some and save the pruned model.

Two criteria (maths in block_scores): `angular` removes the n contiguous blocks whose input and the
input n blocks later are closest in angle at the last token (Gromov et al.); `block-influence`
removes the n blocks that change their input least, over all tokens (ShortGPT). Explicit `blocks`
skip scoring. The output is a standard Hugging Face checkpoint with `sdd_data_prune.json` inside it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from sdd_data import __version__
from sdd_data.artifacts import PRUNE_RECORD
from sdd_data.errors import SddError
from sdd_data.models import DTYPES, load_causal_lm, load_tokenizer, resolve_device, resolve_model
from sdd_data.output_folder import check_output_free
from sdd_data.prune.checkpoint import (
    check_blocks,
    check_supported,
    checkpoint_dtype,
    remove_blocks,
    save_model_atomically,
)
from sdd_data.prune.config import METHODS, PruneConfig


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


def parse_blocks(text: str) -> list[int]:
    """0-based block indices from a comma list like `20,21,22,23`."""
    parts = [part.strip() for part in text.split(",") if part.strip()]
    try:
        return [int(part) for part in parts]
    except ValueError:
        raise SddError(f"blocks must be a comma list of 0-based integers like 20,21,22,23, got {text!r}") from None


def prune(config: PruneConfig, show_progress: bool = True) -> PruneResult:
    """Choose blocks (by score, or as given), print the scores, and save the pruned checkpoint."""
    _check_config(config)
    output = Path(config.output)
    check_output_free(output)
    resolved = resolve_model(config.model)
    num_blocks = check_supported(resolved.path)

    if config.blocks is not None:
        removed = check_blocks(parse_blocks(config.blocks), num_blocks)  # before any weight loads
        if config.blocks_to_remove is not None and config.blocks_to_remove != len(removed):
            raise SddError(f"blocks lists {len(removed)} blocks but blocks_to_remove is {config.blocks_to_remove}")
        model = load_causal_lm(resolved.path, trust_remote_code=config.trust_remote_code)
        scores, calibration = None, None
    else:
        from sdd_data.prune.block_scores import check_block_count

        check_block_count(num_blocks, config.blocks_to_remove)
        model, scores, calibration = _score(config, resolved.path, show_progress)
        removed = _choose(config, scores)
        _print_scores(config, scores, removed)
        if config.dtype not in ("auto", checkpoint_dtype(resolved.path)):  # save in the checkpoint's dtype
            del model
            model = load_causal_lm(resolved.path, trust_remote_code=config.trust_remote_code)
    print(f"removing 0-based blocks {', '.join(map(str, removed))} of {num_blocks}")

    remove_blocks(model, removed)
    record = {
        "sdd_data_version": __version__,
        "method": "explicit" if scores is None else config.method,
        "removed_blocks": removed,
        "num_blocks_before": num_blocks,
        "num_blocks_after": num_blocks - len(removed),
        "source_model": {"name": resolved.name, "revision": resolved.revision},
        "scores": None
        if scores is None
        else {
            "angular_distance": {"n": len(removed), "by_start_block": scores.angular_distance},
            "block_influence": scores.block_influence,
        },
        "calibration": calibration,
    }
    save_model_atomically(model, resolved.path, output, {PRUNE_RECORD: json.dumps(record, indent=2) + "\n"})
    print(f"saved the pruned model ({num_blocks - len(removed)} blocks) to {output}")
    return PruneResult(
        output=output,
        removed_blocks=removed,
        num_blocks=num_blocks,
        method=record["method"],
        angular_distance=None if scores is None else scores.angular_distance,
        block_influence=None if scores is None else scores.block_influence,
    )


def _check_config(config: PruneConfig) -> None:
    if config.method not in METHODS:
        raise SddError(f"unknown method {config.method!r}; use one of {', '.join(METHODS)}")
    if config.dtype != "auto" and config.dtype not in DTYPES:
        raise SddError(f"unknown dtype {config.dtype!r}: use auto, {', '.join(DTYPES)}")
    if config.blocks is None and config.blocks_to_remove is None:
        raise SddError("say how many blocks to remove (--blocks-to-remove N) or which ones (--blocks 20,21,22,23)")
    if config.calibration_rows < 1:
        raise SddError(f"calibration_rows must be at least 1, got {config.calibration_rows}")


def _score(config: PruneConfig, model_path: str, show_progress: bool):
    """Load calibration rows and the model, and score every block; returns (model, scores, calibration record)."""
    from sdd_data.data.sources import SourceSpec, load_rows
    from sdd_data.prune.calibration import calibration_texts, score_blocks

    source = load_rows(SourceSpec(data=config.calibration_data, limit=config.calibration_rows))
    tokenizer = load_tokenizer(model_path, trust_remote_code=config.trust_remote_code)
    texts = calibration_texts(source.rows, tokenizer)
    model = load_causal_lm(
        model_path, dtype=config.dtype, device=resolve_device(config.device), trust_remote_code=config.trust_remote_code
    )
    if len(texts) < config.calibration_rows:
        print(f"calibrating on {len(texts)} rows: {source.name} has no more usable rows")
    scores = score_blocks(
        model, tokenizer, texts, config.blocks_to_remove, config.max_length, config.batch_size, show_progress
    )
    calibration = {
        "source": source.name,
        "fingerprint": source.fingerprint,
        "rows": scores.rows,
        "tokens": scores.tokens,
        "max_length": config.max_length,
        "format": "chat_template" if getattr(tokenizer, "chat_template", None) else "plain_text",
    }
    return model, scores, calibration


def _choose(config: PruneConfig, scores) -> list[int]:
    from sdd_data.prune.block_scores import choose_contiguous, choose_lowest

    if config.method == "angular":
        return choose_contiguous(scores.angular_distance, config.blocks_to_remove)
    return choose_lowest(scores.block_influence, config.blocks_to_remove)


def _print_scores(config: PruneConfig, scores, removed: list[int]) -> None:
    """The score table of the chosen method, marking what is removed."""
    n = config.blocks_to_remove
    if config.method == "angular":
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
