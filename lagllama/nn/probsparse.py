"""Causal ProbSparse self-attention (Informer, Zhou et al., 2021) for a per-token decoder.

Informer scores each query by the sparsity measurement ``M(q) = max_j q.k_j - mean_j q.k_j``
estimated on a random sample of ``c * ln L`` keys, gives the top ``u = c * ln L`` queries full
attention and the other ("lazy") queries the mean of the values; in its masked decoder
self-attention the lazy output is the *cumulative* mean of the values up to the query.

Three changes make this causal (output at position ``t`` depends only on inputs ``<= t``):

* ``M(q_t)`` is estimated on keys sampled among the allowed keys ``0..t`` only.
* Selection is *prefix-causal*: query ``t`` is active when ``M(q_t)`` ranks among the
  ``u_t = ceil(c * ln(t + 1))`` largest of ``M(q_0) .. M(q_t)``. A global top-``u`` would
  leak: a larger ``M`` at a later position could push ``t`` out of the top ``u``. At the last
  position the rule is exactly Informer's top-``u`` of all ``L`` queries, and it does not
  depend on the length of the pass, so a prefill of a prefix gives the same outputs as a
  pass over the whole window.
* Lazy queries get the cumulative mean of the values ``v_0 .. v_t`` (never future values).

Key samples are random while training and evenly spaced over ``0..t`` in eval mode, so
forecasts are reproducible. With ``c * ln(t + 1) >= t + 1`` for every ``t`` (a large factor or
a short sequence) every query is active and the result equals exact causal attention.
A single-token step (KV-cache decode) is exact attention: the new token is always active.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from lagllama.nn.attention import CausalSelfAttention


def num_active(n: torch.Tensor | int, factor: float) -> torch.Tensor:
    """``u_t = ceil(factor * ln n)``, at least 1, for ``n = t + 1`` visible keys."""
    n = torch.as_tensor(n, dtype=torch.float32)
    return torch.clamp(torch.ceil(factor * torch.log(n)), min=1.0)


def sample_key_index(
    q_pos: torch.Tensor, n_sample: int, training: bool, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Indices ``(q_len, n_sample)`` of keys sampled among the allowed keys ``0..q_pos``."""
    allowed = (q_pos + 1).to(torch.float32)[:, None]
    if training:
        r = torch.rand(
            len(q_pos), n_sample, device=q_pos.device, generator=generator, dtype=torch.float32
        )
    else:  # evenly spaced: deterministic forecasts
        r = (torch.arange(n_sample, device=q_pos.device, dtype=torch.float32) + 0.5) / n_sample
        r = r[None, :].expand(len(q_pos), -1)
    return torch.minimum(torch.floor(r * allowed).long(), q_pos[:, None])


def sparsity_measure(
    q: torch.Tensor, k: torch.Tensor, q_pos: torch.Tensor, factor: float, training: bool
) -> torch.Tensor:
    """``M(q) = max - mean`` of ``q.k / sqrt(d)`` over sampled allowed keys, ``(B, H, q_len)``."""
    k_len = k.shape[2]
    n_sample = max(1, min(k_len, math.ceil(factor * math.log(max(k_len, 2)))))
    index = sample_key_index(q_pos, n_sample, training)  # (q_len, s)
    k_sample = k[:, :, index]  # (B, H, q_len, s, D)
    scores = torch.einsum("bhqd,bhqsd->bhqs", q, k_sample) / math.sqrt(q.shape[-1])
    return scores.amax(-1) - scores.mean(-1)


def prefix_active(measure: torch.Tensor, q_pos: torch.Tensor, factor: float) -> torch.Tensor:
    """Boolean ``(B, H, q_len)``: ``M`` of query ``t`` is in the top ``u_t`` of queries ``<= t``.

    Only queries of this pass are ranked (with a KV cache, earlier chunks' measures are gone;
    prefill always starts at position 0 in this package).
    """
    q_len = measure.shape[-1]
    earlier = torch.tril(torch.ones(q_len, q_len, dtype=torch.bool, device=measure.device), -1)
    # rank_t = 1 + #{s < t : M_s > M_t}
    greater = (measure[..., None, :] > measure[..., :, None]) & earlier
    rank = 1 + greater.sum(-1)
    return rank <= num_active(q_pos + 1, factor).to(measure.device)


def cumulative_mean(v: torch.Tensor, q_pos: torch.Tensor) -> torch.Tensor:
    """Mean of ``v_0 .. v_t`` for each query position ``t``: ``(B, H, q_len, D)``."""
    counts = torch.arange(1, v.shape[2] + 1, device=v.device, dtype=v.dtype)[:, None]
    return (v.cumsum(dim=2) / counts)[:, :, q_pos]


def probsparse_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    factor: float,
    training: bool = False,
    dropout: float = 0.0,
) -> torch.Tensor:
    """Causal ProbSparse attention of the last ``q_len`` positions over ``k_len`` keys."""
    B, H, q_len, D = q.shape
    k_len = k.shape[2]
    q_pos = torch.arange(k_len - q_len, k_len, device=q.device)
    measure = sparsity_measure(q, k, q_pos, factor, training)
    active = prefix_active(measure, q_pos, factor)  # (B, H, q_len)
    out = cumulative_mean(v, q_pos)
    n_max = int(active.sum(-1).max())
    if n_max == 0:
        return out
    # active queries first (in position order), padded with lazy ones up to n_max
    order = torch.argsort((~active).to(torch.int8), dim=-1, stable=True)[..., :n_max]
    picked = active.gather(-1, order)  # False on padding
    q_sel = q.gather(2, order[..., None].expand(-1, -1, -1, D))
    pos_sel = q_pos[order]  # (B, H, n_max)
    scores = q_sel @ k.transpose(-1, -2) / math.sqrt(D)
    allowed = torch.arange(k_len, device=q.device) <= pos_sel[..., None]
    probs = scores.masked_fill(~allowed, float("-inf")).softmax(-1)
    if dropout:
        probs = F.dropout(probs, dropout)
    attended = probs @ v  # (B, H, n_max, D)
    index = order[..., None].expand(-1, -1, -1, D)
    keep = torch.where(picked[..., None], attended, out.gather(2, index))
    return out.scatter(2, index, keep)


class ProbSparseSelfAttention(CausalSelfAttention):
    """:class:`CausalSelfAttention` with causal ProbSparse attention for multi-token passes.

    Same parameters (and state-dict keys) as the exact attention; decode steps with one
    query are exact attention over the cache.
    """

    def __init__(self, n_embd: int, n_head: int, dropout: float = 0.0, factor: float = 5.0):
        super().__init__(n_embd, n_head, dropout)
        if factor <= 0:
            raise ValueError(f"probsparse factor must be > 0, got {factor}")
        self.factor = factor

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        if q.shape[2] == 1:
            return super().attend(q, k, v)
        dropout = self.dropout if self.training else 0.0
        return probsparse_attention(q, k, v, self.factor, self.training, dropout)
