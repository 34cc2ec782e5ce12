"""A pre-norm LLaMA-style decoder: RMSNorm, rotary causal attention, SwiGLU, residuals.

Options (defaults reproduce the plain Lag-Llama decoder and its state-dict keys):
``attention="probsparse"`` (causal Informer ProbSparse attention, :mod:`lagllama.nn.probsparse`),
``ffn="moe"`` (sparse mixture of experts, :mod:`lagllama.nn.moe`) and ``distil=True``
(causal distilling of the context tokens between blocks, :mod:`lagllama.nn.distill`).
"""

from __future__ import annotations

import torch
from torch import nn

from lagllama.nn.attention import CausalSelfAttention
from lagllama.nn.distill import CausalDistil, map_back
from lagllama.nn.kv_cache import KVCache
from lagllama.nn.mlp import SwiGLU
from lagllama.nn.moe import SparseMoE
from lagllama.nn.precision import float32_region
from lagllama.nn.probsparse import ProbSparseSelfAttention
from lagllama.nn.rmsnorm import RMSNorm
from lagllama.nn.rope import RopeScaling, RotaryEmbedding

ATTENTIONS = ("full", "probsparse")
FFNS = ("swiglu", "moe")


class Block(nn.Module):
    """``x + attn(norm(x))`` then ``x + mlp(norm(x))``."""

    def __init__(
        self,
        n_embd: int,
        n_head: int,
        dropout: float = 0.0,
        attention: str = "full",
        probsparse_factor: float = 5.0,
        ffn: str = "swiglu",
        num_experts: int = 8,
        experts_top_k: int = 2,
    ) -> None:
        super().__init__()
        if attention not in ATTENTIONS:
            raise ValueError(f"unknown attention {attention!r}; choose one of {ATTENTIONS}")
        if ffn not in FFNS:
            raise ValueError(f"unknown ffn {ffn!r}; choose one of {FFNS}")
        self.attn_norm = RMSNorm(n_embd)
        if attention == "probsparse":
            self.attn = ProbSparseSelfAttention(n_embd, n_head, dropout, probsparse_factor)
        else:
            self.attn = CausalSelfAttention(n_embd, n_head, dropout)
        self.mlp_norm = RMSNorm(n_embd)
        if ffn == "moe":
            self.mlp = SparseMoE(n_embd, num_experts, experts_top_k)
        else:
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
        attention: str = "full",
        probsparse_factor: float = 5.0,
        ffn: str = "swiglu",
        num_experts: int = 8,
        experts_top_k: int = 2,
        distil_prefix: int | None = None,
    ) -> None:
        super().__init__()
        n_embd = n_head * n_embd_per_head
        self.n_layer, self.n_head, self.head_dim = n_layer, n_head, n_embd_per_head
        self.embed = nn.Linear(in_features, n_embd)
        self.rope = RotaryEmbedding(
            n_embd_per_head, max_position, rope_base, rope_scaling, rope_factor
        )
        self.blocks = nn.ModuleList(
            Block(
                n_embd,
                n_head,
                dropout,
                attention,
                probsparse_factor,
                ffn,
                num_experts,
                experts_top_k,
            )
            for _ in range(n_layer)
        )
        self.norm = RMSNorm(n_embd)
        #: distilling pools tokens at positions < distil_prefix (the context), None = off
        self.distil_prefix = distil_prefix
        if distil_prefix is not None:
            self.distil = nn.ModuleList(CausalDistil(n_embd) for _ in range(n_layer - 1))

    def new_cache(self, batch_size: int, max_len: int, like: torch.Tensor) -> KVCache:
        """An empty cache for ``batch_size`` sequences of up to ``max_len`` tokens."""
        return KVCache(
            self.n_layer, batch_size, self.n_head, max_len, self.head_dim, like.dtype, like.device
        )

    def aux_loss(self) -> torch.Tensor:
        """Mean load-balancing loss of the MoE layers in the last forward pass (0 without)."""
        losses = [b.mlp.aux_loss for b in self.blocks if isinstance(b.mlp, SparseMoE)]
        return torch.stack(losses).mean() if losses else torch.zeros(())

    def forward(
        self,
        features: torch.Tensor,
        cache: KVCache | None = None,
        seq_len: int | None = None,
        extra: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Hidden states ``(B, T, n_embd)`` for features ``(B, T, in_features)``; ``extra``
        ``(B, T, n_embd)`` is added to the embeddings (the covariates' projection).

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
        with float32_region(features.device):  # raw lag values keep full precision
            x = self.embed(features)
            if extra is not None:
                x = x + extra
        if self.distil_prefix is not None:
            if cache is not None:
                raise ValueError("a distilling decoder cannot use a KV cache; recompute instead")
            return self.norm(self._forward_distil(x, positions, seq_len, cos, sin))
        for i, block in enumerate(self.blocks):
            x = block(x, cos, sin, cache, i)
        if cache is not None:
            cache.advance(T)
        return self.norm(x)

    def _forward_distil(
        self,
        x: torch.Tensor,
        positions: torch.Tensor,
        seq_len: int,
        cos: torch.Tensor,
        sin: torch.Tensor,
    ) -> torch.Tensor:
        original, full = positions, None
        for i, block in enumerate(self.blocks):
            x = block(x, cos, sin)
            if i < len(self.distil):
                if full is None:
                    full = x
                x, positions = self.distil[i](x, positions, self.distil_prefix)
                cos, sin = self.rope(positions, seq_len)
        if full is None:  # a single block: nothing was distilled
            return x
        return map_back(x, positions, full, original)
