"""lagllama: probabilistic forecasting with foundation models (Lag-Llama, Time-LLM) on GluonTS."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["LagLlamaEstimator", "TimeLLMEstimator", "__version__", "detect", "forecast"]


def __getattr__(name: str) -> Any:
    # These import torch/lightning/GluonTS; load them lazily so `import lagllama` stays light.
    if name == "LagLlamaEstimator":
        from lagllama.estimators.lag_llama.estimator import LagLlamaEstimator

        return LagLlamaEstimator
    if name == "forecast":  # the function; its module is lagllama.forecasting.api
        from lagllama.forecasting.api import forecast

        return forecast
    if name == "detect":  # the function; its module is lagllama.detection.api
        from lagllama.detection.api import detect

        return detect
    if name == "TimeLLMEstimator":
        from lagllama.estimators.time_llm import TimeLLMEstimator

        return TimeLLMEstimator
    raise AttributeError(f"module 'lagllama' has no attribute {name!r}")
