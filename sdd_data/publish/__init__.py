"""The publish stage: a distilled (or selected) dataset, or a model, with its card, saved locally or pushed to the Hub.

Modules: `config` (the options), `stage` (the checks and the two targets), `layout` (the files every
target gets: shards, card, sdd_data.json), `push` (one commit, or a dry run), `hub_repo` (the Hub repo:
token check, what it holds, one all-or-nothing commit, every Hub error as one line) and `local_folder` (a
folder replaced in one step); for models, `model_stage` (the --model path), `model_layout` (the checkpoint
files, card and sdd_data.json) and `model_records` (the lineage from a model's records, and its evaluation).
"""

from sdd_data.publish.config import PublishConfig
from sdd_data.registry import lazy_exports

__all__ = ["PublishConfig", "PublishResult", "publish"]
__getattr__ = lazy_exports(
    {
        "publish": "sdd_data.publish.stage:publish",
        "PublishResult": "sdd_data.publish.result:PublishResult",
    }
)
