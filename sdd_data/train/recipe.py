"""Training recipes: TRL YAML configs read with TRL's own argument classes, with sdd-data's overrides applied.

A recipe is the file `trl sft --config <file>` reads: keys of ScriptArguments, SFTConfig and ModelConfig
(and DatasetMixtureConfig). A recipe that sets a key only GKD knows (`lmbda`, `beta`, `teacher_model_name_or_path`…)
is a logit-distillation recipe, read with GKDConfig instead of SFTConfig.
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sdd_data.config import read_yaml_config
from sdd_data.errors import SddError, require

SFT = "sft"
GKD = "gkd"
# Keys TRL's CLI reads from a config file besides the dataclass fields: environment variables and the
# accelerate config that `trl sft` forwards to `accelerate launch`.
CLI_KEYS = frozenset({"env", "accelerate_config"})


@dataclass
class Recipe:
    """A parsed recipe: which trainer it is for, the values it sets, and TRL's argument objects."""

    path: Path
    method: str
    """`sft` (SFTTrainer) or `gkd` (GKDTrainer: logit distillation from a teacher)."""
    values: dict
    """The keys the recipe file sets, after overrides (what the model card reports)."""
    script_args: Any
    training_args: Any
    model_args: Any


def gkd_classes() -> tuple[type, type]:
    """TRL's GKDConfig and GKDTrainer (in `trl.experimental` since TRL 1.0)."""
    require("trl", "train")
    try:
        with warnings.catch_warnings():  # the README says GKD is experimental in TRL
            warnings.simplefilter("ignore")
            from trl.experimental.gkd import GKDConfig, GKDTrainer
    except ImportError:  # TRL before 1.0 exported them at the top level
        from trl import GKDConfig, GKDTrainer
    return GKDConfig, GKDTrainer


def argument_classes(method: str) -> tuple[type, ...]:
    """The dataclasses TRL's CLI parses a recipe of this method into."""
    trl = require("trl", "train")
    training_config = gkd_classes()[0] if method == GKD else trl.SFTConfig
    return trl.ScriptArguments, training_config, trl.ModelConfig, trl.DatasetMixtureConfig


def _field_names(*classes: type) -> set[str]:
    return {item.name for cls in classes for item in dataclasses.fields(cls)}


def gkd_only_keys() -> set[str]:
    """Keys that GKDConfig has and SFTConfig lacks: any of them makes a recipe a GKD recipe."""
    trl = require("trl", "train")
    return _field_names(gkd_classes()[0]) - _field_names(trl.SFTConfig)


def recipe_method(values: dict) -> str:
    """`gkd` when the recipe sets a GKD-only key, else `sft`."""
    return GKD if set(values) & gkd_only_keys() else SFT


def read_recipe_values(path: str | Path) -> dict:
    """The mapping a recipe file holds (a missing or malformed file is an SddError)."""
    path = Path(path)
    if not path.is_file():
        raise SddError(f"recipe {path} does not exist" + (" (it is a folder)" if path.is_dir() else ""))
    return read_yaml_config(path)


def check_recipe_keys(path: str | Path, values: dict) -> str:
    """The recipe's method, after checking that TRL knows every key it sets (unknown keys are named)."""
    method = recipe_method(values)
    unknown = sorted(set(values) - _field_names(*argument_classes(method)) - CLI_KEYS)
    if unknown:
        readers = (
            "ScriptArguments, GKDConfig, ModelConfig" if method == GKD else "ScriptArguments, SFTConfig, ModelConfig"
        )
        raise SddError(f"recipe {path}: unknown key(s) {', '.join(unknown)} (not an option of TRL's {readers})")
    return method


def parse_recipe(path: str | Path, overrides: dict | None = None) -> Recipe:
    """Read a recipe with TRL's parser classes, with `overrides` (recipe keys) applied over the file's values."""
    values = {**read_recipe_values(path), **(overrides or {})}
    method = check_recipe_keys(path, values)
    for name, value in (values.get("env") or {}).items():
        os.environ[name] = str(value)
    trl = require("trl", "train")
    parser = trl.TrlParser(argument_classes(method))

    def refuse(message: str) -> None:  # argparse's error() prints the usage and exits
        raise SddError(f"recipe {path}: {message}")

    parser.error = refuse
    parser.set_defaults_with_config(**{key: value for key, value in values.items() if key not in CLI_KEYS})
    try:
        script_args, training_args, model_args, _ = parser.parse_args_into_dataclasses(args=[])
    except (ValueError, TypeError) as error:
        raise SddError(f"recipe {path}: {error}") from None
    return Recipe(Path(path), method, values, script_args, training_args, model_args)
