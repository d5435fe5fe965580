"""Merging two checkpoints: compatibility checks, the per-tensor schedule and the streamed SLERP.

Peak memory is the two input tensors being merged (memory-mapped, in their stored dtype) plus a few
fp32 chunks of 1 MiB (slerp.CHUNK_ELEMENTS): for the largest tensor, about 2 × its size + 10 MiB. No
shard is ever held in memory: the writer streams each tensor's bytes into its planned place.
"""

from __future__ import annotations

import contextlib
import json
import shutil
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from sdd_data.data.stage_data import read_json_object
from sdd_data.errors import SddError
from sdd_data.merge.recipe import SlerpRecipe
from sdd_data.merge.safetensors_stream import CheckpointReader, ShardedWriter, TensorInfo
from sdd_data.merge.schedule import ScheduledTensor, layer_index, t_for_tensor
from sdd_data.merge.slerp import CHUNK_ELEMENTS, SlerpWeights, slerp_weights, weighted_sum
from sdd_data.models.loading import check_same_tokenizer, load_tokenizer
from sdd_data.models.resolve import HUB_ALLOW_PATTERNS, resolve_model

SIDE_FILE_PATTERNS = [pattern for pattern in HUB_ALLOW_PATTERNS if "safetensors" not in pattern]
VOCABULARY_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json")
"""A checkpoint with none of these has no tokenizer to load (tokenizer_config.json alone is not one)."""


@dataclass
class MergePlan:
    """The two checked checkpoints and the t of every tensor, in the base model's storage order."""

    base: CheckpointReader
    other: CheckpointReader
    schedule: list[ScheduledTensor]


def plan_merge(recipe: SlerpRecipe) -> MergePlan:
    """Open both models, check that they can be merged, and work out the t of every tensor."""
    base_path, other_path = resolve_checkpoint(recipe.base_model), resolve_checkpoint(recipe.other_model)
    check_same_architecture(base_path, other_path)
    check_same_tokenizers(base_path, other_path)
    base, other = CheckpointReader(base_path), CheckpointReader(other_path)
    check_same_tensors(base, other)
    num_layers = count_layers(base)
    recipe.check_layer_range(num_layers)
    schedule = [
        ScheduledTensor(name, layer_index(name), t_for_tensor(recipe.t, name, num_layers)) for name in base.tensors
    ]
    return MergePlan(base, other, schedule)


def resolve_checkpoint(name: str) -> Path:
    """A recipe's model as a local folder: a directory as given, else a Hub id or `smollm2`."""
    local = Path(name).expanduser()
    if local.is_dir():
        return local
    try:
        return Path(resolve_model(name).path)
    except SddError as error:
        raise SddError(f"model {name!r} is not a local checkpoint folder, and as a Hub id: {error}") from None


def check_same_architecture(base_path: Path, other_path: Path) -> None:
    """Refuse two checkpoints whose config.json name different architectures or model types."""
    kinds = []
    for path in (base_path, other_path):
        config = _read_config(path)
        kinds.append((config.get("architectures"), config.get("model_type")))
    if kinds[0] != kinds[1]:
        raise SddError(
            f"the models have different architectures: {base_path} is {kinds[0][0]} ({kinds[0][1]}), "
            f"{other_path} is {kinds[1][0]} ({kinds[1][1]})"
        )


TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer.model",
    "vocab.json",
    "vocab.txt",
    "merges.txt",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "chat_template.jinja",
    "chat_template.json",
)
"""Every file a tokenizer (and its chat template) is loaded from."""


LOADER_KEYS = frozenset({"is_local", "local_files_only", "name_or_path", "_commit_hash"})
"""Keys transformers writes into tokenizer_config.json about where a tokenizer was loaded from, not what it is."""


def _tokenizer_config(path: Path) -> object:
    try:
        values = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return {key: value for key, value in values.items() if key not in LOADER_KEYS} if isinstance(values, dict) else None


def same_tokenizer_files(first: Path, second: Path) -> bool:
    """Whether two checkpoints hold the same tokenizer files (byte for byte, tokenizer_config.json but for where
    it was loaded from), so that their tokenizers are one without loading either."""
    for name in TOKENIZER_FILES:
        here, there = first / name, second / name
        if here.is_file() != there.is_file():
            return False
        if not here.is_file() or here.read_bytes() == there.read_bytes():
            continue
        if name != "tokenizer_config.json":
            return False
        values = _tokenizer_config(here)
        if values is None or values != _tokenizer_config(there):
            return False
    return True


