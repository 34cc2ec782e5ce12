"""Hyperparameters of the Lag-Llama network, as a plain, serialisable config object."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from lagllama.nn.distributions import DISTRIBUTIONS, supports_location
from lagllama.nn.scaling import SCALINGS

#: What a config field is, recorded once on the field (``metadata["role"]``):
#: ``architecture`` defines the network (a checkpoint fixes it), ``covariate`` the covariate
#: inputs (fixed by a checkpoint trained with covariates), ``training`` how it learns (a
#: fine-tuning run may change it), ``inference`` the windows it reads and samples over.
#: ``metadata["core"]`` marks the original Lag-Llama's fields, which every export stores.
ROLES = ("architecture", "covariate", "training", "inference")


@dataclass
class LagLlamaConfig:
    """Architecture of a Lag-Llama model; everything a checkpoint needs to rebuild it.

    Defaults follow the released Lag-Llama: 8 layers, 9 heads of 16, context 32.
    """

    context_length: int = field(default=32, metadata={"role": "inference", "core": True})
    prediction_length: int = field(default=24, metadata={"role": "inference", "core": True})
    lags_seq: list[int] = field(
        default_factory=lambda: list(range(1, 8)),
        metadata={"role": "architecture", "core": True},
    )
    n_layer: int = field(default=8, metadata={"role": "architecture", "core": True})
    n_head: int = field(default=9, metadata={"role": "architecture", "core": True})
    n_embd_per_head: int = field(default=16, metadata={"role": "architecture", "core": True})
    dropout: float = field(default=0.0, metadata={"role": "training", "core": True})
    scaling: str = field(default="robust", metadata={"role": "architecture", "core": True})
    num_time_features: int = field(default=7, metadata={"role": "architecture", "core": True})
    observed_lag_features: bool = field(
        default=False, metadata={"role": "architecture", "core": True}
    )
    distr_output: str = field(default="student_t", metadata={"role": "architecture", "core": True})
    rope_scaling: str | None = field(default=None, metadata={"role": "training", "core": True})
    rope_factor: float = field(default=1.0, metadata={"role": "training", "core": True})
    # most tokens the decoder attends over when sampling (None: context + prediction length,
    # the training window); longer forecasts restart the window from the last context tokens
    sampling_window: int | None = field(default=None, metadata={"role": "inference"})
    # Informer / Time-MoE options; the defaults are the plain Lag-Llama decoder
    attention: str = field(default="full", metadata={"role": "architecture"})
    probsparse_factor: float = field(default=5.0, metadata={"role": "architecture"})
    distil: bool = field(default=False, metadata={"role": "architecture"})
    ffn: str = field(default="swiglu", metadata={"role": "architecture"})
    num_experts: int = field(default=8, metadata={"role": "architecture"})
    experts_top_k: int = field(default=2, metadata={"role": "architecture"})
    aux_loss_weight: float = field(default=0.01, metadata={"role": "training"})
    loss: str = field(default="nll", metadata={"role": "training"})
    huber_delta: float = field(default=2.0, metadata={"role": "training"})
    # trained covariates, with GluonTS's field names (0 / empty: none)
    num_feat_dynamic_real: int = field(default=0, metadata={"role": "covariate"})
    num_past_feat_dynamic_real: int = field(default=0, metadata={"role": "covariate"})
    num_feat_static_real: int = field(default=0, metadata={"role": "covariate"})
    num_feat_static_cat: int = field(default=0, metadata={"role": "covariate"})
    cardinality: list[int] = field(default_factory=list, metadata={"role": "covariate"})
    embedding_dimension: list[int] | None = field(default=None, metadata={"role": "covariate"})

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

        if self.sampling_window is not None and self.sampling_window <= self.context_length:
            raise ValueError(
                f"sampling_window must exceed context_length ({self.context_length}), "
                f"got {self.sampling_window}"
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
        for name in (
            "num_feat_dynamic_real",
            "num_past_feat_dynamic_real",
            "num_feat_static_real",
            "num_feat_static_cat",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        self.cardinality = [int(c) for c in self.cardinality]
        if (
            len(self.cardinality) != self.num_feat_static_cat
            or min(self.cardinality, default=1) < 1
        ):
            raise ValueError(
                f"cardinality must hold one count >= 1 per static categorical feature "
                f"(num_feat_static_cat={self.num_feat_static_cat}), got {self.cardinality}"
            )
        if self.embedding_dimension is None:  # GluonTS DeepAR's rule
            self.embedding_dimension = [min(50, (c + 1) // 2) for c in self.cardinality]
        self.embedding_dimension = [int(d) for d in self.embedding_dimension]
        if len(self.embedding_dimension) != len(self.cardinality):
            raise ValueError(
                f"embedding_dimension needs one size per categorical feature, got "
                f"{self.embedding_dimension} for cardinality {self.cardinality}"
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

    @property
    def num_covariate_features(self) -> int:
        """Per-token covariate inputs: known-future and past-only dynamic values (and a flag
        saying whether the past-only ones are known at that token), static reals and the
        embeddings of the static categoricals."""
        past = self.num_past_feat_dynamic_real
        return (
            self.num_feat_dynamic_real
            + past
            + (1 if past else 0)
            + self.num_feat_static_real
            + sum(self.embedding_dimension or [])
        )

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

    @classmethod
    def fields_with_role(cls, role: str) -> tuple[str, ...]:
        """Names of the fields with ``role`` (one of :data:`ROLES`), in declaration order."""
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}; choose one of {ROLES}")
        return tuple(f.name for f in fields(cls) if f.metadata["role"] == role)

    @classmethod
    def core_fields(cls) -> tuple[str, ...]:
        """Names of the original Lag-Llama's fields, which an exported checkpoint always
        stores (the others only when not at their defaults, so it loads across versions)."""
        return tuple(f.name for f in fields(cls) if f.metadata.get("core", False))
