"""Safetensors checkpoints read and written one tensor at a time.

Reading opens the shard for each tensor and closes it again: the tensor is a view of the memory-mapped
file, so only its own pages become resident and they are released with it. Writing plans the shards
up front from every tensor's dtype and shape, writes each shard's header first and then streams the
tensors' bytes in chunks, so nothing larger than one chunk is ever buffered.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open

from sdd_data.errors import SddError, first_line

SINGLE_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"
DTYPE_NAMES = {
    torch.float64: "F64",
    torch.float32: "F32",
    torch.float16: "F16",
    torch.bfloat16: "BF16",
    torch.float8_e4m3fn: "F8_E4M3",
    torch.float8_e5m2: "F8_E5M2",
    torch.int64: "I64",
    torch.int32: "I32",
    torch.int16: "I16",
    torch.int8: "I8",
    torch.uint8: "U8",
    torch.bool: "BOOL",
}
DTYPES_BY_NAME = {name: dtype for dtype, name in DTYPE_NAMES.items()}
PlannedTensor = tuple[str, torch.dtype, tuple[int, ...]]
"""Name, dtype and shape of a tensor to write."""


@dataclass(frozen=True)
class TensorInfo:
    """Name, dtype and shape of one stored tensor, and the file that holds it."""

    name: str
    dtype: torch.dtype
    shape: tuple[int, ...]
    file: Path

    @property
    def nbytes(self) -> int:
        """Size of the tensor's data in bytes."""
        return _numel(self.shape) * self.dtype.itemsize


class CheckpointReader:
    """The tensors of a checkpoint folder (model.safetensors, or shards listed by an index), read lazily."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        index = self.folder / INDEX_FILE
        if index.is_file():
            weight_map = _read_weight_map(index)
            files = list(dict.fromkeys(weight_map.values()))
        elif (self.folder / SINGLE_FILE).is_file():
            weight_map, files = None, [SINGLE_FILE]
        else:
            raise SddError(f"{self.folder} holds neither {SINGLE_FILE} nor {INDEX_FILE}")
        self.tensors: dict[str, TensorInfo] = {}
        for file in files:
            self.tensors.update(_tensor_infos(self.folder / file))
        if weight_map is not None and set(weight_map) != set(self.tensors):
            unlisted = sorted(set(weight_map) ^ set(self.tensors))
            raise SddError(f"{index} does not match its shard files (first difference: {unlisted[0]})")

    def read(self, name: str) -> torch.Tensor:
        """One tensor, backed by the mapped file until it is dropped."""
        path = self.tensors[name].file
        try:
            with safe_open(path, framework="pt") as handle:
                return handle.get_tensor(name)
        except (SafetensorError, OSError) as error:
            raise SddError(f"cannot read tensor {name} from {path}: {first_line(error)}") from None


def _read_weight_map(index: Path) -> dict[str, str]:
    """The tensor -> shard file map of a sharded checkpoint's index; one line naming the index when it is damaged."""
    try:
        weight_map = json.loads(index.read_text()).get("weight_map")
    except (OSError, ValueError, AttributeError) as error:
        raise SddError(f"{index} is not a readable index ({first_line(error)}); the checkpoint is damaged") from None
    if not isinstance(weight_map, dict) or not all(
        isinstance(name, str) and isinstance(file, str) for name, file in weight_map.items()
    ):
        raise SddError(f"{index} has no `weight_map` of tensor names to shard files; the checkpoint is damaged")
    return weight_map


def _tensor_infos(path: Path) -> dict[str, TensorInfo]:
    if not path.is_file():
        raise SddError(f"shard {path} is missing")
    infos = {}
    try:
        with safe_open(path, framework="pt") as handle:
            for name in handle.offset_keys():
                view = handle.get_slice(name)
                dtype = DTYPES_BY_NAME.get(view.get_dtype())
                if dtype is None:
                    raise SddError(f"tensor {name} in {path} has the unsupported dtype {view.get_dtype()}")
                infos[name] = TensorInfo(name, dtype, tuple(view.get_shape()), path)
    except (SafetensorError, OSError) as error:
        raise SddError(f"{path} is not a readable safetensors file: {first_line(error)}") from None
    return infos


