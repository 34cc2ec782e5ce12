"""Speed at the released Lag-Llama architecture: sampling per series and one training batch.

    python benchmarks/official_arch_speed.py [--series 32]

Architecture as released: 8 layers, 9 heads of 16, context 32, the frequency-independent
Lag-Llama lag set, robust scaling, time features, Student-t head (about 2.45M parameters).
Weights are random (speed does not depend on them). Sampling: 100 paths x horizon 48 for
m4_hourly series through the GluonTS predictor. Training: forward, backward and AdamW step on
a batch of 64 windows, timed for a one-step (h = 1) and a 48-step horizon.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from gluonts.dataset.repository import get_dataset

from benchmarks.common import require_dataset, write_results
from lagllama.estimators import LagLlamaEstimator
from lagllama.estimators.lag_llama import LagLlamaConfig, LagLlamaModel

OFFICIAL_SAMPLING_S = (4.4, 5.0)  # per series, official code with KV cache, gluonts 0.14.4
OFFICIAL_TRAIN_BATCH_S = 0.65


def released(prediction_length: int) -> LagLlamaEstimator:
    return LagLlamaEstimator(
        prediction_length=prediction_length,
        freq="h",
        context_length=32,
        lags_seq="lag-llama",
        n_layer=8,
        n_head=9,
        n_embd_per_head=16,
        batch_size=16,
    )


def time_training_batch(prediction_length: int, repeats: int = 7) -> float:
    """Median seconds of forward + backward + optimiser step on 64 random windows."""
    config = LagLlamaConfig.from_dict(released(prediction_length).model_kwargs)
    model = LagLlamaModel(config).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    P, F, h, B = config.past_length, config.num_time_features, prediction_length, 64
    batch = {
        "past_target": torch.rand(B, P) * 100,
        "past_observed_values": torch.ones(B, P),
        "future_target": torch.rand(B, h) * 100,
        "future_observed_values": torch.ones(B, h),
        "past_time_feat": torch.rand(B, P, F) - 0.5,
        "future_time_feat": torch.rand(B, h, F) - 0.5,
    }
    times = []
    for _ in range(repeats + 2):
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        model.loss(**batch).mean().backward()
        optimizer.step()
        times.append(time.perf_counter() - start)
    return statistics.median(times[2:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=32)
    args = parser.parse_args()

    root = require_dataset("m4_hourly")
    series = list(get_dataset("m4_hourly", path=root).test)[: args.series]
    torch.manual_seed(0)
    estimator = released(48)
    predictor = estimator.create_predictor(
        estimator.create_transformation(), estimator.create_lightning_module()
    )
    n_params = sum(p.numel() for p in predictor.prediction_net.parameters())
    list(predictor.predict(series[:2]))  # warm-up
    start = time.perf_counter()
    forecasts = list(predictor.predict(series))
    per_series = (time.perf_counter() - start) / len(series)
    assert forecasts[0].samples.shape == (100, 48)

    train_1, train_48 = time_training_batch(1), time_training_batch(48)
    payload = {
        "parameters": n_params,
        "series": len(series),
        "sampling_s_per_series": per_series,
        "train_batch_s": {"h=1": train_1, "h=48": train_48},
        "official": {"sampling_s_per_series": OFFICIAL_SAMPLING_S, "train_batch_s": OFFICIAL_TRAIN_BATCH_S},
        "targets": {"sampling_s_per_series": 0.5, "train_batch_s": 0.3},
    }
    lo, hi = OFFICIAL_SAMPLING_S
    markdown = f"""# Speed at the released Lag-Llama architecture

8 layers, 9 heads x 16, context 32, {len(estimator.model_kwargs["lags_seq"])} lags, robust
scaling, time features, Student-t head: {n_params:,} parameters. {len(series)} m4_hourly series.

| measurement | ours | official code (same machine kind) | target |
|---|---|---|---|
| 100 paths x horizon 48, seconds per series | {per_series:.3f} | {lo}-{hi} | <= 0.5 |
| training batch of 64 windows (h = 1), seconds | {train_1:.3f} | {OFFICIAL_TRAIN_BATCH_S} | <= 0.3 |
| training batch of 64 windows (h = 48), seconds | {train_48:.3f} | - | - |

Speed-up over the official sampler: {lo / per_series:.1f}x-{hi / per_series:.1f}x.
"""
    write_results("official_arch_speed", payload, markdown)


if __name__ == "__main__":
    main()
