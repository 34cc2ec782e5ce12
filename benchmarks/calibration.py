"""A matrix-multiply calibration in GFLOPS, the same one the official-code timing scripts of
``../shared/official_bench`` print: so figures from two runs can be set against the machine's
speed at the time. Imports only torch (it also runs inside the official code's environment)."""

from __future__ import annotations

import time

import torch


def gflops(repeats: int = 20) -> float:
    """GFLOPS of a (4096 x 144) @ (144 x 512) float32 product, as ``bench_predict.py``."""
    a, w = torch.randn(4096, 144), torch.randn(512, 144)
    a @ w.T
    start = time.perf_counter()
    for _ in range(repeats):
        a @ w.T
    return round(2 * 4096 * 144 * 512 * repeats / (time.perf_counter() - start) / 1e9, 1)
