"""Causal multi-head self-attention with rotary embeddings and an optional KV cache."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lagllama.nn.kv_cache import KVCache
from lagllama.nn.precision import HALF, float32_region
from lagllama.nn.rope import apply_rotary


def causal_mask(q_len: int, k_len: int, device: torch.device) -> torch.Tensor:
    """Boolean mask (True = attend) for ``q_len`` queries that are the last of ``k_len`` keys."""
    q_pos = torch.arange(k_len - q_len, k_len, device=device)
    return torch.arange(k_len, device=device)[None, :] <= q_pos[:, None]


class CausalSelfAttention(nn.Module):
    """Multi-head attention on ``scaled_dot_product_attention``; dropout only while training."""

    def __init__(self, n_embd: int, n_head: int, dropout: float = 0.0) -> None:
        super().__init__()
        if n_embd % n_head:
            raise ValueError(f"n_embd={n_embd} is not divisible by n_head={n_head}")
        self.n_head = n_head
        self.head_dim = n_embd // n_head
        self.dropout = dropout
        self.qkv = nn.Linear(n_embd, 3 * n_embd, bias=False)
        self.proj = nn.Linear(n_embd, n_embd, bias=False)

    def split_heads(
        self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Project to rotated queries and keys, and values, each ``(B, H, T, head_dim)``."""
        B, T, C = x.shape
        qkv = self.qkv(x).view(B, T, 3, self.n_head, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k = apply_rotary(qkv[:2], cos, sin)  # queries and keys rotated in one pass
        return q, k, qkv[2]

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Causal attention of the last ``q_len`` positions over all ``k_len`` keys.

        On the CPU, half-precision inputs (bf16 autocast) are attended in float32: the CPU's
        bf16 flash-attention backward is about 8x slower than float32's at these head sizes.
        """
        if q.device.type == "cpu" and q.dtype in HALF:
            with float32_region(q.device):
                return self.attend(q.float(), k.float(), v.float()).to(q.dtype)
        q_len, k_len = q.shape[2], k.shape[2]
        dropout = self.dropout if self.training else 0.0
        if q_len == k_len:
            return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout, is_causal=True)
        if q_len == 1:  # one new token sees every cached key
            return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout)
        mask = causal_mask(q_len, k_len, q.device)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout)

    def forward(
        self,
        x: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        cache: KVCache | None = None,
        layer: int = 0,
    ) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.split_heads(x, cos, sin)
        if cache is None:
            y = self.attend(q, k, v)
        else:
            y = cache.attention(layer, q, k, v, self.attend)
        return self.proj(y.transpose(1, 2).reshape(B, T, C))
