"""The registry of stages: name -> config dataclass and function, shared by the CLI and pipelines.

Stages are named by import path and loaded on first use, so listing them imports no heavy library.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .errors import SddError


@dataclass(frozen=True)
class Stage:
    """One stage: `function(config_class(...))` does the work; help and description feed the CLI."""

    name: str
    module: str
    config_class_name: str
    function_name: str
    help: str
    description: str

    def load(self) -> tuple[type, Callable[[Any], Any]]:
        """The stage's config dataclass and function."""
        module = importlib.import_module(self.module)
        return getattr(module, self.config_class_name), getattr(module, self.function_name)


STAGES: dict[str, Stage] = {}
"""Stage name -> Stage, in pipeline order."""


def register_stage(name: str, module: str, config_class: str, function: str, help: str, description: str) -> None:
    """Add a stage to `STAGES`."""
    STAGES[name] = Stage(name, module, config_class, function, help, description)


def get_stage(name: str) -> Stage:
    """The stage called `name`, or an error listing the known ones."""
    if name not in STAGES:
        raise SddError(f"unknown stage {name!r}; known stages: {', '.join(STAGES)}")
    return STAGES[name]


register_stage(
    "distill", "sdd_data.distill", "DistillConfig", "distill",
    help="the teacher rewrites every response; the consistency filter keeps or rejects each rewrite",
    description="Distill an instruction dataset with a teacher.",
)

register_stage(
    "select", "sdd_data.select.stage", "SelectStageConfig", "select",
    help="choose the rows that best recover a pruned model (PASER: clusters, degradation, IES, concept filter)",
    description="Select a budget of rows from a distill run or any source: embed the user turns, score how far the "
                "pruned model's next-token distributions drift from the original's (JSD), cluster, share the budget "
                "by cluster degradation, rank by IES and skip rows whose concepts conflict.",
)

register_stage(
    "publish", "sdd_data.publish", "PublishConfig", "publish",
    help="save a distilled dataset with its card locally, or push it to the Hugging Face Hub",
    description="Publish a distill run as one config of a dataset: Parquet files, a dataset card (README.md) and "
                "sdd_data.json, saved to --output-dir or pushed to --repo-id in one commit.",
)

register_stage(
    "prune", "sdd_data.prune", "PruneConfig", "prune",
    help="remove decoder blocks chosen by angular distance or block influence, and save a standard checkpoint",
    description="Score every decoder block on calibration text and remove n of them: the n contiguous blocks "
                "of smallest angular distance (angular, the default) or the n blocks of lowest block influence "
                "(block-influence); --blocks removes given 0-based blocks without scoring.",
)

register_stage(
    "train", "sdd_data.train", "TrainConfig", "train",
    help="fine-tune a (pruned) model on distilled data with a TRL recipe: SFT, or GKD from a teacher",
    description="Fine-tune a model on distilled data with a TRL recipe (recipes/<model>/<method>/config.yaml, the "
                "file `trl sft --config` reads); the loss covers the assistant answers only, and the model is saved "
                "as safetensors with its tokenizer and a model card (README.md).",
)

register_stage(
    "merge", "sdd_data.merge", "MergeConfig", "merge",
    help="SLERP-merge two fine-tuned models of one architecture from a mergekit-style recipe",
    description="Merge two models with SLERP, tensor by tensor, as described by a mergekit-style YAML recipe "
                "(--merge-config).",
)

register_stage(
    "eval", "sdd_data.evaluate", "EvalConfig", "evaluate",
    help="score original, pruned and recovered models on a task set; retention and speculative acceptance",
    description="Evaluate models on built-in tasks (gsm8k, mc:<file.jsonl>) or lm-evaluation-harness tasks, "
                "print one table with retention against the original, write results.json and results.png, and "
                "measure speculative-decoding acceptance of drafts for the original.",
)