def check_same_tokenizers(base_path: Path, other_path: Path) -> None:
    """Refuse two checkpoints whose tokenizers differ: the merge copies the base model's for both.

    Two checkpoints without tokenizer files pass (there is nothing to copy); one with and one without
    are refused, since nothing says that the other model was trained with the tokenizer it would get.
    When the tokenizer files are the same bytes nothing is loaded; otherwise both tokenizers are loaded and
    compared, which also explains a difference.
    """
    has_tokenizer = [any((path / name).is_file() for name in VOCABULARY_FILES) for path in (base_path, other_path)]
    if not any(has_tokenizer):
        return
    if not all(has_tokenizer):
        without, with_one = (base_path, other_path) if not has_tokenizer[0] else (other_path, base_path)
        raise SddError(
            f"{without} has no tokenizer ({', '.join(VOCABULARY_FILES)}) but {with_one} has one, so nothing shows "
            f"that both models share it; copy the tokenizer files of the model {without} was trained from into it"
        )
    if same_tokenizer_files(base_path, other_path):
        return  # the same bytes make the same tokenizer: nothing to load
    try:
        check_same_tokenizer(
            load_tokenizer(base_path), load_tokenizer(other_path), f"the base model {base_path}", str(other_path)
        )
    except SddError as error:
        raise SddError(
            f"{error}; the merged model would read the other model's token ids with the base model's tokenizer: "
            "merge two models fine-tuned from one parent"
        ) from None


def check_same_tensors(base: CheckpointReader, other: CheckpointReader) -> None:
    """Refuse two checkpoints whose tensor names or shapes differ, naming the first mismatching tensor."""
    base_layers, other_layers = count_layers(base), count_layers(other)
    depth = (
        ""
        if base_layers == other_layers
        else (
            f" (the base has {base_layers} layers, the other model {other_layers}: models of different depth,"
            " such as a pruned model and its parent, cannot be merged)"
        )
    )
    for name, info in base.tensors.items():
        if name not in other.tensors:
            raise SddError(f"tensor {name} of the base model is missing from {other.folder}{depth}")
        if info.shape != other.tensors[name].shape:
            raise SddError(
                f"tensor {name} has shape {list(info.shape)} in the base model and "
                f"{list(other.tensors[name].shape)} in {other.folder}"
            )
    extra = [name for name in other.tensors if name not in base.tensors]
    if extra:
        raise SddError(f"tensor {extra[0]} of {other.folder} is missing from the base model {base.folder}{depth}")


def count_layers(checkpoint: CheckpointReader) -> int:
    """One more than the highest layer number in the tensor names (0 without a layer stack)."""
    layers = [layer for layer in map(layer_index, checkpoint.tensors) if layer is not None]
    return max(layers) + 1 if layers else 0


def _read_config(folder: Path) -> dict:
    path = folder / "config.json"
    if not path.is_file():
        raise SddError(f"{folder} has no config.json: not a transformers checkpoint")
    return read_json_object(path, "the checkpoint")


def write_merged_checkpoint(
    plan: MergePlan, folder: Path, dtype: str | None, max_shard_size: int, show_progress: bool
) -> dict[str, int]:
    """Write the merged tensors and the base model's config and tokenizer files; count tensors per method."""
    output_dtype = getattr(torch, dtype) if dtype else None
    infos = [plan.base.tensors[item.name] for item in plan.schedule]
    planned = [(info.name, _output_dtype(info, output_dtype), info.shape) for info in infos]
    writer = ShardedWriter(folder, planned, max_shard_size)
    methods: Counter[str] = Counter()
    with contextlib.closing(writer), one_intra_op_thread():
        for item, info in tqdm(list(zip(plan.schedule, infos)), unit="tensor", desc="merge", disable=not show_progress):
            base_tensor, other_tensor = plan.base.read(item.name), plan.other.read(item.name)
            try:
                weights = slerp_weights(base_tensor, other_tensor, item.t)
            except SddError as error:
                raise SddError(f"tensor {item.name}: {error}") from None
            chunks = _merged_chunks(base_tensor, other_tensor, weights, _output_dtype(info, output_dtype))
            writer.write(item.name, chunks)
            methods[weights.method] += 1
            del base_tensor, other_tensor
        writer.finish()
    _copy_side_files(plan.base.folder, folder, dtype)
    return dict(methods)


@contextlib.contextmanager
def one_intra_op_thread() -> Iterator[None]:
    """Run torch on one intra-op thread, then restore the thread count.

    The merge math is a few passes over 1 MiB chunks: memory-bound, and far slower multi-threaded
    on a busy machine, where every parallel op waits for a descheduled thread (a 445 MiB model on
    2 shared cores: 0.6 s on one thread, 1.7 s to 20 s on two).
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _output_dtype(info: TensorInfo, dtype: torch.dtype | None) -> torch.dtype:
    return dtype if dtype is not None and info.dtype.is_floating_point else info.dtype


def _merged_chunks(
    base_tensor: torch.Tensor, other_tensor: torch.Tensor, weights: SlerpWeights, dtype: torch.dtype
) -> Iterator[torch.Tensor]:
    flat_base, flat_other = base_tensor.reshape(-1), other_tensor.reshape(-1)
    for start in range(0, flat_base.numel(), CHUNK_ELEMENTS):
        stop = start + CHUNK_ELEMENTS
        yield weighted_sum(flat_base[start:stop], flat_other[start:stop], weights, dtype)


def _copy_side_files(base_folder: Path, folder: Path, dtype: str | None) -> None:
    """config.json (with the output dtype), generation config and tokenizer files of the base model."""
    for pattern in SIDE_FILE_PATTERNS:
        for path in base_folder.glob(pattern):
            shutil.copy2(path, folder / path.name)
    if dtype is not None:
        config = json.loads((folder / "config.json").read_text())
        for key in ("dtype", "torch_dtype"):
            if key in config:
                config[key] = dtype
        (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n")
