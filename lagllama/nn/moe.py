"""Sparse mixture-of-experts feed-forward layer (Switch / Time-MoE style).

A linear router scores ``E`` SwiGLU experts per token; each token goes to its ``top_k``
experts, weighted by their router probabilities (softmax over all experts, optionally
renormalised over the chosen ``k``). An always-on shared SwiGLU expert is added, scaled by a
per-token sigmoid gate (Time-MoE). Dispatch is vectorised over tokens: one gather/``index_add``
per expert, no loop over tokens.

The load-balancing loss of the last forward pass is kept in :attr:`SparseMoE.aux_loss`::

    aux = E * sum_i f_i * P_i
    f_i = (# tokens that have expert i among their top-k) / (# tokens)
    P_i = mean router probability of expert i over the tokens

as in Switch Transformers (k = 1) and Time-MoE / Mixtral for top-k (so ``sum_i f_i = k``;
perfectly balanced routing gives ``aux = k``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lagllama.nn.mlp import SwiGLU, swiglu_hidden_size


def expert_hidden_size(n_embd: int, top_k: int) -> int:
    """Experts' width: the dense SwiGLU width split over the ``top_k`` routed experts plus the
    shared one, so a token's active feed-forward parameters roughly match the dense layer."""
    return max(8, swiglu_hidden_size(n_embd) // (top_k + 1))


def load_balancing_loss(probs: torch.Tensor, top_index: torch.Tensor) -> torch.Tensor:
    """``E * sum_i f_i P_i`` for router probabilities ``(N, E)`` and top-k choices ``(N, k)``."""
    num_experts = probs.shape[-1]
    counts = F.one_hot(top_index, num_experts).sum(dim=1).to(probs.dtype)  # (N, E)
    f = counts.mean(dim=0)
    p = probs.mean(dim=0)
    return num_experts * (f * p).sum()


class SparseMoE(nn.Module):
    """Top-k routed SwiGLU experts plus a sigmoid-gated shared expert."""

    def __init__(
        self,
        n_embd: int,
        num_experts: int = 8,
        top_k: int = 2,
        hidden: int | None = None,
        shared_expert: bool = True,
        normalize_top_k: bool = False,
    ) -> None:
        super().__init__()
        if not 1 <= top_k <= num_experts:
            raise ValueError(f"need 1 <= top_k <= num_experts, got {top_k} and {num_experts}")
        hidden = hidden or expert_hidden_size(n_embd, top_k)
        self.num_experts, self.top_k = num_experts, top_k
        self.normalize_top_k = normalize_top_k
        self.router = nn.Linear(n_embd, num_experts, bias=False)
        self.experts = nn.ModuleList(SwiGLU(n_embd, hidden) for _ in range(num_experts))
        self.shared = SwiGLU(n_embd, hidden) if shared_expert else None
        self.shared_gate = nn.Linear(n_embd, 1, bias=False) if shared_expert else None
        self.aux_loss = torch.zeros(())
        self.last_top_index: torch.Tensor | None = None

    def route(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Router probabilities ``(N, E)``, top-k weights ``(N, k)`` and expert ids ``(N, k)``."""
        probs = self.router(x).float().softmax(dim=-1)
        weights, index = probs.topk(self.top_k, dim=-1)
        if self.normalize_top_k:
            weights = weights / weights.sum(-1, keepdim=True)
        return probs, weights.to(x.dtype), index

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        flat = x.reshape(-1, shape[-1])
        probs, weights, index = self.route(flat)
        self.aux_loss = load_balancing_loss(probs, index)
        self.last_top_index = index.detach()
        out = torch.zeros_like(flat)
        for e, expert in enumerate(self.experts):
            token, slot = (index == e).nonzero(as_tuple=True)
            if token.numel():
                y = expert(flat[token]) * weights[token, slot, None]
                out.index_add_(0, token, y)
        if self.shared is not None:
            out = out + torch.sigmoid(self.shared_gate(flat)) * self.shared(flat)
        return out.view(shape)

    def active_parameters(self) -> int:
        """Parameters a single token uses: router, shared expert and gate, ``top_k`` experts."""
        total = sum(p.numel() for p in self.router.parameters())
        if self.shared is not None:
            total += sum(p.numel() for p in self.shared.parameters())
            total += sum(p.numel() for p in self.shared_gate.parameters())
        per_expert = sum(p.numel() for p in self.experts[0].parameters())
        return total + self.top_k * per_expert
