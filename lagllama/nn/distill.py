"""Causal self-attention distilling (Informer's ``Conv1d + ELU + MaxPool`` between blocks).

Informer halves its *encoder* sequence between attention layers. In a per-token causal
decoder every token must still yield an output for its own position without seeing later
inputs, so here distilling is causal and acts on the *context* tokens only:

* a causal ``Conv1d`` (kernel 3, left-padded) and ELU run over the whole current sequence;
* the context tokens (original positions ``< prefix``) are max-pooled in pairs
  ``(2j, 2j+1)`` with stride 2; the pooled token stands at the *later* position of its pair
  (its RoPE position and its place in the causal order), so it never reveals anything to a
  token before that position; the future/decoded tokens are not pooled;
* after the last block, outputs are mapped back to every original position ``t``: the token
  that ends exactly at ``t`` if there is one, else the latest token ending before ``t`` plus
  the full-resolution hidden state of ``t`` from before the first distilling layer.

Each distilling layer halves the context (``C -> C/2 -> C/4 ...``), which is what saves
attention compute on long contexts. Distilled models do not use the KV cache (the cached
layers would hold sequences of different lengths): sampling recomputes the window.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class CausalDistil(nn.Module):
    """Causal conv + ELU over all tokens, then stride-2 max-pool over the context tokens."""

    def __init__(self, n_embd: int, kernel_size: int = 3) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.conv = nn.Conv1d(n_embd, n_embd, kernel_size)

    def forward(
        self, x: torch.Tensor, positions: torch.Tensor, prefix: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Distil ``x`` (B, T, C) whose tokens stand at increasing ``positions`` (T,).

        Returns the shorter sequence and the positions of its tokens.
        """
        y = F.pad(x.transpose(1, 2), (self.kernel_size - 1, 0))
        y = F.elu(self.conv(y)).transpose(1, 2)
        n_ctx = int((positions < prefix).sum())
        pairs = n_ctx // 2
        if pairs == 0:
            return y, positions
        pooled = torch.maximum(y[:, 0 : 2 * pairs : 2], y[:, 1 : 2 * pairs : 2])
        x_out = torch.cat((pooled, y[:, 2 * pairs :]), dim=1)
        pos_out = torch.cat((positions[1 : 2 * pairs : 2], positions[2 * pairs :]))
        return x_out, pos_out


def map_back(
    hidden: torch.Tensor, positions: torch.Tensor, full: torch.Tensor, original: torch.Tensor
) -> torch.Tensor:
    """Outputs at every ``original`` position (B, T, C) from distilled tokens (B, T', C).

    ``full`` holds the hidden states before distilling, at the original positions.
    """
    # latest distilled token ending at or before each original position
    index = torch.searchsorted(positions, original, right=True) - 1  # (T,), -1 = none
    exact = (index >= 0) & (positions[index.clamp(min=0)] == original)
    gathered = hidden[:, index.clamp(min=0)] * (index >= 0)[None, :, None].to(hidden.dtype)
    return torch.where(exact[None, :, None], gathered, gathered + full)
