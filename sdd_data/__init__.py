"""sdd-data: self-distilled instruction datasets for recovering pruned LLMs."""

__version__ = "0.1.0"
