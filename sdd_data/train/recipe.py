"""Training recipes: TRL YAML configs read with TRL's own argument classes, with sdd-data's overrides applied.

A recipe is the file `trl sft --config <file>` (or `trl distillation --config`) reads: keys of ScriptArguments,
the method's training-arguments class (SFTConfig, GKDConfig, DistillationConfig…) and ModelConfig (and
DatasetMixtureConfig). Which method a recipe is for follows from its keys (`methods.recipe_method`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sdd_data.config import read_yaml_config
from sdd_data.errors import SddError, require
from sdd_data.train.method import TrainingMethod
from sdd_data.train.methods import CLI_KEYS, argument_classes, recipe_method


@dataclass
class Recipe:
    """A parsed recipe: which method it is for, the values it sets, and TRL's argument objects."""

    path: Path
    method: TrainingMethod
    """The training method whose TRL arguments class read the recipe (`methods.recipe_method`)."""
    values: dict
    """The keys the recipe file sets, after overrides (what the model card reports)."""
    script_args: Any
    training_args: Any
    model_args: Any


def read_recipe_values(path: str | Path) -> dict:
    """The mapping a recipe file holds (a missing or malformed file is an SddError)."""
    path = Path(path)
    if not path.is_file():
        raise SddError(f"recipe {path} does not exist" + (" (it is a folder)" if path.is_dir() else ""))
    return read_yaml_config(path)


def parse_recipe(path: str | Path, overrides: dict | None = None, method_name: str | None = None) -> Recipe:
    """Read a recipe with TRL's parser classes, with `overrides` (recipe keys) applied over the file's values;
    its method is `method_name`, or the one its keys say."""
    values = {**read_recipe_values(path), **(overrides or {})}
    method = recipe_method(path, values, method_name)
    for name, value in (values.get("env") or {}).items():
        os.environ[name] = str(value)
    parser = require("trl", "train").TrlParser(argument_classes(method))

    def refuse(message: str) -> None:  # argparse's error() prints the usage and exits
        raise SddError(f"recipe {path}: {message}")

    parser.error = refuse
    parser.set_defaults_with_config(**{key: value for key, value in values.items() if key not in CLI_KEYS})
    try:
        script_args, training_args, model_args, _ = parser.parse_args_into_dataclasses(args=[])
    except (ValueError, TypeError) as error:
        raise SddError(f"recipe {path}: {error}") from None
    return Recipe(Path(path), method, values, script_args, training_args, model_args)
