"""The merge stage: SLERP two fine-tuned models of one architecture, from a mergekit-style recipe.

The recipe is the YAML file mergekit reads for its `slerp` method (see merge_recipe), so the same
file works with both tools. Tensors are streamed one at a time (see merge_checkpoints for the peak
memory); the output is written to a temporary folder beside `output` and moved into place when whole.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from sdd_data.artifacts import MERGE_RECIPE_COPY
from sdd_data.errors import SddError, require
from sdd_data.merge.config import MergeConfig
from sdd_data.merge.recipe import SlerpRecipe, dtype_name, read_recipe
from sdd_data.merge.schedule import ScheduledTensor
from sdd_data.output_folder import check_output_free, staged_output

SIZE_UNITS = {
    "": 1,
    "B": 1,
    "KB": 10**3,
    "MB": 10**6,
    "GB": 10**9,
    "TB": 10**12,
    "KIB": 2**10,
    "MIB": 2**20,
    "GIB": 2**30,
    "TIB": 2**40,
}


@dataclass
class MergeResult:
    """The merged checkpoint (None when only the schedule was printed), the schedule and the paths taken."""

    output: Path | None
    schedule: list[ScheduledTensor]
    methods: dict[str, int]
    """Tensors per computation: copy_a (t = 0), copy_b (t = 1), lerp (colinear fallback), slerp."""


def parse_size(text: str) -> int:
    """Bytes in a size like `2GB` (10^9), `500MiB` (2^20) or `1000000`."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*", text)
    unit = match.group(2).upper() if match else None
    if unit not in SIZE_UNITS or float(match.group(1)) <= 0:
        raise SddError(f"cannot read the size {text!r}; write it like 2GB, 500MB or 1GiB")
    return int(float(match.group(1)) * SIZE_UNITS[unit])


def print_schedule(schedule: list[ScheduledTensor]) -> None:
    """Print one line per tensor: name, layer (- outside the layer stack) and t."""
    width = max((len(item.name) for item in schedule), default=6)
    print(f"{'tensor':<{width}}  layer  t")
    for item in schedule:
        layer = "-" if item.layer is None else str(item.layer)
        print(f"{item.name:<{width}}  {layer:>5}  {item.t:.6g}")


def check_options(config: MergeConfig) -> tuple[SlerpRecipe, str | None, int]:
    """The recipe, the output dtype and the shard size in bytes, once they are known to make a merge; before any
    weight is read (`sdd-data run` calls it for every step)."""
    recipe = read_recipe(config.merge_config)
    dtype = dtype_name(config.dtype) if config.dtype else recipe.dtype
    return recipe, dtype, parse_size(config.max_shard_size)


def merge(config: MergeConfig, show_progress: bool = True) -> MergeResult:
    """Merge the two models of the recipe with SLERP, or only print the t schedule."""
    require("torch", "hf")
    require("safetensors", "hf")
    from sdd_data.merge.checkpoints import plan_merge, write_merged_checkpoint

    recipe, dtype, max_shard_size = check_options(config)
    output = Path(config.output)
    if not config.print_schedule:
        check_output_free(output)
    plan = plan_merge(recipe)
    if config.print_schedule:
        print_schedule(plan.schedule)
        return MergeResult(None, plan.schedule, {})

    with staged_output(output) as staging:
        methods = write_merged_checkpoint(plan, staging, dtype, max_shard_size, show_progress)
        (staging / MERGE_RECIPE_COPY).write_text(recipe.text)
    if show_progress:
        counts = ", ".join(f"{method} {count}" for method, count in sorted(methods.items()))
        print(f"merged {len(plan.schedule)} tensors ({counts}) into {output}")
    return MergeResult(output, plan.schedule, methods)
