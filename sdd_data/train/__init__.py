"""The train stage: fine-tune a (pruned) model on distilled data with a TRL recipe, SFT or GKD.

Modules: `config` (the options), `stage` (the run and the saved model), `data` (training rows from any
stage output or source) and `recipe` (TRL recipe files read with TRL's own argument classes).
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
