"""A SLERP merge recipe read from a mergekit-style YAML file, so existing mergekit slerp configs work.

Both mergekit shapes are accepted: `slices:` with one slice of two sources (each with a
`layer_range` that must cover every layer), or `models:` with two entries. `base_model` names the
model at t = 0. Anything this tool does not do (another merge method, several slices, partial layer
ranges, per-model parameters, tokenizer surgery) is refused with a one-line reason, never ignored.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from sdd_data.errors import SddError, first_line
from sdd_data.merge.schedule import TSetting, parse_t_setting

TOP_LEVEL_KEYS = {
    "merge_method",
    "slices",
    "models",
    "base_model",
    "parameters",
    "dtype",
    "out_dtype",
    "tokenizer_source",
}
DTYPE_ALIASES = {
    "float32": "float32",
    "fp32": "float32",
    "float": "float32",
    "float16": "float16",
    "fp16": "float16",
    "half": "float16",
    "bfloat16": "bfloat16",
    "bf16": "bfloat16",
}


@dataclass(frozen=True)
class SlerpRecipe:
    """Two models, which one is the base (t = 0), the t setting and the dtypes of a SLERP merge."""

    base_model: str
    other_model: str
    t: TSetting
    layer_range: tuple[int, int] | None
    """The layer range both slice sources name; None for the `models:` form (every layer)."""
    dtype: str | None
    """Output dtype of floating-point tensors (mergekit's out_dtype, else dtype); None keeps the base's."""
    text: str
    """The YAML text, kept with the merged checkpoint."""

    def check_layer_range(self, num_layers: int) -> None:
        """Refuse a slice that does not cover all `num_layers` layers."""
        if self.layer_range is not None and self.layer_range != (0, num_layers):
            raise SddError(
                f"layer_range {list(self.layer_range)} does not cover the models' {num_layers} layers; "
                f"merging part of a model (partial slices) is not supported: use [0, {num_layers}]"
            )


def dtype_name(name: str) -> str:
    """The torch dtype name (float32, float16, bfloat16) for a name like `bf16` or `torch.float16`."""
    dtype = DTYPE_ALIASES.get(name.lower().removeprefix("torch."))
    if dtype is None:
        raise SddError(f"unknown dtype {name!r}; use float32, float16 or bfloat16")
    return dtype


def read_recipe(path: str | Path) -> SlerpRecipe:
    """Read and check a mergekit-style SLERP YAML file."""
    path = Path(path)
    if path.is_dir():
        raise SddError(f"merge config {path} is a folder; give the recipe's YAML file")
    if not path.is_file():
        raise SddError(f"merge config {path} does not exist")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise SddError(f"cannot read merge config {path} as text: {first_line(error)}") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise SddError(f"merge config {path} is not valid YAML: {error}") from None
    if not isinstance(raw, dict):
        raise SddError(f"merge config {path} must hold a mapping (slices or models, merge_method, base_model, ...)")
    return parse_recipe(raw, text)


def parse_recipe(raw: dict, text: str = "") -> SlerpRecipe:
    """Check a parsed mergekit-style config and turn it into a SlerpRecipe."""
    _refuse_unknown(raw, TOP_LEVEL_KEYS, "the merge config")
    method = raw.get("merge_method")
    if method != "slerp":
        raise SddError(f"merge_method is {method!r}; sdd-data merge only does slerp")
    if raw.get("tokenizer_source", "base") != "base":
        raise SddError("tokenizer_source other than `base` is not supported: the base model's tokenizer is copied")
    if ("slices" in raw) == ("models" in raw):
        raise SddError("the merge config needs exactly one of `slices` or `models`")
    if "slices" in raw:
        models, layer_range, slice_parameters = _parse_slices(raw["slices"])
    else:
        models, layer_range, slice_parameters = _parse_models(raw["models"]), None, {}
    base_model = raw.get("base_model")
    if base_model not in models:
        raise SddError(f"base_model must be one of the two models {models}, got {base_model!r}")
    other_model = models[1] if models[0] == base_model else models[0]
    parameters = {**_mapping(raw.get("parameters", {}), "parameters"), **slice_parameters}
    _refuse_unknown(parameters, {"t"}, "parameters")
    if "t" not in parameters:
        raise SddError("slerp needs parameters.t (a number, a gradient list or filtered entries)")
    dtype = raw.get("out_dtype") or raw.get("dtype")
    return SlerpRecipe(
        base_model=base_model,
        other_model=other_model,
        t=parse_t_setting(parameters["t"]),
        layer_range=layer_range,
        dtype=dtype_name(str(dtype)) if dtype else None,
        text=text,
    )


def _parse_slices(slices: Any) -> tuple[list[str], tuple[int, int], dict]:
    if not isinstance(slices, list) or not slices:
        raise SddError("`slices` must be a list with one slice")
    if len(slices) > 1:
        raise SddError(f"{len(slices)} slices given: stacking or mixing slices is not supported, use one slice")
    piece = _mapping(slices[0], "a slice")
    _refuse_unknown(piece, {"sources", "parameters"}, "a slice")
    sources = piece.get("sources")
    if not isinstance(sources, list) or len(sources) != 2:
        raise SddError(f"slerp merges exactly two models; the slice has {len(sources or [])} sources")
    models, ranges = [], []
    for source in sources:
        source = _mapping(source, "a slice source")
        _refuse_unknown(source, {"model", "layer_range"}, "a slice source")
        models.append(_model_name(source))
        layer_range = source.get("layer_range")
        if not (
            isinstance(layer_range, list)
            and len(layer_range) == 2
            and all(isinstance(bound, int) for bound in layer_range)
        ):
            raise SddError(f"layer_range of {models[-1]} must be [first, end], got {layer_range!r}")
        ranges.append(tuple(layer_range))
    if ranges[0] != ranges[1]:
        raise SddError(f"the two sources have different layer ranges {list(ranges[0])} and {list(ranges[1])}")
    return models, ranges[0], _mapping(piece.get("parameters", {}), "slice parameters")


def _parse_models(models: Any) -> list[str]:
    if not isinstance(models, list) or len(models) != 2:
        count = len(models) if isinstance(models, list) else 0
        raise SddError(f"slerp merges exactly two models; `models` lists {count}")
    names = []
    for entry in models:
        entry = _mapping(entry, "a models entry")
        _refuse_unknown(entry, {"model"}, "a models entry")
        names.append(_model_name(entry))
    return names


def _model_name(entry: dict) -> str:
    name = entry.get("model")
    if not isinstance(name, str) or not name:
        raise SddError(f"each model entry needs `model: <path or Hub id>`, got {entry!r}")
    return name


def _mapping(value: Any, what: str) -> dict:
    if not isinstance(value, dict):
        raise SddError(f"{what} must be a mapping, got {value!r}")
    return value


def _refuse_unknown(mapping: dict, known: set[str], where: str) -> None:
    unknown = sorted(set(mapping) - known)
    if unknown:
        raise SddError(
            f"{', '.join(unknown)} in {where} not supported by sdd-data merge (supported: {', '.join(sorted(known))})"
        )
