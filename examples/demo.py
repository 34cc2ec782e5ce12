"""The main job, offline: future forecasts, a zero-shot backtest and fan charts.

    make demo                                               # real series shipped in statsmodels
    make demo DATASET=m4_hourly DATA_DIR=../shared/datasets # any GluonTS/Monash dataset

Forecasts come from the default model, `lagllama` (no training on the target data), are
scored against seasonal naive with GluonTS metrics, and drawn as quantile fan charts. Prints a
short summary and writes ``demo_output/report.{md,csv,json}`` (scores per dataset,
configuration, versions), ``demo_output/<dataset>.png`` and ``demo_output/forecasts.csv`` (the
future beyond each series' end: mean, 10/50/90% quantiles).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd
import torch

from lagllama.data.frequency import ignore_gluonts_frequency_warnings
from lagllama.data.sample_data import load_sample_datasets
from lagllama.data.tasks import BacktestTask, dataset_task, repository_task
from lagllama.evaluation.backtest import BacktestReport, backtest
from lagllama.forecasting.api import forecast
from lagllama.forecasting.options import ForecastOptions
from lagllama.forecasting.specs import DEFAULT_MODEL, build_predictor, parse_model
from lagllama.plotting import plot_grid, save_figure


def summary(report: BacktestReport, num_datasets: int) -> str:
    """Per model: WQL and MASE relative to seasonal naive (geometric mean over the datasets)
    and the seconds it took; the full report is in the files written."""
    seconds = report.results.groupby("model", sort=False)["runtime_s"].sum()
    table = report.aggregate[["model", "WQL", "MASE"]].join(seconds, on="model")
    table.columns = ["model", "rel. WQL", "rel. MASE", "seconds"]
    title = (
        f"Backtest on {num_datasets} dataset(s), relative to seasonal naive "
        "(geometric mean; lower is better):"
    )
    return title + "\n" + table.to_string(index=False, float_format=lambda v: f"{v:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--dataset", help="a GluonTS/Monash dataset name (default: statsmodels data)"
    )
    parser.add_argument(
        "--data-dir", help="folder holding the dataset (default $LAGLLAMA_DATA_DIR)"
    )
    parser.add_argument(
        "--model",
        help=f"a model name, checkpoint path or ensemble (default: {DEFAULT_MODEL}; see lagllama models)",
    )
    parser.add_argument("--output", default="demo_output", type=Path)
    parser.add_argument("--num-samples", type=int, default=100)
    args = parser.parse_args()
    ignore_gluonts_frequency_warnings()
    torch.manual_seed(0)

    if args.dataset:
        tasks = [repository_task(args.dataset, data_dir=args.data_dir)]
    else:
        tasks = [
            dataset_task(s.name, s.dataset, s.prediction_length) for s in load_sample_datasets()
        ]

    spec = parse_model(args.model)

    def lag_llama(task: BacktestTask):
        options = ForecastOptions(task.prediction_length, args.model, num_samples=args.num_samples)
        return build_predictor(spec, options, task.season_length, task.freq)

    report = backtest(tasks, {spec.name: lag_llama}, baselines=("seasonal-naive",))
    paths = report.save(args.output)
    print(summary(report, len(tasks)))

    for task in tasks:
        test = task.test_data()
        inputs = list(test.input)[:9]
        forecasts = list(lag_llama(task).predict(inputs))
        series = list(task.dataset)[: len(forecasts)]
        figure = plot_grid(forecasts, series, title=f"{spec.name} zero-shot: {task.name}")
        paths[task.name] = save_figure(figure, args.output / f"{task.name}.png")
    tables = [
        forecast(t.dataset, t.prediction_length, args.model, num_samples=args.num_samples)
        for t in tasks
    ]
    paths["forecasts"] = args.output / "forecasts.csv"
    pd.concat(tables, ignore_index=True).to_csv(paths["forecasts"], index=False)
    for name, path in paths.items():
        print(f"wrote {name}: {path}")


if __name__ == "__main__":
    main()
