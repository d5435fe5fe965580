"""What a publish reports, for a dataset and a model alike."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class PublishResult:
    """Where the dataset or model went and which files changed."""

    target: str
    config_name: str | None
    """The dataset config published; None for a model."""
    written: list[str]
    deleted: list[str]
    commit: str | None
