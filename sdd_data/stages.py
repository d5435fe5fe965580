"""The stages, in pipeline order: name -> config dataclass, function and the optional packages each needs.

The CLI and pipelines both find stages here. Configs and functions are named by import path: building
the CLI imports only the configs (no torch, transformers, vLLM or pyarrow), and a stage's function is
imported when it runs.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sdd_data.engines import ENGINES, engine_traits
from sdd_data.registry import Registry, load_member


@dataclass(frozen=True)
class Need:
    """An optional package a stage imports, the extra that installs it, and when it is needed.

    With `option` set, the package is needed only when that option names `value`: the option's text
    is split at commas and each entry's name (before any colon) is compared, so `engine: vllm` and
    `tasks: mc:arc.jsonl,lm-eval:hellaswag` both match by name.
    """

    module: str
    extra: str
    option: str | None = None
    value: str | None = None

    def applies(self, config: Any) -> bool:
        """Whether `config` needs this package."""
        if self.option is None:
            return True
        text = getattr(config, self.option, None)
        if not isinstance(text, str):
            return False
        return self.value in {entry.strip().partition(":")[0] for entry in text.split(",")}


HF = (Need("torch", "hf"), Need("transformers", "hf"), Need("safetensors", "hf"))


@dataclass(frozen=True)
class PathInput:
    """An option that names files or folders a stage reads, and what they must be (`sdd-data run` checks them
    before the first step: each exists with that kind now, or is the output of an earlier step of that kind).

    Roles: `source` (a data file, a saved dataset or a Hub id), `dataset` (any of those or a stage output
    holding rows), `model` (a checkpoint folder, or a name such as `smollm2` or a Hub id), `models`
    (`name=model,...`), `path` (any file or folder, or a name), `file` (a file: a recipe, a merge config),
    `files` (comma-separated files),
    `template` (a registered name or a file), `tasks` (eval tasks whose argument is a file), `stage-output`
    (a stage output of one of the kinds `kinds` names), `eval-output` (an eval folder)."""

    option: str
    role: str
    kinds: str | None = None
    """For `stage-output`: `module:attribute` of the output kinds the stage takes (anything `in` works), so they
    are the stage's own (inspect: the kinds it has a view for)."""


@dataclass(frozen=True)
class Stage:
    """One stage: `function(config_class(...))` does the work; help and description feed the CLI."""

    name: str
    config: str
    """`module:ConfigClass` of the stage's options."""
    function: str
    """`module:function` that runs the stage."""
    help: str
    description: str
    packages: tuple[Need, ...] = ()
    """The optional packages the stage itself imports."""
    engine_choices: tuple[str, ...] = ()
    """Options that choose an engine: the packages that engine declares are needed when it is chosen."""
    output_option: str | None = "output"
    """The option naming the stage's output folder (None when the output is not a local folder)."""
    positional: str | None = None
    """An option the command line also takes as its first argument (`sdd-data inspect PATH`)."""
    inputs: tuple[PathInput, ...] = ()
    """The options that name what the stage reads."""
    check: str | None = None
    """`module:function` that refuses options which cannot run, before anything loads (the stage calls it too)."""
    option_help: tuple[tuple[str, str], ...] = ()
    """(option, `module:function`) pairs: the function's text follows the option's own help, so `--help` lists
    what a registry holds when it runs (the prune methods, say)."""

    def config_class(self) -> type:
        """The stage's config dataclass (a light import)."""
        return load_member(self.config)

    def load(self) -> tuple[type, Callable[[Any], Any]]:
        """The stage's config dataclass and function."""
        return self.config_class(), load_member(self.function)

    def output_folder(self, config: Any) -> Path | None:
        """Where this run of the stage writes its output, when that is a local folder."""
        value = getattr(config, self.output_option, None) if self.output_option else None
        if not value or getattr(config, "repo_id", None) or getattr(config, "dry_run", False):
            return None  # a Hub push or a dry run leaves no output of its own behind
        return Path(value)

    @property
    def needs(self) -> tuple[Need, ...]:
        """Every optional package a run of the stage may need: its own, and those of each engine it can be given."""
        return self.packages + tuple(
            Need(package.module, package.extra, option, name)
            for option in self.engine_choices
            for name in ENGINES
            for package in engine_traits(name).packages
        )

    def missing(self, config: Any) -> list[Need]:
        """The packages this run of the stage needs that are not installed, each once."""
        missing: dict[str, Need] = {}
        for need in self.needs:
            if need.module not in missing and need.applies(config) and importlib.util.find_spec(need.module) is None:
                missing[need.module] = need
        return list(missing.values())


