"""GluonTS neural baselines behind one factory, for backtests beside Lag-Llama.

``neural_baseline(name, prediction_length, freq, trainer_kwargs)`` returns an untrained
``gluonts.torch`` estimator: ``deepar`` (the LSTM family: autoregressive LSTM with a
Student-t head), ``patchtst``, ``dlinear``, ``simple-feedforward`` and ``tft``
(Temporal Fusion Transformer, quantile head). ``.train(data)`` gives a predictor that
:func:`lagllama.evaluation.backtest` accepts.
"""

from __future__ import annotations

from typing import Any

from gluonts.torch.model.estimator import PyTorchLightningEstimator

NEURAL_BASELINES = ("deepar", "patchtst", "dlinear", "simple-feedforward", "tft")


def neural_baseline(
    name: str,
    prediction_length: int,
    freq: str,
    trainer_kwargs: dict[str, Any] | None = None,
    context_length: int | None = None,
    batch_size: int = 64,
    num_batches_per_epoch: int = 50,
    **kwargs: Any,
) -> PyTorchLightningEstimator:
    """An untrained GluonTS estimator called ``name`` (see :data:`NEURAL_BASELINES`).

    ``context_length`` defaults to ``2 * prediction_length``; ``kwargs`` go to the estimator.
    """
    context_length = context_length or 2 * prediction_length
    common = {
        "prediction_length": prediction_length,
        "context_length": context_length,
        "batch_size": batch_size,
        "num_batches_per_epoch": num_batches_per_epoch,
        "trainer_kwargs": trainer_kwargs or {},
    }
    if name == "deepar":
        from gluonts.torch.model.deepar import DeepAREstimator

        return DeepAREstimator(freq=freq, **common, **kwargs)
    if name == "patchtst":
        from gluonts.torch.model.patch_tst import PatchTSTEstimator

        patch_len = kwargs.pop("patch_len", max(2, min(16, context_length // 4)))
        stride = kwargs.pop("stride", max(1, patch_len // 2))
        return PatchTSTEstimator(patch_len=patch_len, stride=stride, **common, **kwargs)
    if name == "dlinear":
        from gluonts.torch.model.d_linear import DLinearEstimator

        kernel = kwargs.pop("kernel_size", min(25, context_length - (1 - context_length % 2)))
        return DLinearEstimator(kernel_size=kernel, **common, **kwargs)
    if name == "simple-feedforward":
        from gluonts.torch.model.simple_feedforward import SimpleFeedForwardEstimator

        return SimpleFeedForwardEstimator(**common, **kwargs)
    if name == "tft":
        from gluonts.torch.model.tft import TemporalFusionTransformerEstimator

        return TemporalFusionTransformerEstimator(freq=freq, **common, **kwargs)
    raise ValueError(f"unknown neural baseline {name!r}; choose from {', '.join(NEURAL_BASELINES)}")
