"""Rotary position embeddings (Su et al., 2021) with linear and dynamic-NTK context scaling.

Queries and keys are rotated by position-dependent angles so that their dot product depends
only on the distance between positions. ``linear`` scaling divides positions by ``factor``
(position interpolation); ``dynamic`` scaling raises the frequency base once the sequence is
longer than the trained context (NTK-aware), leaving shorter sequences untouched.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

RopeScaling = Literal["linear", "dynamic"]


class RotaryEmbedding(nn.Module):
    """Produces the cos/sin tables for a set of positions."""

    def __init__(
        self,
        head_dim: int,
        max_position: int,
        base: float = 10000.0,
        scaling: RopeScaling | None = None,
        factor: float = 1.0,
    ) -> None:
        super().__init__()
        if head_dim % 2:
            raise ValueError(f"rotary embeddings need an even head dimension, got {head_dim}")
        if scaling not in (None, "linear", "dynamic"):
            raise ValueError(f"unknown rope scaling {scaling!r}; use 'linear', 'dynamic' or None")
        if factor < 1.0:
            raise ValueError(f"rope scaling factor must be >= 1, got {factor}")
        self.head_dim = head_dim
        self.max_position = max_position
        self.base = base
        self.scaling = scaling
        self.factor = factor

    def inv_freq(self, seq_len: int, device: torch.device | None = None) -> torch.Tensor:
        """Inverse frequencies; under dynamic scaling they depend on the total sequence length."""
        base = self.base
        if self.scaling == "dynamic" and seq_len > self.max_position:
            ratio = self.factor * seq_len / self.max_position - (self.factor - 1)
            base = base * ratio ** (self.head_dim / (self.head_dim - 2))
        exponents = torch.arange(0, self.head_dim, 2, device=device, dtype=torch.float32)
        return 1.0 / (base ** (exponents / self.head_dim))

    def forward(
        self, positions: torch.Tensor, seq_len: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """cos and sin of shape ``(len(positions), head_dim)``.

        ``seq_len`` is the full length of the sequence being processed (it matters only for
        dynamic scaling, and must be the same for every chunk of one cached generation).
        """
        seq_len = int(positions.max()) + 1 if seq_len is None else seq_len
        t = positions.to(torch.float32)
        if self.scaling == "linear":
            t = t / self.factor
        freqs = torch.outer(t, self.inv_freq(seq_len, positions.device))
        emb = torch.cat((freqs, freqs), dim=-1)
        return emb.cos(), emb.sin()


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate ``x`` of shape ``(..., T, head_dim)`` by tables of shape ``(T, head_dim)``."""
    return x * cos.to(x.dtype) + rotate_half(x) * sin.to(x.dtype)
