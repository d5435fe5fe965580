"""The interpolation factor t of every tensor, from a mergekit-style `t` setting.

A setting is one of:
- a number, used for every tensor;
- a list of numbers, a piecewise-linear gradient over depth: layer i of L sits at fraction
  f = i / (L - 1); s = f · (len - 1) falls between two list entries, which are interpolated;
- a list of `{filter, value}` entries (value: a number or a gradient). The first entry whose filter
  occurs in the tensor name wins (`*` and `?` glob characters also work); an entry without a filter
  matches every tensor, so written last it is the fallback.

Tensors outside the layer stack (embed_tokens, the final norm, lm_head) are evaluated at fraction 0,
as mergekit does: they get the *first* entry of a gradient, not its middle.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from sdd_data.errors import SddError

LAYER_PATTERN = re.compile(r"(?:^|\.)(?:layers|h|blocks)\.(\d+)\.")

Gradient = tuple[float, ...]


@dataclass(frozen=True)
class ScheduledTensor:
    """One tensor of a merge and its interpolation factor."""

    name: str
    layer: int | None
    t: float


@dataclass(frozen=True)
class FilteredValue:
    """One `{filter, value}` entry: tensors whose name contains `filter` (None: every tensor) get `value`."""

    filter: str | None
    value: float | Gradient


TSetting = float | Gradient | tuple[FilteredValue, ...]


def layer_index(name: str) -> int | None:
    """The layer number in a tensor name like `model.layers.12.mlp.up_proj.weight`, or None."""
    match = LAYER_PATTERN.search(name)
    return int(match.group(1)) if match else None


def _interpolating(value: float) -> float:
    """A t in [0, 1]: outside it SLERP would extrapolate past both models."""
    if not 0.0 <= value <= 1.0:
        raise SddError(f"t must lie in [0, 1] (0 keeps the base model, 1 the other one), got {value}")
    return value


def parse_t_setting(raw: Any) -> TSetting:
    """Check a `t` setting from a mergekit YAML file and turn it into a TSetting."""
    if _is_number(raw):
        return _interpolating(float(raw))
    if isinstance(raw, list) and raw and all(_is_number(item) for item in raw):
        return tuple(_interpolating(float(item)) for item in raw)
    if isinstance(raw, list) and raw and all(isinstance(item, dict) for item in raw):
        return tuple(_parse_filtered(item) for item in raw)
    raise SddError(f"t must be a number, a list of numbers or a list of {{filter, value}} entries, got {raw!r}")


def _parse_filtered(entry: dict) -> FilteredValue:
    unknown = sorted(set(entry) - {"filter", "value"})
    if unknown or "value" not in entry:
        raise SddError(f"each t entry needs `value` and may have `filter` (nothing else), got {entry!r}")
    value = parse_t_setting(entry["value"])
    if not isinstance(value, float):
        if any(isinstance(item, FilteredValue) for item in value):
            raise SddError(f"the value of a t entry must be a number or a list of numbers, got {entry['value']!r}")
        value = tuple(item for item in value if isinstance(item, float))
    name_filter = entry.get("filter")
    if name_filter is not None and not isinstance(name_filter, str):
        raise SddError(f"a t filter must be a string, got {name_filter!r}")
    return FilteredValue(None if name_filter in (None, "", "*") else name_filter, value)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def gradient_value(gradient: Gradient, fraction: float) -> float:
    """A piecewise-linear gradient at a depth fraction in [0, 1] (entries are evenly spaced anchors)."""
    position = fraction * (len(gradient) - 1)
    lower = math.floor(position)
    upper = min(len(gradient) - 1, lower + 1)
    weight = position - lower
    return (1 - weight) * gradient[lower] + weight * gradient[upper]


def layer_fraction(layer: int | None, num_layers: int) -> float:
    """Depth fraction of a layer: i / (L - 1); 0 for non-layer tensors and one-layer models."""
    if layer is None or num_layers <= 1:
        return 0.0
    return layer / (num_layers - 1)


def t_for_tensor(setting: TSetting, name: str, num_layers: int) -> float:
    """The interpolation factor of the tensor `name` in a model of `num_layers` layers."""
    fraction = layer_fraction(layer_index(name), num_layers)
    if isinstance(setting, float):
        return setting
    entries = [entry for entry in setting if isinstance(entry, FilteredValue)]
    if not entries:
        return gradient_value(tuple(value for value in setting if isinstance(value, float)), fraction)
    for entry in entries:
        if entry.filter is None or fnmatchcase(name, f"*{entry.filter}*"):
            return entry.value if isinstance(entry.value, float) else gradient_value(entry.value, fraction)
    raise SddError(f"no t entry matches tensor {name}; add an entry without a filter as the fallback")
