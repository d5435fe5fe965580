"""The merge stage's options: one dataclass, from which its CLI flags and YAML keys are made."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class MergeConfig:
    """Everything the merge stage needs; every field is also a CLI flag and a YAML key."""

    merge_config: str
    """mergekit-style SLERP recipe (YAML): `slices` or `models` (two), merge_method: slerp, base_model,
    parameters.t, dtype."""
    output: str = "runs/merged"
    """Folder for the merged checkpoint; it must not exist yet, or be empty."""
    max_shard_size: str = "5GB"
    """Largest safetensors shard written, like 5GB (10^9 bytes) or 2GiB; a bigger tensor gets a shard of its own."""
    dtype: str | None = None
    """Dtype of the merged floating-point tensors (float32, float16, bfloat16); default: the recipe's
    out_dtype or dtype, else the base model's."""
    print_schedule: bool = False
    """Print the t of every tensor (name, layer, t) after checking the two models, and merge nothing."""
