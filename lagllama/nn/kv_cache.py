"""A preallocated key/value cache for autoregressive decoding."""

from __future__ import annotations

import torch


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
        shape = (n_layer, batch_size, n_head, max_len, head_dim)
        self.keys = torch.zeros(shape, dtype=dtype, device=device)
        self.values = torch.zeros(shape, dtype=dtype, device=device)
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

    def advance(self, n: int) -> None:
        self.length += n

    def repeat_interleave(self, repeats: int) -> KVCache:
        """A cache whose batch holds each row ``repeats`` times (prefill once, sample many)."""
        out = KVCache.__new__(KVCache)
        out.keys = self.keys.repeat_interleave(repeats, dim=1)
        out.values = self.values.repeat_interleave(repeats, dim=1)
        out.length = self.length
        return out
