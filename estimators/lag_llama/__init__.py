"""Lag-Llama: a LLaMA-style decoder over lagged values with a distribution head."""

from lagllama.estimators.lag_llama.config import LagLlamaConfig
from lagllama.estimators.lag_llama.estimator import LagLlamaEstimator
from lagllama.estimators.lag_llama.lightning_module import LagLlamaLightningModule
from lagllama.estimators.lag_llama.module import LagLlamaModel

__all__ = ["LagLlamaConfig", "LagLlamaEstimator", "LagLlamaLightningModule", "LagLlamaModel"]
