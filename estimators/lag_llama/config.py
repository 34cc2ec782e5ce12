"""Hyperparameters of the Lag-Llama network, as a plain, serialisable config object."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from lagllama.distributions import DISTRIBUTIONS, supports_location
from lagllama.scaling import SCALINGS


@dataclass
class LagLlamaConfig:
    """Architecture of a Lag-Llama model; everything a checkpoint needs to rebuild it.

    Defaults follow the released Lag-Llama: 8 layers, 9 heads of 16, context 32.
    """

    context_length: int = 32
    prediction_length: int = 24
    lags_seq: list[int] = field(default_factory=lambda: list(range(1, 8)))
    n_layer: int = 8
    n_head: int = 9
    n_embd_per_head: int = 16
    dropout: float = 0.0
    scaling: str = "robust"
    num_time_features: int = 7
    observed_lag_features: bool = False
    distr_output: str = "student_t"
    rope_scaling: str | None = None
    rope_factor: float = 1.0
    # Informer / Time-MoE options; the defaults are the plain Lag-Llama decoder
    attention: str = "full"
    probsparse_factor: float = 5.0
    distil: bool = False
    ffn: str = "swiglu"
    num_experts: int = 8
    experts_top_k: int = 2
    aux_loss_weight: float = 0.01
    loss: str = "nll"
    huber_delta: float = 2.0

    def __post_init__(self) -> None:
        if self.context_length < 1:
            raise ValueError(f"context_length must be >= 1, got {self.context_length}")
        if self.prediction_length < 1:
            raise ValueError(f"prediction_length must be >= 1, got {self.prediction_length}")
        self.lags_seq = sorted({int(lag) for lag in self.lags_seq})
        if not self.lags_seq or self.lags_seq[0] < 1:
            raise ValueError(f"lags must be >= 1, got {self.lags_seq}")
        if self.scaling not in SCALINGS:
            raise ValueError(f"unknown scaling {self.scaling!r}; choose one of {SCALINGS}")
        if self.distr_output not in DISTRIBUTIONS:
            raise ValueError(
                f"unknown distribution {self.distr_output!r}; choose one of {sorted(DISTRIBUTIONS)}"
            )
        if not supports_location(self.distr_output) and self.scaling not in ("mean", "none"):
            raise ValueError(
                f"{self.distr_output} takes a scale but no location: use scaling='mean' or 'none'"
            )

        if self.attention not in ("full", "probsparse"):
            raise ValueError(f"unknown attention {self.attention!r}; use 'full' or 'probsparse'")
        if self.probsparse_factor <= 0:
            raise ValueError(f"probsparse_factor must be > 0, got {self.probsparse_factor}")
        if self.ffn not in ("swiglu", "moe"):
            raise ValueError(f"unknown ffn {self.ffn!r}; use 'swiglu' or 'moe'")
        if not 1 <= self.experts_top_k <= self.num_experts:
            raise ValueError(
                f"need 1 <= experts_top_k <= num_experts, got {self.experts_top_k} "
                f"and {self.num_experts}"
            )
        if self.loss not in ("nll", "huber"):
            raise ValueError(f"unknown loss {self.loss!r}; use 'nll' or 'huber'")
        if self.loss == "huber" and not supports_location(self.distr_output):
            raise ValueError(f"loss='huber' needs a head with a location, not {self.distr_output}")

    @property
    def n_embd(self) -> int:
        return self.n_head * self.n_embd_per_head

    @property
    def max_lag(self) -> int:
        return self.lags_seq[-1]

    @property
    def past_length(self) -> int:
        """History the model reads: the context plus the longest lag behind it."""
        return self.context_length + self.max_lag

    @property
    def in_features(self) -> int:
        """Per-token inputs: lagged values (and their observed flags), log1p|loc|, log scale, time."""
        n_lags = len(self.lags_seq) * (2 if self.observed_lag_features else 1)
        return n_lags + 2 + self.num_time_features

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> LagLlamaConfig:
        """Build from a dict, rejecting keys this version does not know (a wrong checkpoint)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"not a Lag-Llama config: unknown keys {unknown}")
        return cls(**values)
