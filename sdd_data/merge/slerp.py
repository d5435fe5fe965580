"""Spherical linear interpolation of two weight tensors, as mergekit's `slerp` merge method computes it.

Each tensor is treated as one flat vector. The angle comes from the normalised vectors (a vector whose
norm is at most 1e-8 is left unnormalised); when |cos θ| exceeds the colinearity threshold, SLERP is
numerically unstable and plain linear interpolation is used instead (antiparallel vectors included).
The original, unnormalised tensors are interpolated, in fp32, and the result is cast to `a`'s dtype.
t = 0 and t = 1 return copies of the inputs, bit for bit, and so does any t for two equal tensors
(where fp32 rounding of (1 - t)·a + t·a could otherwise move a value by one unit in the last place).

The math is split so that a caller can stream it: `slerp_weights` reduces two tensors to the two
coefficients of a weighted sum, and `weighted_sum` applies them to any slice of the flat tensors.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch

from sdd_data.errors import SddError

COLINEAR_THRESHOLD = 0.9995
NORM_EPSILON = 1e-8
CHUNK_ELEMENTS = 1 << 18
"""Elements per fp32 chunk (1 MiB): tensors are reduced and combined chunk by chunk, never upcast whole."""

Method = Literal["copy_a", "copy_b", "identical", "lerp", "slerp"]


@dataclass(frozen=True)
class SlerpWeights:
    """The result of slerp as `weight_a * a + weight_b * b`, and which path produced the weights."""

    method: Method
    """copy_a (t = 0), copy_b (t = 1), identical (equal inputs: a copy of a), lerp (colinear fallback) or slerp."""
    weight_a: float
    weight_b: float
    cosine: float | None
    """Cosine of the angle between the flattened tensors; None when t made it unnecessary."""


def normalised_dot(a: torch.Tensor, b: torch.Tensor) -> float:
    """⟨a/‖a‖, b/‖b‖⟩ over the flattened tensors in fp32; a norm ≤ 1e-8 is not divided by."""
    if a.shape != b.shape:
        raise SddError(f"cannot interpolate tensors of shapes {list(a.shape)} and {list(b.shape)}")
    flat_a, flat_b = a.reshape(-1), b.reshape(-1)
    dot = squared_a = squared_b = 0.0
    for start in range(0, flat_a.numel(), CHUNK_ELEMENTS):
        chunk_a = flat_a[start : start + CHUNK_ELEMENTS].float()
        chunk_b = flat_b[start : start + CHUNK_ELEMENTS].float()
        dot += torch.dot(chunk_a, chunk_b).item()
        squared_a += torch.dot(chunk_a, chunk_a).item()
        squared_b += torch.dot(chunk_b, chunk_b).item()
    norm_a, norm_b = math.sqrt(squared_a), math.sqrt(squared_b)
    return dot / (norm_a if norm_a > NORM_EPSILON else 1.0) / (norm_b if norm_b > NORM_EPSILON else 1.0)


def tensors_equal(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Whether two tensors of one shape hold equal values (compared in fp32, chunk by chunk)."""
    flat_a, flat_b = a.reshape(-1), b.reshape(-1)
    return all(
        torch.equal(flat_a[start : start + CHUNK_ELEMENTS].float(), flat_b[start : start + CHUNK_ELEMENTS].float())
        for start in range(0, flat_a.numel(), CHUNK_ELEMENTS)
    )


def slerp_weights(a: torch.Tensor, b: torch.Tensor, t: float, eps_colinear: float = COLINEAR_THRESHOLD) -> SlerpWeights:
    """The coefficients of slerp(a, b, t) as a weighted sum of the unnormalised tensors."""
    if t == 0:
        return SlerpWeights("copy_a", 1.0, 0.0, None)
    if t == 1:
        return SlerpWeights("copy_b", 0.0, 1.0, None)
    cosine = normalised_dot(a, b)
    if not math.isfinite(cosine):
        raise SddError("the tensors hold non-finite values (inf or NaN): their angle is undefined")
    if abs(cosine) > eps_colinear:
        if tensors_equal(a, b):
            return SlerpWeights("identical", 1.0, 0.0, cosine)
        return SlerpWeights("lerp", 1.0 - t, t, cosine)
    theta = math.acos(cosine)
    sin_theta = math.sin(theta)
    return SlerpWeights("slerp", math.sin((1.0 - t) * theta) / sin_theta, math.sin(t * theta) / sin_theta, cosine)


def weighted_sum(a: torch.Tensor, b: torch.Tensor, weights: SlerpWeights, dtype: torch.dtype) -> torch.Tensor:
    """weight_a · a + weight_b · b in fp32, cast to `dtype` (a plain copy where the result is an input)."""
    if weights.method in ("copy_a", "identical"):
        return a.to(dtype=dtype, copy=True)
    if weights.method == "copy_b":
        return b.to(dtype=dtype, copy=True)
    result = torch.mul(a.float(), weights.weight_a)
    result.add_(b.float(), alpha=weights.weight_b)
    return result.to(dtype)


def slerp(a: torch.Tensor, b: torch.Tensor, t: float, eps_colinear: float = COLINEAR_THRESHOLD) -> torch.Tensor:
    """Spherical interpolation from a (t = 0) to b (t = 1), in fp32, cast back to a's dtype."""
    return slerp_with_method(a, b, t, eps_colinear)[0]


def slerp_with_method(
    a: torch.Tensor, b: torch.Tensor, t: float, eps_colinear: float = COLINEAR_THRESHOLD
) -> tuple[torch.Tensor, Method]:
    """slerp(a, b, t) and the path that computed it: copy_a, copy_b, identical, lerp (colinear fallback) or slerp."""
    weights = slerp_weights(a, b, t, eps_colinear)
    return weighted_sum(a, b, weights, a.dtype), weights.method
