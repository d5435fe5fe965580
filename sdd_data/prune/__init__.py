"""The prune stage: score decoder blocks on calibration text, remove some and save a standard checkpoint.

Modules: `config` (the options), `stage` (the run), `method` (what a prune method is), `methods` (the
registered ones: `depth_methods`, `width_methods`), `calibration` (hooks over calibration text),
`block_scores` (angular distance and block influence, pure maths) and `checkpoint` (block surgery and
saving).
"""

from sdd_data.prune.config import PruneConfig
from sdd_data.registry import lazy_exports

__all__ = ["PruneConfig", "PruneResult", "prune", "save_pruned_checkpoint"]
__getattr__ = lazy_exports(
    {
        "prune": "sdd_data.prune.stage:prune",
        "PruneResult": "sdd_data.prune.stage:PruneResult",
        "save_pruned_checkpoint": "sdd_data.prune.checkpoint:save_pruned_checkpoint",
    }
)
