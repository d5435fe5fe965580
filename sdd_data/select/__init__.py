"""The select stage: PASER row selection under a budget, and the baselines it is compared with.

Modules: `config` (the options), `stage` (the run: embed, score, select, write), `stage_inputs` (the
rows to choose from), `embed` and `vector_cache` (sentence embeddings), `score_inputs`, `scorer_base`,
`scorers`, `transformers_scorer`, `vllm_scorer` and `degrade` (how far the pruned model drifts, JSD),
and the model-free core: `cluster` and `neighbors`, `budget`, `rank`, `concepts`, `dedupe`,
`selection` (inputs and result), `selectors` (the methods by name), `paser`, `baselines`, `report`.
"""

from sdd_data.registry import lazy_exports
from sdd_data.select.config import ClusterConfig, SelectConfig, SelectStageConfig

__all__ = [
    "SELECTORS",
    "ClusterConfig",
    "SelectConfig",
    "SelectStageConfig",
    "SelectStageResult",
    "select",
    "select_rows",
]
__getattr__ = lazy_exports(
    {
        "select": "sdd_data.select.stage:select",
        "SelectStageResult": "sdd_data.select.stage:SelectStageResult",
        "select_rows": "sdd_data.select.selectors:select_rows",
        "SELECTORS": "sdd_data.select.selectors:SELECTORS",
    }
)