@dataclass(frozen=True)
class OutputTensor:
    """A tensor planned into an output shard: its place in the shard's data section."""

    name: str
    dtype: torch.dtype
    shape: tuple[int, ...]
    begin: int
    end: int


class ShardedWriter:
    """Writes planned tensors, in the planned order, into shards of at most `max_shard_size` bytes.

    A tensor larger than `max_shard_size` gets a shard of its own. One shard is written as
    model.safetensors; several as model-0000i-of-0000n.safetensors with model.safetensors.index.json.
    """

    def __init__(self, folder: Path, tensors: list[PlannedTensor], max_shard_size: int):
        self.folder = folder
        self.shards = _plan_shards(tensors, max_shard_size)
        count = len(self.shards)
        self.file_names = (
            [SINGLE_FILE]
            if count == 1
            else [f"model-{number:05d}-of-{count:05d}.safetensors" for number in range(1, count + 1)]
        )
        self._queue = [
            (shard, position) for shard, planned in enumerate(self.shards) for position in range(len(planned))
        ]
        self._next = 0
        self._handle = None

    def write(self, name: str, chunks: Iterable[torch.Tensor]) -> None:
        """Write the next planned tensor from consecutive flat chunks of its dtype."""
        shard, position = self._queue[self._next]
        planned = self.shards[shard][position]
        if planned.name != name:
            raise ValueError(f"tensor {name} written out of order; expected {planned.name}")
        if position == 0:
            self._handle = open(self.folder / self.file_names[shard], "wb")
            self._handle.write(_header(self.shards[shard]))
        written = 0
        for chunk in chunks:
            if chunk.dtype != planned.dtype:
                raise ValueError(f"tensor {name}: chunk of dtype {chunk.dtype}, planned {planned.dtype}")
            data = chunk.contiguous().reshape(-1).view(torch.uint8).numpy()
            self._handle.write(data)
            written += data.nbytes
        if written != planned.end - planned.begin:
            raise ValueError(f"tensor {name}: wrote {written} bytes, planned {planned.end - planned.begin}")
        self._next += 1
        if position == len(self.shards[shard]) - 1:
            self._handle.close()
            self._handle = None

    def finish(self) -> None:
        """Check that every planned tensor was written, and write the index when there are several shards."""
        if self._next != len(self._queue):
            raise ValueError(f"only {self._next} of {len(self._queue)} planned tensors were written")
        if len(self.shards) > 1:
            weight_map = {item.name: file for file, shard in zip(self.file_names, self.shards) for item in shard}
            total_size = sum(item.end - item.begin for shard in self.shards for item in shard)
            index = {"metadata": {"total_size": total_size}, "weight_map": weight_map}
            (self.folder / INDEX_FILE).write_text(json.dumps(index, indent=2) + "\n")

    def close(self) -> None:
        """Close a shard left open by an interrupted write."""
        if self._handle is not None:
            self._handle.close()
            self._handle = None


def _plan_shards(tensors: list[PlannedTensor], max_shard_size: int) -> list[list[OutputTensor]]:
    shards: list[list[OutputTensor]] = [[]]
    used = 0
    for name, dtype, shape in tensors:
        size = _numel(shape) * dtype.itemsize
        if shards[-1] and used + size > max_shard_size:
            shards.append([])
            used = 0
        shards[-1].append(OutputTensor(name, dtype, tuple(shape), used, used + size))
        used += size
    return shards


def _header(shard: list[OutputTensor]) -> bytes:
    """The safetensors header: little-endian u64 length, then JSON padded with spaces to 8 bytes."""
    entries = {"__metadata__": {"format": "pt"}}
    for item in shard:
        entries[item.name] = {
            "dtype": DTYPE_NAMES[item.dtype],
            "shape": list(item.shape),
            "data_offsets": [item.begin, item.end],
        }
    text = json.dumps(entries, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text


def _numel(shape: tuple[int, ...]) -> int:
    count = 1
    for size in shape:
        count *= size
    return count
