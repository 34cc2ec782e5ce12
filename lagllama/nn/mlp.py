"""The SwiGLU feed-forward network of LLaMA (Shazeer, 2020)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def swiglu_hidden_size(n_embd: int, multiple_of: int = 256) -> int:
    """LLaMA's hidden width: two thirds of ``4 * n_embd``, rounded up to ``multiple_of``."""
    hidden = int(2 * (4 * n_embd) / 3)
    return multiple_of * ((hidden + multiple_of - 1) // multiple_of)


class SwiGLU(nn.Module):
    """``down(silu(gate(x)) * up(x))``, with gate and up fused into one matrix."""

    def __init__(self, n_embd: int, hidden: int | None = None) -> None:
        super().__init__()
        hidden = hidden or swiglu_hidden_size(n_embd)
        self.gate_up = nn.Linear(n_embd, 2 * hidden, bias=False)
        self.down = nn.Linear(hidden, n_embd, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.gate_up(x).chunk(2, dim=-1)
        return self.down(F.silu(gate) * up)
