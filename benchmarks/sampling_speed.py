"""Cached vs uncached autoregressive sampling on all of m4_hourly, same model, same seed.

    python -m benchmarks.sampling_speed [--series 414] [--samples 100] [--threads 2]

Both samplers go through the same GluonTS predictor; the only difference is the KV cache.
The uncached sampler recomputes the full token sequence at every step (scale and lags are
still built once), which is what the cache saves.

The series are processed in chunks, and each chunk is sampled by both samplers back to back
from the same seed, so a change in machine load hits both alike and the ratio stays fair.
Finished chunks are appended to ``results/sampling_speed.partial.jsonl``; an interrupted
run resumes from there (the full uncached run takes about an hour on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
from gluonts.dataset.repository import get_dataset

from benchmarks.common import RESULTS, require_dataset, write_results
from lagllama.estimators.lag_llama import LagLlamaEstimator


def sample(predictor, series: list, use_cache: bool, seed: int) -> tuple[float, np.ndarray]:
    """Seconds taken and the stacked sample paths for ``series``."""
    predictor.prediction_net.use_kv_cache = use_cache
    torch.manual_seed(seed)
    start = time.perf_counter()
    samples = np.stack([f.samples for f in predictor.predict(series)])
    return time.perf_counter() - start, samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=414)
    parser.add_argument("--samples", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--chunk", type=int, default=32, help="series per timed chunk")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    root = require_dataset("m4_hourly")
    dataset = get_dataset("m4_hourly", path=root)
    h = dataset.metadata.prediction_length
    series = list(dataset.test)[: args.series]

    torch.manual_seed(0)
    estimator = LagLlamaEstimator(
        prediction_length=h,
        freq="h",
        batch_size=args.batch_size,
        num_parallel_samples=args.samples,
    )
    predictor = estimator.create_predictor(
        estimator.create_transformation(), estimator.create_lightning_module()
    )
    n_params = sum(p.numel() for p in predictor.prediction_net.parameters())

    settings = {k: v for k, v in vars(args).items() if k != "threads"}
    partial = RESULTS / "sampling_speed.partial.jsonl"
    done = {}
    if partial.exists():
        for line in partial.read_text().splitlines():
            row = json.loads(line)
            if row["settings"] == settings:
                done[row["start"]] = row
    RESULTS.mkdir(parents=True, exist_ok=True)
    for start in range(0, len(series), args.chunk):
        if start in done:
            continue
        chunk = series[start : start + args.chunk]
        t_cached, cached = sample(predictor, chunk, True, seed=start)
        t_full, full = sample(predictor, chunk, False, seed=start)
        scale = np.abs(np.median(full, 1)).max()
        row = {
            "settings": settings,
            "start": start,
            "n": len(chunk),
            "cached_seconds": t_cached,
            "uncached_seconds": t_full,
            "same_forecasts": bool(np.allclose(cached, full, rtol=1e-3, atol=1e-3 * scale)),
            "max_abs_sample_gap": float(np.abs(cached - full).max()),
            "max_series_value": float(scale),
        }
        done[start] = row
        with partial.open("a") as f:
            f.write(json.dumps(row) + "\n")
        print(
            f"series {start}-{start + len(chunk)}: cached {t_cached:.1f} s, "
            f"uncached {t_full:.1f} s ({t_full / t_cached:.1f}x)",
            flush=True,
        )

    rows = [done[s] for s in sorted(done)]
    t_cached = sum(r["cached_seconds"] for r in rows)
    t_full = sum(r["uncached_seconds"] for r in rows)
    agree = all(r["same_forecasts"] for r in rows)
    payload = {
        "series": len(series),
        "samples": args.samples,
        "horizon": h,
        "threads": args.threads,
        "parameters": n_params,
        "config": estimator.model_kwargs | {"lags": len(estimator.model_kwargs["lags_seq"])},
        "cached_seconds": t_cached,
        "uncached_seconds": t_full,
        "speedup": t_full / t_cached,
        "same_forecasts": agree,
        "max_abs_sample_gap": max(r["max_abs_sample_gap"] for r in rows),
        "chunks": rows,
    }
    markdown = f"""# Sampling speed: KV cache vs full recomputation

{len(series)} m4_hourly series, {args.samples} sample paths, horizon {h}, {args.threads} torch
thread(s), batches of {args.batch_size} series; model: default `LagLlamaEstimator`
architecture ({n_params:,} parameters, context {estimator.context_length},
{len(estimator.model_kwargs["lags_seq"])} hourly lags), untrained weights. Each chunk of
{args.chunk} series is sampled by both samplers back to back from the same seed.

| sampler | seconds | seconds / series | speed-up |
|---|---|---|---|
| full recomputation every step | {t_full:.1f} | {t_full / len(series):.3f} | 1.00 |
| KV cache | {t_cached:.1f} | {t_cached / len(series):.3f} | {t_full / t_cached:.2f} |

Same forecasts from the same seed in every chunk: **{agree}** (largest sample difference
{payload["max_abs_sample_gap"]:.2e}; series values up to
{max(r["max_series_value"] for r in rows):.0f}).
"""
    write_results("sampling_speed", payload, markdown)
    partial.unlink()


if __name__ == "__main__":
    main()
