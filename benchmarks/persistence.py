"""Does a model's median follow, ignore or revert the recent trend? (issue 27, exchange_rate)

On random-walk-like data (exchange rates) the last value is the best point forecast, and a
model that leans either way pays in MASE. For one window of a dataset this reports, per model:

* drift: |median at the horizon's end - last value|, in units of the series' mean absolute
  one-step change over its last 250 steps (0 for the naive forecast);
* correlation of that signed drift with the trend of the last 64 steps (+1: follows the
  trend, -1: reverts it);
* MAE of the median relative to the naive forecast's (last value), each series' errors in
  units of its one-step change, then averaged.

``python -m benchmarks.persistence --dataset exchange_rate --models lagllama-small,lagllama-v2-small``
(``--snapshot-dir snapshots`` for weights-only snapshots of runs). One thread, 100 paths, seed 0.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from benchmarks.common import write_results
from benchmarks.zero_shot import load_tasks
from lagllama.settings import shared_datasets_dir

TREND_STEPS = 64
SCALE_STEPS = 250


def persistence(inputs: list[dict], labels: list[dict], medians: list[np.ndarray]) -> dict:
    """Drift, its correlation with the recent trend, and MAE relative to naive (see module)."""
    drift, trend, mae, naive = [], [], [], []
    for entry, label, median in zip(inputs, labels, medians):
        past, future = np.asarray(entry["target"], float), np.asarray(label["target"], float)
        step = np.nanmean(np.abs(np.diff(past[-SCALE_STEPS:])))
        if not np.isfinite(step) or step == 0:
            continue  # a flat history has no trend to follow
        drift.append((median[-1] - past[-1]) / step)
        trend.append((past[-1] - past[-TREND_STEPS]) / step)
        mae.append(np.mean(np.abs(median - future)) / step)  # scaled: no series dominates
        naive.append(np.mean(np.abs(past[-1] - future)) / step)
    return {
        "series": len(drift),
        "mean_abs_drift": float(np.mean(np.abs(drift))),
        "corr_drift_trend": float(np.corrcoef(drift, trend)[0, 1]),
        "mae_over_naive": float(np.mean(mae) / np.mean(naive)),
    }


def main() -> None:
    from lagllama.estimators.lag_llama import LagLlamaEstimator
    from lagllama.pretrained import checkpoint_path

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default="exchange_rate")
    parser.add_argument("--models", default="lagllama-small,lagllama-v2-small,lagllama-v2-base")
    parser.add_argument("--snapshot-dir", type=Path, help="models also found in this folder")
    parser.add_argument("--data-dir", type=Path, default=shared_datasets_dir())
    parser.add_argument("--num-samples", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)

    tasks, missing = load_tasks([args.dataset], args.data_dir)
    if missing:
        raise SystemExit(f"dataset {args.dataset!r} not found under {args.data_dir}")
    task = tasks[0]
    test = task.test_data()
    inputs, labels = list(test.input), list(test.label)
    rows = {}
    for name in [m.strip() for m in args.models.split(",") if m.strip()]:
        snapshot = args.snapshot_dir and (args.snapshot_dir / f"{name}.json").is_file()
        path = checkpoint_path(name, args.snapshot_dir if snapshot else None)
        estimator = LagLlamaEstimator.from_checkpoint(
            path, task.prediction_length, freq=task.freq, num_parallel_samples=args.num_samples
        )
        torch.manual_seed(args.seed)
        forecasts = estimator.create_zero_shot_predictor().predict(inputs)
        rows[name] = persistence(inputs, labels, [f.quantile(0.5) for f in forecasts])

    lines = [
        f"# Persistence on {args.dataset} (h = {task.prediction_length}, one window)",
        "",
        "drift: |median at the horizon's end - last value| in mean absolute one-step changes; "
        f"corr: correlation of the signed drift with the last {TREND_STEPS} steps' trend "
        "(+1 follows it, -1 reverts it); MAE / naive: the median's MAE over the last value's. "
        f"{args.num_samples} paths, seed {args.seed}, one thread.",
        "",
        "| model | series | drift | corr | MAE / naive |",
        "|---|---|---|---|---|",
    ]
    for name, r in rows.items():
        lines.append(
            f"| {name} | {r['series']} | {r['mean_abs_drift']:.2f} | "
            f"{r['corr_drift_trend']:+.2f} | {r['mae_over_naive']:.3f} |"
        )
    command = f"python -m benchmarks.persistence --dataset {args.dataset} --models {args.models}"
    if args.snapshot_dir:
        command += f" --snapshot-dir {args.snapshot_dir}"
    lines += ["", f"Command: `{command}`"]
    write_results(
        f"persistence_{args.dataset}", {"rows": rows, "command": command}, "\n".join(lines)
    )


if __name__ == "__main__":
    main()
