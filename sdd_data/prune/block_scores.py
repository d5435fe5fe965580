"""Depth-pruning scores on hidden-state tensors: angular distance (Gromov et al.) and block influence (ShortGPT).

Conventions: block ℓ is 0-based; `states[ℓ]` is the residual-stream *input* of block ℓ, and
`states[L]` is the output of the last block *before* the final norm. All maths runs in fp32 with
cosines clamped to [-1, 1]; padding is excluded through the attention mask (1 = token, 0 = pad).

- Angular distance d(ℓ, n) = arccos(cos(x_T^ℓ, x_T^{ℓ+n})) / π at the last non-pad token T, averaged
  over rows; removing the n contiguous blocks ℓ*…ℓ*+n−1 with the smallest d is the Gromov criterion.
- Block influence BI_ℓ = 1 − mean cos(input_ℓ, output_ℓ) over all non-pad tokens (row-wise cosines,
  never a (B·S)² matrix); removing the n lowest-BI blocks, contiguous or not, is the ShortGPT criterion.
"""

from __future__ import annotations

import math

import torch

from sdd_data.errors import SddError

NORM_EPS = 1e-12


def row_cosine(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Cosine similarity along the last dimension, in fp32, clamped to [-1, 1] (0 for a zero vector)."""
    a, b = a.float(), b.float()
    dot = (a * b).sum(dim=-1)
    norms = a.norm(dim=-1) * b.norm(dim=-1)
    return (dot / norms.clamp_min(NORM_EPS)).clamp(-1.0, 1.0)


def angular_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """arccos(cos(a, b)) / π along the last dimension: 0 for parallel, 0.5 orthogonal, 1 antiparallel."""
    return torch.arccos(row_cosine(a, b)) / math.pi


def last_token_index(attention_mask: torch.Tensor) -> torch.Tensor:
    """Position of the last non-pad token of each row, for left or right padding ([B, S] mask → [B])."""
    mask = attention_mask.bool()
    if not mask.any(dim=1).all():
        raise SddError("a calibration row has no tokens after padding is removed")
    positions = torch.arange(mask.shape[1], device=mask.device).expand_as(mask)
    return torch.where(mask, positions, -1).max(dim=1).values


def last_token_states(hidden_states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """The hidden state at each row's last non-pad token ([B, S, H] → [B, H])."""
    index = last_token_index(attention_mask).to(hidden_states.device)
    return hidden_states[torch.arange(hidden_states.shape[0], device=hidden_states.device), index]


def check_block_count(num_blocks: int, n: int) -> None:
    """Refuse removing fewer than one block, or all of them."""
    if not 1 <= n < num_blocks:
        raise SddError(f"can remove 1 to {num_blocks - 1} of the model's {num_blocks} blocks, not {n}")


def layer_distances(last_states: torch.Tensor, n: int) -> torch.Tensor:
    """d(ℓ, n) per start ℓ and row: [L + 1, B, H] last-token block inputs → [L − n + 1, B]."""
    check_block_count(last_states.shape[0] - 1, n)
    return angular_distance(last_states[:-n], last_states[n:])


def masked_cosine_sum(
    block_input: torch.Tensor, block_output: torch.Tensor, attention_mask: torch.Tensor
) -> tuple[float, int]:
    """Sum of token-wise cos(input, output) over non-pad tokens, and how many tokens were summed."""
    mask = attention_mask.bool().to(block_input.device)
    cosines = row_cosine(block_input, block_output)
    return float(cosines[mask].sum()), int(mask.sum())


def block_influence(cosine_sums: list[float], token_counts: list[int]) -> list[float]:
    """BI per block, 1 − mean cosine, from the accumulated sums and token counts."""
    if any(count <= 0 for count in token_counts):
        raise SddError("block influence needs at least one non-pad calibration token")
    return [1.0 - total / count for total, count in zip(cosine_sums, token_counts)]


def choose_contiguous(mean_distances: list[float], n: int) -> list[int]:
    """The n contiguous blocks ℓ*…ℓ*+n−1 where ℓ* has the smallest mean distance (first one on ties)."""
    if not mean_distances:
        raise SddError("no angular distances to choose from")
    start = min(range(len(mean_distances)), key=lambda index: mean_distances[index])
    return list(range(start, start + n))


def choose_lowest(influence: list[float], n: int) -> list[int]:
    """The n blocks of lowest block influence (lower index first on ties), sorted."""
    check_block_count(len(influence), n)
    ranked = sorted(range(len(influence)), key=lambda index: (influence[index], index))
    return sorted(ranked[:n])
