"""The train stage: fine-tune a (pruned) model on distilled data with a TRL recipe of a registered method.

Modules: `config` (the options), `stage` (the run and the saved model), `data` (training rows from any
stage output or source), `recipe` (TRL recipe files read with TRL's own argument classes), `method` (what a
training method is), `methods` (the registry and which method reads a recipe) and one module per method:
`sft`, `gkd`, `onpolicy`.
"""

from sdd_data.registry import lazy_exports
from sdd_data.train.config import TrainConfig

__all__ = ["TrainConfig", "TrainResult", "train"]
__getattr__ = lazy_exports(
    {
        "train": "sdd_data.train.stage:train",
        "TrainResult": "sdd_data.train.stage:TrainResult",
    }
)
