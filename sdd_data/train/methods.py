"""The training methods found by name: each is one `TrainingMethod` object, listed here.

A recipe's method is the one whose TRL arguments class reads every key it sets; when several do, the one
with the fewest options (an SFT recipe is also a valid GKD recipe), and of methods with the same options the
one registered first. A recipe that two methods with different options both read needs `--method`.
"""

from __future__ import annotations

import dataclasses

from sdd_data.errors import SddError, require
from sdd_data.registry import Registry
from sdd_data.train.method import TrainingMethod

TRAINING_METHODS: Registry[TrainingMethod] = Registry(
    "training method",
    {
        "sft": "sdd_data.train.sft:SFT",
        "gkd": "sdd_data.train.gkd:GKD",
        "onpolicy": "sdd_data.train.onpolicy:ON_POLICY",
    },
)
"""Method name -> method object."""

# Keys TRL's CLI reads from a config file besides the dataclass fields: environment variables and the
# accelerate config that `trl sft` forwards to `accelerate launch`.
CLI_KEYS = frozenset({"env", "accelerate_config"})


def argument_classes(method: TrainingMethod) -> tuple[type, ...]:
    """The dataclasses TRL's CLI parses a recipe of this method into."""
    trl = require("trl", "train")
    return trl.ScriptArguments, method.config_class(), trl.ModelConfig, trl.DatasetMixtureConfig


def recipe_keys(method: TrainingMethod) -> frozenset[str]:
    """Every key a recipe of this method may set: its TRL argument classes' fields and the CLI's own keys."""
    return frozenset(item.name for cls in argument_classes(method) for item in dataclasses.fields(cls)) | CLI_KEYS


def recipe_method(path: object, values: dict, requested: str | None = None) -> TrainingMethod:
    """The method that reads this recipe (`requested` if given), after checking it knows every key set."""
    keys = set(values)
    if requested is not None:
        method = TRAINING_METHODS.get(requested)
        _refuse_unknown(path, keys, method)
        return method
    known = {name: recipe_keys(method) for name, method in TRAINING_METHODS.items()}
    readers = [name for name in known if keys <= known[name]]
    if not readers:  # name the keys no method knows, or those the closest method lacks
        closest = min(known, key=lambda name: len(keys - known[name]))
        _refuse_unknown(path, keys, TRAINING_METHODS.get(closest))
    narrowest = [name for name in readers if not any(known[other] < known[name] for other in readers)]
    # A method reading the same keys as one registered before it (its own trainer on SFTConfig, say) is
    # chosen only by --method.
    narrowest = [
        name for place, name in enumerate(narrowest) if known[name] not in [known[n] for n in narrowest[:place]]
    ]
    if len(narrowest) > 1:
        raise SddError(
            f"recipe {path} is read alike by the methods {' and '.join(narrowest)}: give --method to say which"
        )
    return TRAINING_METHODS.get(narrowest[0])


def _refuse_unknown(path: object, keys: set[str], method: TrainingMethod) -> None:
    unknown = sorted(keys - recipe_keys(method))
    if unknown:
        reader = method.config_class().__name__
        raise SddError(
            f"recipe {path}: unknown key(s) {', '.join(unknown)} (not an option of TRL's ScriptArguments, "
            f"{reader}, ModelConfig)"
        )


def methods_help() -> str:
    """One sentence per registered method, for the `--method` help."""
    described = " ".join(f"`{name}`: {method.help}." for name, method in TRAINING_METHODS.items())
    return f"The registered methods: {described}"
