"""Preallocated key/value caches for autoregressive decoding: one for a batch of sequences,
and one for many sampled continuations of each that share (never copy) its prefix."""

from __future__ import annotations

from collections.abc import Callable

import torch

from lagllama.nn.precision import HALF, float32_region

Attend = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


class KVCache:
    """Keys and values of every layer, written in place as the sequence grows.

    Buffers have shape ``(n_layer, batch, n_head, max_len, head_dim)``. Each decoder layer
    calls :meth:`update` with the new keys/values of the current chunk; the decoder calls
    :meth:`advance` once the whole stack has seen the chunk.
    """

    def __init__(
        self,
        n_layer: int,
        batch_size: int,
        n_head: int,
        max_len: int,
        head_dim: int,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu",
    ) -> None:
        shape = (n_layer, batch_size, n_head, max_len, head_dim)  # read only once written
        self.keys = torch.empty(shape, dtype=dtype, device=device)
        self.values = torch.empty(shape, dtype=dtype, device=device)
        self.length = 0

    @property
    def max_len(self) -> int:
        return self.keys.shape[3]

    def update(
        self, layer: int, k: torch.Tensor, v: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Store the chunk's keys/values and return all keys/values seen so far."""
        end = self.length + k.shape[2]
        if end > self.max_len:
            raise ValueError(f"KV cache overflow: {end} positions > capacity {self.max_len}")
        self.keys[layer, :, :, self.length : end] = k
        self.values[layer, :, :, self.length : end] = v
        return self.keys[layer, :, :, :end], self.values[layer, :, :, :end]

    def attention(
        self, layer: int, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, attend: Attend
    ) -> torch.Tensor:
        """Store the chunk's keys/values, then ``attend(q, all keys, all values)``."""
        keys, values = self.update(layer, k, v)
        return attend(q, keys, values)

    def advance(self, n: int) -> None:
        self.length += n

    def expand(self, repeats: int) -> SharedPrefixCache:
        """A cache for ``repeats`` continuations of every cached sequence (prefill once,
        sample many), rows ``b * repeats + s``; the prefix is shared, not copied."""
        return SharedPrefixCache(self, repeats)


class SharedPrefixCache(KVCache):
    """``repeats`` continuations of each sequence of a filled :class:`KVCache`.

    The prefix keys/values stay once per sequence; only the continuations' own tokens are
    stored per row. A decode step (one query per row) scores the prefix with one matrix
    product per sequence and head for all its continuations, scores the row's own tokens,
    and takes one softmax over both: exactly attention over a copied prefix, without reading
    ``repeats`` copies of it from memory at every step. Inference only (no dropout).

    The own tokens are stored in contiguous, zeroed blocks of :attr:`BLOCK` positions, and a
    step multiplies whole blocks: the scores of positions not yet written are dropped before
    the softmax and their weights are zero. Batched products of fixed, contiguous shape take
    a faster CPU path than a growing strided slice, for reading at most one partly filled
    block (the decode attention alone measured about a third faster at 100 paths x 16 series
    on an AVX2 CPU; end-to-end speed: benchmarks/official_arch_speed.py).
    """

    #: own positions per block (32: MKL's batched products were slowest below 32 columns)
    BLOCK = 32

    def __init__(self, prefix: KVCache, repeats: int) -> None:
        n_layer, batch, n_head, max_len, head_dim = prefix.keys.shape
        self.prefix_keys = prefix.keys[:, :, :, : prefix.length]
        self.prefix_values = prefix.values[:, :, :, : prefix.length]
        self.prefix_length = prefix.length
        self.repeats = repeats
        self._max_len = max_len
        blocks = -(-(max_len - prefix.length) // self.BLOCK)
        shape = (n_layer, blocks, batch * repeats, n_head, self.BLOCK, head_dim)
        like = prefix.keys
        self.keys = torch.zeros(shape, dtype=like.dtype, device=like.device)
        self.values = torch.zeros(shape, dtype=like.dtype, device=like.device)
        # attention weights of the own positions, padded to whole blocks; positions are
        # written in order, so the padding is still zero whenever it is read
        self._own_probs = like.new_zeros(batch * repeats, n_head, 1, blocks * self.BLOCK)
        self.length = prefix.length

    @property
    def max_len(self) -> int:
        return self._max_len

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor):
        raise NotImplementedError("a shared-prefix cache is read through attention()")

    def attention(
        self, layer: int, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, attend: Attend
    ) -> torch.Tensor:
        if q.shape[2] != 1:
            raise ValueError("continuations of a shared prefix decode one token at a time")
        if q.device.type == "cpu" and q.dtype in HALF:  # as CausalSelfAttention.attend
            with float32_region(q.device):
                return self.attention(layer, q.float(), k.float(), v.float(), attend).to(q.dtype)
        if self.length >= self._max_len:
            raise ValueError(f"KV cache overflow: {self.length + 1} positions > {self._max_len}")
        t = self.length - self.prefix_length  # own positions before this one
        block, offset = divmod(t, self.BLOCK)
        self.keys[layer, block, :, :, offset] = k[:, :, 0]
        self.values[layer, block, :, :, offset] = v[:, :, 0]
        own_k, own_v = self.keys[layer, : block + 1], self.values[layer, : block + 1]
        rows, n_head, _, head_dim = q.shape
        batch, S, Lp = rows // self.repeats, self.repeats, self.prefix_length
        q = q * head_dim**-0.5
        q_shared = q.reshape(batch, S, n_head, head_dim).transpose(1, 2)  # (B, H, S, D)
        scores = [q_shared @ self.prefix_keys[layer].transpose(-1, -2)]  # (B, H, S, Lp)
        for i, keys in enumerate(own_k):  # (rows, H, BLOCK, D) each: score whole blocks
            own = (q @ keys.transpose(-1, -2))[..., : min(self.BLOCK, t + 1 - i * self.BLOCK)]
            scores.append(own.reshape(batch, S, n_head, -1).transpose(1, 2))
        probs = torch.cat(scores, dim=-1).softmax(dim=-1)  # over written positions only
        out = probs[..., :Lp] @ self.prefix_values[layer]  # (B, H, S, D)
        out = out.transpose(1, 2).reshape(rows, n_head, 1, head_dim)
        own_probs = self._own_probs[..., : len(own_v) * self.BLOCK]
        own_probs[..., : t + 1] = probs[..., Lp:].transpose(1, 2).reshape(rows, n_head, 1, t + 1)
        for i, values in enumerate(own_v):
            out = out + own_probs[..., i * self.BLOCK : (i + 1) * self.BLOCK] @ values
        return out
