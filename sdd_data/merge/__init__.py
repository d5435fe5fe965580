"""The merge stage: SLERP two fine-tuned models of one architecture, from a mergekit-style recipe.

Modules: `config` (the options), `stage` (the run), `recipe` (the mergekit YAML), `schedule` (the t of
every tensor), `slerp` (the pure maths), `checkpoints` (checks and the streamed merge) and
`safetensors_stream` (reading and writing one tensor at a time).
"""

from sdd_data.merge.config import MergeConfig
from sdd_data.registry import lazy_exports

__all__ = ["MergeConfig", "MergeResult", "merge", "read_recipe"]
__getattr__ = lazy_exports(
    {
        "merge": "sdd_data.merge.stage:merge",
        "MergeResult": "sdd_data.merge.stage:MergeResult",
        "read_recipe": "sdd_data.merge.recipe:read_recipe",
    }
)
