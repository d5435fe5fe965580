"""This machine's matrix-multiply peak, the yardstick the generation and scoring benchmarks print beside their rates.

SmolLM2-135M's matmuls are (rows x 576) by (576 x 1,536) and the like, so the peak is measured at that shape, in
the dtype the benchmark runs, on torch's threads: best of `repeats`.
"""

from __future__ import annotations

import time

SMOLLM2_FLOPS_PER_TOKEN = 2 * 134.5e6
"""Matrix-multiply FLOPs of one SmolLM2-135M token (two per weight), attention excluded."""


def matmul_peak(dtype_name: str, rows: int, repeats: int = 3) -> float:
    """Best-of-`repeats` FLOP/s of (rows x 576) @ (576 x 1536) in `dtype_name` on this machine's threads."""
    import torch

    dtype = getattr(torch, dtype_name)
    left, right = torch.randn(rows, 576, dtype=dtype), torch.randn(576, 1536, dtype=dtype)
    calls = max(50, 20_000 // rows)
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(calls):
            left @ right
        best = min(best, (time.perf_counter() - started) / calls)
    return 2 * rows * 576 * 1536 / best
