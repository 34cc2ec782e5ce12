"""Forecast throughput: the chunked single process against Ray on the same cores, one run.

    python -m benchmarks.forecast_throughput [--series 20000] [--small 2000] [--cores 2]

Input: ``--series`` synthetic daily series of 200 points (level, trend, weekly season, noise;
seed 0) in one long parquet file. Job: ``lagllama forecast`` with h = 12, the shipped default
model, 100 sample paths, seed 0. Runs, each in its own subprocess so that its memory is its own:
the single process (``--cores`` torch threads) on ``--series`` and on ``--small`` series, and
Ray (a local instance with ``--cores`` CPUs, one actor per core, one thread each) on
``--series``. The parent samples the resident memory (RSS) of the whole process tree every
0.2 s with psutil (for Ray: the driver, Ray's own processes and the workers), and reports
series per second (the job's own timer, model loading and, for Ray, staging and start-up
included), the peak RSS of each run, the Ray overhead (single-process throughput divided by
Ray's; aim: at most 1.2) and the peak memory of ``--series`` against ``--small`` series
(aim: at most 1.5x). Both engines' forecasts are compared at the end.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.common import write_results

LENGTH, HORIZON, SAMPLES, SEED = 200, 12, 100, 0
VALUES = ["mean", "0.1", "0.5", "0.9"]


def synthetic(path: Path, series: int, seed: int = 0) -> Path:
    """``series`` daily series of ``LENGTH`` points in long form, written as parquet."""
    rng = np.random.default_rng(seed)
    t = np.arange(LENGTH)
    level = rng.uniform(10, 1000, (series, 1))
    trend = rng.normal(0, 0.002, (series, 1)) * level * t
    season = (
        rng.uniform(0, 0.2, (series, 1))
        * level
        * np.sin(2 * np.pi * t / 7 + rng.uniform(0, 6, (series, 1)))
    )
    noise = rng.normal(0, 0.05, (series, LENGTH)) * level
    frame = pd.DataFrame(
        {
            "item_id": np.repeat([f"sku{i:07d}" for i in range(series)], LENGTH),
            "timestamp": np.tile(pd.date_range("2024-01-01", periods=LENGTH, freq="D"), series),
            "target": (level + trend + season + noise).ravel().astype(np.float32),
        }
    )
    frame.to_parquet(path, index=False, row_group_size=100_000)
    return path


def run_job(engine: str, source: Path, output: Path, cores: int) -> None:
    """Child process: one forecast job; prints its series count and seconds as JSON."""
    import torch

    from lagllama.forecasting.files import file_chunks, forecast_chunks

    chunks = file_chunks(source, HORIZON)
    options = {"num_samples": SAMPLES, "seed": SEED, "progress": False}
    if engine == "ray":
        import ray

        from lagllama.forecasting.ray_engine import forecast_ray

        start = time.perf_counter()
        ray.init(num_cpus=cores, include_dashboard=False, log_to_driver=False)
        run = forecast_ray(chunks, output, HORIZON, workers=cores, **options)
        seconds = time.perf_counter() - start
        ray.shutdown()
    else:
        torch.set_num_threads(cores)
        run = forecast_chunks(chunks, output, HORIZON, **options)
        seconds = run.seconds
    print(json.dumps({"series": run.counts["series"], "seconds": seconds}))


def measure(engine: str, source: Path, output: Path, cores: int) -> dict:
    """Run one job in a subprocess, sampling the RSS of its process tree."""
    import psutil

    command = [sys.executable, "-m", "benchmarks.forecast_throughput", "--job", engine]
    command += ["--input", str(source), "--output", str(output), "--cores", str(cores)]
    start = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    root = psutil.Process(child.pid)
    peak_total = peak_main = 0
    while child.poll() is None:
        try:
            tree = [root, *root.children(recursive=True)]
            rss = {p.pid: p.memory_info().rss for p in tree if p.is_running()}
        except psutil.Error:
            continue
        peak_total = max(peak_total, sum(rss.values()))
        peak_main = max(peak_main, rss.get(child.pid, 0))
        time.sleep(0.2)
    out, _ = child.communicate()
    if child.returncode:
        raise SystemExit(f"{engine} job failed with status {child.returncode}")
    result = json.loads(out.strip().splitlines()[-1])
    mib = 2**20
    return {
        "engine": engine,
        "series": result["series"],
        "job_seconds": result["seconds"],
        "wall_seconds": time.perf_counter() - start,
        "series_per_s": result["series"] / result["seconds"],
        "peak_rss_mib": peak_total / mib,
        "peak_rss_driver_mib": peak_main / mib,
        "peak_rss_other_processes_mib": (peak_total - peak_main) / mib,
    }


def compare(a: Path, b: Path) -> float:
    """Largest relative difference between two forecast tables, matched by id and time."""
    left, right = (
        pd.read_parquet(p).sort_values(["item_id", "timestamp"]).reset_index(drop=True)
        for p in (a, b)
    )
    assert (left["item_id"].astype(str) == right["item_id"].astype(str)).all()
    x, y = left[VALUES].to_numpy(float), right[VALUES].to_numpy(float)
    return float(np.max(np.abs(x - y) / np.maximum(np.abs(y), 1e-9)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=20_000)
    parser.add_argument("--small", type=int, help="memory comparison size (default series/10)")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--job", choices=("local", "ray"), help=argparse.SUPPRESS)
    parser.add_argument("--input", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--output", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.job:
        run_job(args.job, args.input, args.output, args.cores)
        return
    small = args.small or max(1, args.series // 10)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        big = synthetic(folder / "big.parquet", args.series)
        little = synthetic(folder / "small.parquet", small)
        local = measure("local", big, folder / "local.parquet", args.cores)
        ray = measure("ray", big, folder / "ray.parquet", args.cores)
        local_small = measure("local", little, folder / "local_small.parquet", args.cores)
        gap = compare(folder / "ray.parquet", folder / "local.parquet")
    overhead = local["series_per_s"] / ray["series_per_s"]
    growth = local["peak_rss_mib"] / local_small["peak_rss_mib"]
    payload = {
        "series": args.series,
        "small": small,
        "length": LENGTH,
        "horizon": HORIZON,
        "samples": SAMPLES,
        "seed": SEED,
        "cores": args.cores,
        "runs": [local, ray, local_small],
        "ray_overhead": overhead,
        "memory_growth": growth,
        "max_relative_difference_ray_vs_local": gap,
    }
    rows = "\n".join(
        f"| {r['engine']} | {r['series']:,} | {r['job_seconds']:.1f} | {r['series_per_s']:.1f} "
        f"| {r['peak_rss_mib']:.0f} | {r['peak_rss_driver_mib']:.0f} "
        f"| {r['peak_rss_other_processes_mib']:.0f} |"
        for r in payload["runs"]
    )
    note = (
        "\n  (the engines run different torch thread counts, so float sums can differ in the "
        "last bits, which the autoregressive sampling carries along)"
        if gap > 0
        else " (identical)"
    )
    markdown = f"""# Forecast throughput: chunked single process vs Ray

{args.series:,} synthetic daily series of {LENGTH} points (one long parquet file), horizon
{HORIZON}, the shipped default model, {SAMPLES} sample paths, seed {SEED}, {args.cores} cores:
the single process uses {args.cores} torch threads, Ray a local instance with {args.cores}
CPUs and one single-threaded actor per core. Seconds are the job's own (model loading, and
for Ray staging and start-up, included); RSS is sampled every 0.2 s over the process tree.

| engine | series | seconds | series/s | peak RSS MiB | driver MiB | other processes MiB |
|---|---|---|---|---|---|---|
{rows}

- Ray overhead (single-process series/s over Ray's): **{overhead:.2f}** (aim: <= 1.20)
- Peak memory, {args.series:,} vs {small:,} series (single process): **{growth:.2f}x**
  (aim: <= 1.5x)
- Largest relative difference between Ray's and the single process's forecasts: {gap:.1e}{note}
"""
    write_results("forecast_throughput", payload, markdown)


if __name__ == "__main__":
    main()
