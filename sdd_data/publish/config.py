"""The publish stage's options: one dataclass, from which its CLI flags and YAML keys are made."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class PublishConfig:
    """What to publish and where; every field is also a CLI flag and a YAML key."""

    distilled: str | None = None
    """A dataset to publish: the output folder of `sdd-data distill`, or of `sdd-data select` run on one."""
    model: str | None = None
    """A model to publish instead: the output folder of `sdd-data prune`, `train` or `merge` (safetensors
    weights, config and tokenizer files), with a model card that says how it was made."""
    repo_id: str | None = None
    """Hub repo to push to (user/name): a dataset repo for --distilled, a model repo for --model; without it
    the files are saved to --output-dir."""
    output_dir: str | None = None
    """Local folder to save to (in the Hub repo's layout); with --dry-run, where the files a push would upload
    are written."""
    config_name: str | None = None
    """Name of this dataset's config in the repo or folder; default: the source's name (e.g. gsm8k)."""
    license: str | None = None
    """License id for the card (e.g. cc-by-4.0, mit, apache-2.0); default: the card's own, else unknown."""
    source_license: str | None = None
    """License of the source dataset, recorded in the card and in sdd_data.json."""
    pretty_name: str | None = None
    """Human-readable dataset name for the card; default: the card's own, else the repo or folder name."""
    include_dropped: bool = True
    """Publish the rows set aside by the filter or the source as a separate `dropped` split."""
    report: bool = False
    """Also publish the config's `sdd-data inspect` page (data/<config>/report.html: its summary, charts and
    every row in one self-contained HTML file) and link it from the card."""
    private: bool = False
    """Create the Hub repo as private (an existing repo keeps its visibility)."""
    revision: str = "main"
    """Hub branch to commit to; created from main when missing."""
    dry_run: bool = False
    """Write what a push would upload to --output-dir and list it, without uploading anything."""
    shard_rows: int = 100_000
    """Most rows per Parquet file."""
    dataset_repo: str | None = None
    """With --model: the Hub dataset repo (user/name) of the data the model was recovered with, linked from
    the model card (publish the data first with --distilled)."""
    eval: str | None = None
    """With --model: the --output folder of `sdd-data eval` that scored this model; its results go into the
    card as a table and as model-index metadata."""
    eval_model: str | None = None
    """With --eval: this model's name in the eval's --models; default: the model evaluated from the --model
    folder."""
