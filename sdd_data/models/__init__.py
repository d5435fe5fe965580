"""Models: resolve a name into a local checkpoint, and load it (the one loader every stage uses)."""

from sdd_data.models.loading import (
    DTYPES,
    check_same_tokenizer,
    load_causal_lm,
    load_tokenizer,
    resolve_device,
    resolve_dtype,
    tokenizer_differences,
)
from sdd_data.models.resolve import HUB_ALLOW_PATTERNS, ResolvedModel, cache_dir, resolve_model

__all__ = [
    "DTYPES",
    "HUB_ALLOW_PATTERNS",
    "ResolvedModel",
    "cache_dir",
    "check_same_tokenizer",
    "load_causal_lm",
    "load_tokenizer",
    "resolve_device",
    "resolve_dtype",
    "resolve_model",
    "tokenizer_differences",
]
