"""Cached vs uncached autoregressive sampling on all of m4_hourly, same model, same seed.

    python benchmarks/sampling_speed.py [--series 414] [--samples 100]

Both runs go through the GluonTS predictor; the only difference is the KV cache. The
uncached sampler recomputes the full token sequence at every step (scale and lags are still
built once), which is what the cache saves.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from gluonts.dataset.repository import get_dataset

from benchmarks.common import require_dataset, write_results
from lagllama.estimators import LagLlamaEstimator


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=414)
    parser.add_argument("--samples", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()

    root = require_dataset("m4_hourly")
    dataset = get_dataset("m4_hourly", path=root)
    h = dataset.metadata.prediction_length
    series = list(dataset.test)[: args.series]

    torch.manual_seed(0)
    estimator = LagLlamaEstimator(
        prediction_length=h, freq="h", batch_size=args.batch_size,
        num_parallel_samples=args.samples,
    )
    predictor = estimator.create_predictor(
        estimator.create_transformation(), estimator.create_lightning_module()
    )
    n_params = sum(p.numel() for p in predictor.prediction_net.parameters())

    results = {}
    for use_cache in (True, False):
        predictor.prediction_net.use_kv_cache = use_cache
        torch.manual_seed(1)
        start = time.perf_counter()
        samples = np.stack([f.samples for f in predictor.predict(series)])
        results[use_cache] = (time.perf_counter() - start, samples)

    (t_cached, cached), (t_full, full) = results[True], results[False]
    median_gap = np.abs(np.median(cached, 1) - np.median(full, 1)).max()
    scale = np.abs(np.median(full, 1)).max()
    agree = np.allclose(cached, full, rtol=1e-3, atol=1e-3 * scale)
    payload = {
        "series": len(series),
        "samples": args.samples,
        "horizon": h,
        "parameters": n_params,
        "config": estimator.model_kwargs | {"lags": len(estimator.model_kwargs["lags_seq"])},
        "cached_seconds": t_cached,
        "uncached_seconds": t_full,
        "speedup": t_full / t_cached,
        "same_forecasts": bool(agree),
        "max_abs_sample_gap": float(np.abs(cached - full).max()),
        "max_median_gap": float(median_gap),
    }
    markdown = f"""# Sampling speed: KV cache vs full recomputation

{len(series)} m4_hourly series, {args.samples} sample paths, horizon {h}, one run, seed 1,
model: default `LagLlamaEstimator` architecture ({n_params:,} parameters, context
{estimator.context_length}, {len(estimator.model_kwargs["lags_seq"])} hourly lags), untrained weights.

| sampler | seconds | seconds / series | speed-up |
|---|---|---|---|
| full recomputation every step | {t_full:.1f} | {t_full / len(series):.3f} | 1.00 |
| KV cache | {t_cached:.1f} | {t_cached / len(series):.3f} | {t_full / t_cached:.2f} |

Same forecasts from the same seed: **{agree}** (largest sample difference
{payload["max_abs_sample_gap"]:.2e}, series values up to {scale:.0f}).
"""
    write_results("sampling_speed", payload, markdown)


if __name__ == "__main__":
    main()
