"""The prune stage's options: one dataclass, from which its CLI flags and YAML keys are made."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class PruneConfig:
    """Everything the prune stage needs; every field is also a CLI flag and a YAML key."""

    model: str
    """Model to prune: `smollm2`, a local checkpoint folder or a Hub id (Llama, Mistral, Qwen2, Qwen3, SmolLM3)."""
    output: str = "runs/pruned"
    """Folder for the pruned checkpoint; it must not exist yet, or be empty."""
    blocks_to_remove: int | None = None
    """How many decoder blocks to remove (n); required for a depth method unless `blocks` is given. With a
    width method they are chosen by the method's block method (block influence for the built-in ones), before
    the width is cut."""
    method: str = "angular"
    """What is cut and how it is chosen: the name of a registered prune method (default `angular`). A depth
    method removes whole decoder blocks; a width method cuts every block to a smaller width (`ffn_size`,
    `kv_heads`, `hidden_size`)."""
    blocks: str | None = None
    """Explicit 0-based blocks to remove, as a comma list like 20,21,22,23; skips block scoring."""
    ffn_size: int | None = None
    """MLP intermediate size every block keeps (`minitron`, `sdmprune`)."""
    kv_heads: int | None = None
    """KV heads every block keeps (`minitron`); each goes with its query heads, so GQA stays consistent."""
    hidden_size: int | None = None
    """Hidden size (embedding channels) the model keeps (`minitron`)."""
    completion_tokens: int = 128
    """`sdmprune`: how many tokens the original model writes for each calibration prompt."""
    sdmprune_warmup: float = 0.1
    """`sdmprune`: the share of the neurons to remove that a first cross-entropy Taylor step removes, so the
    model differs from the original and the self-distillation gradient is not zero (0 < share < 1)."""
    calibration_data: str = "example"
    """Calibration rows: a local json/jsonl/parquet/csv file, a saved dataset, a Hub dataset id, or `example` (the
    36 built-in rows, enough to try the stage; pass the instruction data the pruned model will be trained on)."""
    calibration_rows: int = 256
    """Score on the first N usable rows of the calibration data."""
    max_length: int = 512
    """Longest calibration text in tokens; longer ones are cut (their last kept token is then the last token)."""
    batch_size: int = 8
    """Calibration texts per forward pass."""
    dtype: str = "auto"
    """Weights dtype for scoring (float32, bfloat16, float16); `auto` is the checkpoint's own. Scores are computed
    in fp32 either way, and the pruned checkpoint always keeps the checkpoint's dtype."""
    device: str = "auto"
    """Device for scoring: auto (the GPU when there is one), cpu, cuda or cuda:N."""
    trust_remote_code: bool = False
    """Allow model code from the checkpoint's repository (off unless you trust it)."""
