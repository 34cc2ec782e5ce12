"""Time-LLM: a frozen language model reprogrammed for forecasting."""

from __future__ import annotations

from .estimator import TimeLLMEstimator
from .lightning_module import TimeLLMLightningModule
from .module import TimeLLMConfig, TimeLLMModel

__all__ = ["TimeLLMConfig", "TimeLLMEstimator", "TimeLLMLightningModule", "TimeLLMModel"]
