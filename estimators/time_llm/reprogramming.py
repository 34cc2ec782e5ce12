"""Patch reprogramming: patches attend to K text prototypes built from word embeddings."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F


class RevIN(nn.Module):
    """Instance normalisation without affine parameters, aware of missing values."""

    def __init__(self, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps

    def forward(
        self, x: torch.Tensor, observed: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        count = observed.sum(-1, keepdim=True).clamp_min(1.0)
        loc = (x * observed).sum(-1, keepdim=True) / count
        var = (((x - loc) * observed) ** 2).sum(-1, keepdim=True) / count
        scale = torch.sqrt(var + self.eps)
        # unobserved values are replaced by the mean (0 after normalisation)
        return (x - loc) / scale * observed, loc, scale


class PatchEmbedding(nn.Module):
    """Replication-pad the end, cut patches, embed them with a circular Conv1d (as in Time-LLM)."""

    def __init__(self, patch_len: int, stride: int, d_model: int, dropout: float) -> None:
        super().__init__()
        self.patch_len = patch_len
        self.stride = stride
        self.pad = nn.ReplicationPad1d((0, stride))
        self.value_embedding = nn.Conv1d(
            patch_len, d_model, kernel_size=3, padding=1, padding_mode="circular", bias=False
        )
        nn.init.kaiming_normal_(
            self.value_embedding.weight, mode="fan_in", nonlinearity="leaky_relu"
        )
        self.dropout = nn.Dropout(dropout)

    @staticmethod
    def num_patches(context_length: int, patch_len: int, stride: int) -> int:
        return (context_length - patch_len) // stride + 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, L)`` -> ``(B, num_patches, d_model)``."""
        x = self.pad(x[:, None, :])[:, 0]
        patches = x.unfold(-1, self.patch_len, self.stride)  # (B, N, patch_len)
        emb = self.value_embedding(patches.transpose(1, 2)).transpose(1, 2)
        return self.dropout(emb)


class ReprogrammingLayer(nn.Module):
    """Multi-head cross-attention from patch embeddings onto K text prototypes.

    The prototypes are a learned linear combination of the backbone's word embeddings
    (``mapping``: vocab -> K). While training they are recomputed on every forward (their
    gradients train ``mapping``); in eval mode the projected keys and values are cached
    and reused until the next ``train()`` call or any change of the mapping weights.
    """

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        d_keys: int,
        d_llm: int,
        vocab_size: int,
        num_prototypes: int,
        dropout: float = 0.1,
        attention_scale: float | None = None,
    ) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.d_keys = d_keys
        self.mapping = nn.Linear(vocab_size, num_prototypes)
        self.query_projection = nn.Linear(d_model, d_keys * n_heads)
        self.key_projection = nn.Linear(d_llm, d_keys * n_heads)
        self.value_projection = nn.Linear(d_llm, d_keys * n_heads)
        self.out_projection = nn.Linear(d_keys * n_heads, d_llm)
        # ``attention_scale=None`` (default) scales scores by 1/sqrt(d_keys) as the paper
        # does. At init that keeps the softmax over the K prototypes close to uniform, where
        # the attention output is nearly linear in the patch, so the patch values reach the
        # backbone and the head intact. A larger scale (e.g. 1.0, logit std ~2) quantises
        # patches onto few prototypes: it learns faster at first but ended worse on ETTh1
        # (test MSE 0.401 vs 0.380 at h=96, benchmarks/results/ett_time_llm_ablation.md).
        self.scale = 1.0 / math.sqrt(d_keys) if attention_scale is None else attention_scale
        self.dropout = nn.Dropout(dropout)
        self._cache: tuple[tuple, torch.Tensor, torch.Tensor] | None = None
        self.cache_misses = 0  # number of prototype computations (for tests / diagnostics)

    def train(self, mode: bool = True) -> ReprogrammingLayer:
        self._cache = None
        return super().train(mode)

    def _cache_key(self, word_embeddings: torch.Tensor) -> tuple:
        params = [
            self.mapping.weight,
            self.mapping.bias,
            self.key_projection.weight,
            self.key_projection.bias,
            self.value_projection.weight,
            self.value_projection.bias,
        ]
        return (
            word_embeddings.data_ptr(),
            word_embeddings.dtype,
            word_embeddings.device,
            tuple((p.data_ptr(), p._version) for p in params),
        )

    def prototypes(self, word_embeddings: torch.Tensor) -> torch.Tensor:
        """``(K, d_llm)`` text prototypes, layer-normalised.

        The map has fan-in ``vocab_size`` (~30k): Adam moves every weight by about ``lr``
        per step, so un-normalised prototypes grow by ``O(lr * vocab_size)`` per step and
        saturate the attention. Normalising keeps the attention well conditioned.
        """
        source = self.mapping(word_embeddings.transpose(0, 1)).transpose(0, 1)
        return F.layer_norm(source, source.shape[-1:])

    def keys_values(self, word_embeddings: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.training or torch.is_grad_enabled() and self.mapping.weight.requires_grad:
            self._cache = None
            self.cache_misses += 1
            source = self.prototypes(word_embeddings)
            return self.key_projection(source), self.value_projection(source)
        key = self._cache_key(word_embeddings)
        if self._cache is None or self._cache[0] != key:
            self.cache_misses += 1
            with torch.no_grad():
                source = self.prototypes(word_embeddings)
                self._cache = (key, self.key_projection(source), self.value_projection(source))
        return self._cache[1], self._cache[2]

    def forward(self, target: torch.Tensor, word_embeddings: torch.Tensor) -> torch.Tensor:
        """``target``: ``(B, N, d_model)`` -> ``(B, N, d_llm)``."""
        b, n, _ = target.shape
        h, e = self.n_heads, self.d_keys
        keys, values = self.keys_values(word_embeddings)
        q = self.query_projection(target).view(b, n, h, e)
        k = keys.view(-1, h, e)
        v = values.view(-1, h, e)
        scores = torch.einsum("bnhe,she->bhns", q, k) * self.scale
        attn = self.dropout(torch.softmax(scores, dim=-1))
        out = torch.einsum("bhns,she->bnhe", attn, v).reshape(b, n, h * e)
        return self.out_projection(out)
