"""The files a model publish writes, the same for every target: the safetensors checkpoint, its config and
tokenizer files, the model card (README.md) and sdd_data.json (how the model was made, no local paths).

Only safetensors weights travel: a folder with pickle weights (.bin, .pt, .pth, .ckpt, .pkl) is refused,
since loading those runs code. The checkpoint's files are hard-linked into the staging folder (copied
where links fail), never changed.
"""

from __future__ import annotations

import json
from fnmatch import fnmatchcase
from pathlib import Path

from sdd_data import __version__
from sdd_data.artifacts import CARD_FILE, PROVENANCE_FILE
from sdd_data.data.stage_data import read_json_object
from sdd_data.errors import SddError
from sdd_data.models.resolve import HUB_ALLOW_PATTERNS
from sdd_data.publish.links import check_links_inside
from sdd_data.publish.local_folder import link_or_copy

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")
"""Weight files that unpickle when loaded: never published."""
VOCABULARY_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json")
"""A checkpoint with none of these has no tokenizer to load (tokenizer_config.json alone is not one)."""
SAFETENSORS_INDEX = "model.safetensors.index.json"


def checkpoint_file(name: str) -> bool:
    """Whether a file of a model repo belongs to the checkpoint a model publish replaces (weights of any
    format, config, tokenizer), so that a file the new checkpoint lacks is deleted from the repo."""
    return "/" not in name and (
        any(fnmatchcase(name, pattern) for pattern in HUB_ALLOW_PATTERNS) or name.endswith(PICKLE_SUFFIXES)
    )


def checkpoint_files(folder: Path) -> list[str]:
    """The files of the checkpoint in `folder` to publish; one line when it is not a publishable checkpoint."""
    names = sorted(path.name for path in folder.iterdir() if path.is_file())
    check_links_inside(folder, names)
    pickles = [name for name in names if name.endswith(PICKLE_SUFFIXES)]
    if pickles:
        raise SddError(
            f"--model {folder} holds pickle files ({', '.join(pickles[:3])}): publish pushes safetensors weights "
            "only, since loading pickles runs code; save the model with safe_serialization=True "
            "(sdd-data's prune, train and merge do) and move the pickle files out"
        )
    weights = [name for name in names if name.endswith(".safetensors")]
    if not weights:
        raise SddError(
            f"--model {folder} has no safetensors weights (*.safetensors); give the output folder of "
            "sdd-data prune, train or merge"
        )
    if SAFETENSORS_INDEX in names:
        index = read_json_object(folder / SAFETENSORS_INDEX, "the model folder")
        weight_map = index.get("weight_map")
        shards = set(weight_map.values()) if isinstance(weight_map, dict) else None
        if shards is None or not shards <= set(weights):
            missing = sorted((shards or set()) - set(weights))[:3]
            raise SddError(
                f"{folder / SAFETENSORS_INDEX} names shards that are missing ({', '.join(missing) or 'no weight_map'})"
                "; the checkpoint is incomplete: copy it again or rerun the stage that wrote it"
            )
    if not any(name in names for name in VOCABULARY_FILES):
        raise SddError(
            f"--model {folder} has no tokenizer ({', '.join(VOCABULARY_FILES)}); copy the tokenizer files of the "
            "model it was made from into it, so that the published model can be used"
        )
    return [name for name in names if checkpoint_file(name)]


def model_provenance(lineage: dict, dataset_repo: str | None, evaluation: dict | None) -> dict:
    """What sdd_data.json records about a published model."""
    return {**lineage, "dataset_repo": dataset_repo, "evaluation": evaluation, "published_with": __version__}


def stage_model_files(folder: Path, source: Path, files: list[str], card: str, provenance: dict) -> list[str]:
    """Link the checkpoint's `files` of `source` into `folder`, write the card and sdd_data.json; their paths."""
    for name in files:
        link_or_copy(str(source / name), str(folder / name))
    (folder / CARD_FILE).write_text(card, encoding="utf-8")
    text = json.dumps({"model": provenance}, indent=2, ensure_ascii=False) + "\n"
    (folder / PROVENANCE_FILE).write_text(text, encoding="utf-8")
    return [*files, CARD_FILE, PROVENANCE_FILE]