def missing_message(stage: Stage, missing: list[Need]) -> str:
    """One line naming the missing packages of a stage and the extras that install them."""
    extras = ",".join(dict.fromkeys(need.extra for need in missing))
    modules = ", ".join(f"`{need.module}`" for need in missing)
    return f"{stage.name} needs {modules}: install it with `pip install 'sdd-data[{extras}]'`"


PIPELINE_ORDER = (
    Stage(
        "distill",
        "sdd_data.distill.config:DistillConfig",
        "sdd_data.distill.stage:distill",
        help="the teacher rewrites every response; the consistency filter keeps or rejects each rewrite",
        description="Distill an instruction dataset with a teacher.",
        packages=(Need("transformers", "hf"),),
        engine_choices=("engine",),
        inputs=(
            PathInput("data", "source"),
            PathInput("teacher", "model"),
            PathInput("template", "template"),
            PathInput("decontaminate", "files"),
        ),
        check="sdd_data.distill.stage:check_options",
    ),
    Stage(
        "select",
        "sdd_data.select.config:SelectStageConfig",
        "sdd_data.select.stage:select",
        help="choose the rows that best recover a pruned model (PASER: clusters, degradation, IES, concept filter)",
        description=(
            "Select a budget of rows from a distill run or any source: embed the user turns, score how far the "
            "pruned model's next-token distributions drift from the original's (JSD), cluster, share the budget "
            "by cluster degradation, rank by IES and skip rows whose concepts conflict."
        ),
        packages=(
            *HF,
            Need("sentence_transformers", "select"),
            Need("sklearn", "select"),
            Need("scipy", "select"),
            Need("matplotlib", "select"),
        ),
        engine_choices=("scorer_engine",),
        inputs=(
            PathInput("data", "dataset"),
            PathInput("original_model", "model"),
            PathInput("pruned_model", "model"),
            PathInput("embedder", "path"),
        ),
        check="sdd_data.select.stage:check_options",
    ),
    Stage(
        "publish",
        "sdd_data.publish.config:PublishConfig",
        "sdd_data.publish.stage:publish",
        help="save a distilled dataset or a recovered model with its card locally, or push it to the Hugging Face Hub",
        description=(
            "Publish a distill run (or a selection made from one) as one config of a dataset: Parquet files, a "
            "dataset card (README.md) and sdd_data.json, saved to --output-dir or pushed to --repo-id in one commit. "
            "With --model, publish a prune, train or merge output to a model repo the same way: safetensors "
            "weights, tokenizer, and a model card with its lineage and evaluation (--eval)."
        ),
        output_option="output_dir",
        inputs=(PathInput("distilled", "dataset"), PathInput("model", "model"), PathInput("eval", "eval-output")),
        check="sdd_data.publish.stage:check_options",
    ),
    Stage(
        "prune",
        "sdd_data.prune.config:PruneConfig",
        "sdd_data.prune.stage:prune",
        help="cut decoder blocks or width (MLP neurons, KV heads, hidden channels) into a smaller checkpoint",
        description=(
            "Score the model on calibration text and cut it with a prune method (--method; the registered ones "
            "are listed under it). Depth: remove n decoder blocks (--blocks-to-remove); --blocks removes given "
            "0-based blocks without scoring. Width: cut MLP neurons, KV heads or hidden channels to --ffn-size, "
            "--kv-heads, --hidden-size."
        ),
        packages=HF,
        inputs=(PathInput("model", "model"), PathInput("calibration_data", "source")),
        check="sdd_data.prune.stage:check_options",
        option_help=(("method", "sdd_data.prune.methods:methods_help"),),
    ),
    Stage(
        "train",
        "sdd_data.train.config:TrainConfig",
        "sdd_data.train.stage:train",
        help="fine-tune a (pruned) model on distilled data with a TRL recipe: SFT, or distillation from a teacher",
        description=(
            "Fine-tune a model on distilled data with a TRL recipe (recipes/<model>/<method>/config.yaml, the file "
            "`trl sft --config` or `trl distillation --config` reads): SFT with the loss on the assistant answers "
            "only, GKD from a teacher on those answers, or on-policy distillation on their prompts. The model is "
            "saved as safetensors with its tokenizer and a model card (README.md)."
        ),
        packages=(*HF, Need("trl", "train"), Need("peft", "train")),
        inputs=(
            PathInput("recipe", "file"),
            PathInput("data", "dataset"),
            PathInput("model", "model"),
            PathInput("teacher", "model"),
        ),
        check="sdd_data.train.stage:check_options",
        option_help=(("method", "sdd_data.train.methods:methods_help"),),
    ),
    Stage(
        "merge",
        "sdd_data.merge.config:MergeConfig",
        "sdd_data.merge.stage:merge",
        help="SLERP-merge two fine-tuned models of one architecture from a mergekit-style recipe",
        description=(
            "Merge two models with SLERP, tensor by tensor, as described by a mergekit-style YAML recipe "
            "(--merge-config)."
        ),
        packages=(Need("torch", "hf"), Need("safetensors", "hf")),
        inputs=(PathInput("merge_config", "file"),),
        check="sdd_data.merge.stage:check_options",
    ),
    Stage(
        "eval",
        "sdd_data.evaluate.config:EvalConfig",
        "sdd_data.evaluate.stage:evaluate",
        help="score original, pruned and recovered models on a task set; retention and speculative acceptance",
        description=(
            "Evaluate models on built-in tasks (gsm8k, mc:<file.jsonl>) or lm-evaluation-harness tasks, print one "
            "table with retention against the original, write results.json and results.png, and measure "
            "speculative-decoding acceptance of drafts for the original."
        ),
        packages=(
            *HF,
            Need("matplotlib", "eval"),
            Need("lm_eval", "eval", "tasks", "lm-eval"),
            Need("lm_eval", "eval", "tasks", "leaderboard-v1"),
            Need("lm_eval", "eval", "tasks", "lm-eval-mc"),
        ),
        engine_choices=("speculative_engine", "engine"),
        inputs=(
            PathInput("models", "models"),
            PathInput("tasks", "tasks"),
            PathInput("speculative", "models"),
            PathInput("speculative_prompts", "source"),
        ),
        check="sdd_data.evaluate.stage:check_options",
    ),
    Stage(
        "inspect",
        "sdd_data.inspect.config:InspectConfig",
        "sdd_data.inspect.stage:inspect_output",
        help="write one self-contained HTML page to look at a distill run, select output, published or eval folder",
        description=(
            "Write one HTML page (inline CSS, script and SVG; no network) showing a stage output: a distill run's or "
            "published folder's summary, charts and rows with the teacher's rewrite diffed against the source; a "
            "selection's clusters and every row's outcome; an evaluation's scores, retention and acceptance."
        ),
        output_option=None,
        positional="path",
        inputs=(PathInput("path", "stage-output", kinds="sdd_data.inspect.stage:VIEWS"),),
    ),
)

STAGES: Registry[Stage] = Registry("stage", {stage.name: stage for stage in PIPELINE_ORDER})
"""Stage name -> Stage, in pipeline order."""
