"""Lag-Llama trained from scratch on m4_hourly vs seasonal naive and DeepAR, one run.

    python benchmarks/train_small.py [--cpu-minutes 10]

Each neural model gets the same training budget (``--cpu-minutes`` of CPU time: wall time
is the budget divided by the torch threads in use), then all models are backtested on the
last 48 points of every series with GluonTS metrics (WQL over quantiles 0.1..0.9, MASE).
"""

from __future__ import annotations

import argparse
import time

import lightning.pytorch as pl
import torch
from gluonts.torch.model.deepar import DeepAREstimator

from benchmarks.common import require_dataset, write_results
from lagllama.estimators import LagLlamaEstimator
from lagllama.evaluation import backtest, repository_task


def trainer_kwargs(wall_seconds: float, max_epochs: int) -> dict:
    return {
        "max_time": {"seconds": int(wall_seconds)},
        "max_epochs": max_epochs,
        "accelerator": "cpu",
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "logger": False,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu-minutes", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    root = require_dataset("m4_hourly")
    task = repository_task("m4_hourly", data_dir=root)
    h, train = task.prediction_length, task.train_data()
    wall = args.cpu_minutes * 60 / torch.get_num_threads()

    estimators = {
        "lag-llama": LagLlamaEstimator(
            prediction_length=h,
            freq=task.freq,
            context_length=2 * h,
            n_layer=4,
            n_head=4,
            n_embd_per_head=16,
            lr=2e-3,
            warmup_steps=100,
            weight_decay=1e-4,
            batch_size=64,
            num_batches_per_epoch=100,
            trainer_kwargs=trainer_kwargs(wall, max_epochs=30),
        ),
        "deepar": DeepAREstimator(
            prediction_length=h,
            freq=task.freq,
            batch_size=64,
            num_batches_per_epoch=100,
            trainer_kwargs=trainer_kwargs(wall, max_epochs=1000),
        ),
    }
    predictors, train_seconds = {}, {}
    for name, estimator in estimators.items():
        pl.seed_everything(args.seed, verbose=False)
        start = time.perf_counter()
        predictors[name] = estimator.train(train)
        train_seconds[name] = time.perf_counter() - start

    pl.seed_everything(args.seed, verbose=False)
    report = backtest([task], predictors, baselines=("seasonal-naive",))
    table = report.table().set_index("model")
    snaive, deepar, ours = (table.loc[m] for m in ("seasonal-naive", "deepar", "lag-llama"))
    checks = {
        "wql_at_most_seasonal_naive": bool(ours.WQL <= snaive.WQL),
        "wql_at_most_1.1x_deepar": bool(ours.WQL <= 1.1 * deepar.WQL),
    }
    payload = {
        "budget_cpu_minutes": args.cpu_minutes,
        "budget_wall_seconds": wall,
        "train_seconds": train_seconds,
        "results": report.table().to_dict(orient="records"),
        "checks": checks,
        "config": {"lag-llama": estimators["lag-llama"].model_kwargs | {"lags_seq": "hourly"}},
    }
    rows = "\n".join(
        f"| {m} | {table.loc[m].WQL:.4f} | {table.loc[m].WQL / snaive.WQL:.3f} | "
        f"{table.loc[m].MASE:.3f} | {train_seconds.get(m, 0):.0f} | {table.loc[m].runtime_s:.1f} |"
        for m in ("seasonal-naive", "deepar", "lag-llama")
    )
    markdown = f"""# Training from scratch on m4_hourly (414 series, h = {h}, last window)

Budget per neural model: {args.cpu_minutes:g} CPU-minutes ({wall:.0f} s wall on
{torch.get_num_threads()} threads), seed {args.seed}, 100 sample paths, one run.

| model | WQL | WQL / seasonal naive | MASE | train s | predict s |
|---|---|---|---|---|---|
{rows}

Lag-Llama WQL <= seasonal naive: **{checks["wql_at_most_seasonal_naive"]}**;
Lag-Llama WQL <= 1.1 x DeepAR: **{checks["wql_at_most_1.1x_deepar"]}**
(ratio {ours.WQL / deepar.WQL:.3f}).
"""
    write_results("train_small", payload, markdown)


if __name__ == "__main__":
    main()
