"""A pre-norm LLaMA-style decoder: RMSNorm, rotary causal attention, SwiGLU, residuals."""

from __future__ import annotations

import torch
from torch import nn

from lagllama.nn.attention import CausalSelfAttention
from lagllama.nn.kv_cache import KVCache
from lagllama.nn.mlp import SwiGLU
from lagllama.nn.rmsnorm import RMSNorm
from lagllama.nn.rope import RopeScaling, RotaryEmbedding


class Block(nn.Module):
    """``x + attn(norm(x))`` then ``x + mlp(norm(x))``."""

    def __init__(self, n_embd: int, n_head: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.attn_norm = RMSNorm(n_embd)
        self.attn = CausalSelfAttention(n_embd, n_head, dropout)
        self.mlp_norm = RMSNorm(n_embd)
        self.mlp = SwiGLU(n_embd)
        self.dropout = nn.Dropout(dropout)

    def forward(
        self,
        x: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        cache: KVCache | None = None,
        layer: int = 0,
    ) -> torch.Tensor:
        x = x + self.dropout(self.attn(self.attn_norm(x), cos, sin, cache, layer))
        return x + self.dropout(self.mlp(self.mlp_norm(x)))


class Decoder(nn.Module):
    """Embeds per-token features, runs the blocks, returns normalised hidden states."""

    def __init__(
        self,
        in_features: int,
        n_layer: int,
        n_head: int,
        n_embd_per_head: int,
        max_position: int,
        dropout: float = 0.0,
        rope_scaling: RopeScaling | None = None,
        rope_factor: float = 1.0,
        rope_base: float = 10000.0,
    ) -> None:
        super().__init__()
        n_embd = n_head * n_embd_per_head
        self.n_layer, self.n_head, self.head_dim = n_layer, n_head, n_embd_per_head
        self.embed = nn.Linear(in_features, n_embd)
        self.rope = RotaryEmbedding(n_embd_per_head, max_position, rope_base, rope_scaling, rope_factor)
        self.blocks = nn.ModuleList(Block(n_embd, n_head, dropout) for _ in range(n_layer))
        self.norm = RMSNorm(n_embd)

    def new_cache(self, batch_size: int, max_len: int, like: torch.Tensor) -> KVCache:
        """An empty cache for ``batch_size`` sequences of up to ``max_len`` tokens."""
        return KVCache(
            self.n_layer, batch_size, self.n_head, max_len, self.head_dim, like.dtype, like.device
        )

    def forward(
        self,
        features: torch.Tensor,
        cache: KVCache | None = None,
        seq_len: int | None = None,
    ) -> torch.Tensor:
        """Hidden states ``(B, T, n_embd)`` for features ``(B, T, in_features)``.

        With a cache, the tokens continue the cached sequence at position ``cache.length``.
        ``seq_len`` is the full length of the sequence (for dynamic RoPE scaling); it defaults
        to the cache capacity, or to ``T`` without a cache.
        """
        start = cache.length if cache is not None else 0
        T = features.shape[1]
        if seq_len is None:
            seq_len = cache.max_len if cache is not None else T
        positions = torch.arange(start, start + T, device=features.device)
        cos, sin = self.rope(positions, seq_len)
        x = self.embed(features)
        for i, block in enumerate(self.blocks):
            x = block(x, cos, sin, cache, i)
        if cache is not None:
            cache.advance(T)
        return self.norm(x)
