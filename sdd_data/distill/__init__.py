"""The distill stage: the teacher rewrites every response; the consistency filter keeps or rejects each rewrite.

Modules: `config` (the options), `stage` (the run), `templates` (rewrite prompts), `prompt_length`
(prompts against the teacher's context), `consistency` (the filter), `shards` (rows to judged shard tables),
`executors` (where shards are generated: here, `data_parallel` vllm replicas, or `ray_executor`), `run_dir`
(the resumable output folder), `remote_output` (an output at an fsspec URL) and `stats` (what a run counted).
"""

from sdd_data.data.sources import SourceSpec
from sdd_data.distill.config import DistillConfig
from sdd_data.registry import lazy_exports

__all__ = ["DistillConfig", "DistillResult", "SourceSpec", "distill"]
__getattr__ = lazy_exports(
    {
        "distill": "sdd_data.distill.stage:distill",
        "DistillResult": "sdd_data.distill.stage:DistillResult",
    }
)
