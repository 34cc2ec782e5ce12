"""GluonTS estimators, installed as ``lagllama.estimators`` (one sub-package per model)."""

from __future__ import annotations

from typing import Any

__all__ = ["LagLlamaEstimator", "TimeLLMEstimator"]


def __getattr__(name: str) -> Any:
    if name == "LagLlamaEstimator":
        from lagllama.estimators.lag_llama.estimator import LagLlamaEstimator

        return LagLlamaEstimator
    if name == "TimeLLMEstimator":
        from lagllama.estimators.time_llm import TimeLLMEstimator

        return TimeLLMEstimator
    raise AttributeError(f"module 'lagllama.estimators' has no attribute {name!r}")
