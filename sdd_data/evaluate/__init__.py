"""The eval stage: score models on a task set, retention against the original, speculative acceptance.

Modules: `config` (the options), `stage` (the run), `task_base` and `tasks` (what a task is, and the
tasks by name), `gsm8k`, `multiple_choice`, `mc_scoring` and `nll` (the built-in tasks), `loglikelihood` and
`vllm_loglikelihood` (continuation scoring through an engine's causal LM or its prompt log-probabilities),
`lm_eval_tasks` (lm-evaluation-harness), `report` (retention, table, JSON and chart), `speculative` (acceptance)
and `drafts` (measuring each draft with the chosen engine).
"""

from sdd_data.evaluate.config import EvalConfig
from sdd_data.registry import lazy_exports

__all__ = ["EvalConfig", "evaluate"]
__getattr__ = lazy_exports({"evaluate": "sdd_data.evaluate.stage:evaluate"})
