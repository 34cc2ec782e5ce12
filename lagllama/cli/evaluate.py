"""``lagllama backtest``, ``zero-shot``, ``plot`` and ``datasets``: score and look at models.

Also the backtest driver that ``train`` and ``fine-tune`` end with (:func:`run_backtest`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING

from lagllama.cli.arguments import (
    BASELINE_NAMES,
    LAG_LLAMA,
    data_arguments,
    model_arguments,
    report_arguments,
    split_names,
)
from lagllama.evaluation.predictors import lag_llama_factory

if TYPE_CHECKING:
    from gluonts.model import Predictor

    from lagllama.data.tasks import BacktestTask
    from lagllama.evaluation.backtest import BacktestReport


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Register ``backtest``, ``plot``, ``datasets`` and ``zero-shot``."""
    p = sub.add_parser(
        "backtest",
        help="score models and baselines on datasets (WQL, MASE, MSIS, coverage, ...)",
        description="Backtest models on the last windows of each series and write a report. "
        "Example: lagllama backtest --dataset m1_monthly --models seasonal-naive,auto-ets",
    )
    data_arguments(p)
    p.add_argument(
        "--models",
        default="seasonal-naive,auto-ets",
        help=f"comma-separated models from {', '.join((*BASELINE_NAMES, LAG_LLAMA))} "
        "(lag-llama needs --checkpoint; seasonal-naive is always added)",
    )
    model_arguments(p)
    report_arguments(p, baselines=None)
    p.set_defaults(func=cmd_backtest)

    p = sub.add_parser(
        "plot",
        help="quantile fan charts of one model's forecasts",
        description="Forecast the last window of the first series and draw fan charts "
        "(50/80/95%% bands, median, history, actuals).",
    )
    data_arguments(p)
    p.add_argument("--model", default="auto-ets", help="model to plot (default auto-ets)")
    model_arguments(p)
    p.add_argument("--num-series", type=int, default=6, help="series to draw (default 6)")
    p.add_argument("--ncols", type=int, default=3, help="grid columns (default 3)")
    p.add_argument(
        "--output", type=Path, default=Path("forecast.png"), help="image file (.png, .svg, .pdf)"
    )
    p.set_defaults(func=cmd_plot)

    p = sub.add_parser(
        "datasets",
        help="list known dataset names and whether each is in the data folder",
        description="List GluonTS/Monash dataset names and their local availability.",
    )
    p.add_argument("--data-dir", type=Path, help="data folder (default: $LAGLLAMA_DATA_DIR)")
    p.add_argument("--available", action="store_true", help="only list datasets present locally")
    p.set_defaults(func=cmd_datasets)

    p = sub.add_parser(
        "zero-shot",
        help="backtest a pretrained Lag-Llama checkpoint without training",
        description="Zero-shot Lag-Llama forecasts scored against baselines.",
    )
    data_arguments(p)
    model_arguments(p)
    report_arguments(p, baselines="seasonal-naive")
    p.set_defaults(func=cmd_zero_shot)


def load_tasks(args: argparse.Namespace) -> list[BacktestTask]:
    """Backtest tasks for every ``--dataset`` name and ``--file`` path."""
    from lagllama.data.datasets import read_file
    from lagllama.data.tasks import dataset_task, repository_task

    names = [name for text in args.dataset for name in split_names(text)]
    if not names and not args.file:
        raise ValueError("give at least one --dataset NAME or --file PATH")
    if args.windows < 1:
        raise ValueError(f"--windows must be >= 1, got {args.windows}")
    tasks = [
        repository_task(n, args.data_dir, windows=args.windows, download=not args.no_download)
        for n in names
    ]
    for path in args.file:
        if args.prediction_length is None:
            raise ValueError(f"--prediction-length is required for --file {path}")
        columns = {
            "timestamp_column": args.timestamp_column,
            "target_column": args.target_column,
            "item_id_column": args.item_id_column,
            "freq": args.freq,
        }
        for flag in ("covariates", "past_covariates"):
            if getattr(args, flag, None):
                columns[flag] = [c.strip() for c in getattr(args, flag).split(",") if c.strip()]
        dataset = read_file(path, **columns)
        tasks.append(dataset_task(path.stem, dataset, args.prediction_length, args.windows))
    return tasks


def _finish(report: BacktestReport, output: Path | None) -> None:
    columns = ["dataset", "model", "WQL", "MASE", "fallbacks", "imputed", "runtime_s"]
    print(report.table()[columns].to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    if output is not None:
        paths = report.save(output)
        print("report written to " + ", ".join(str(p) for p in paths.values()))


def run_backtest(
    args: argparse.Namespace, models: dict[str, Callable[[BacktestTask], Predictor]]
) -> None:
    """Backtest ``models`` and ``--baselines`` on the tasks of ``args``; print the scores and
    save the report under ``--output``."""
    from lagllama.evaluation.backtest import backtest

    tasks = load_tasks(args)
    for task in tasks:
        if task.skipped:
            shown = ", ".join(task.skipped[:10]) + (", ..." if len(task.skipped) > 10 else "")
            print(
                f"lagllama: left out {len(task.skipped)} series of {task.name} shorter than the "
                f"backtest window plus one point ({task.prediction_length * task.windows + 1}): "
                f"{shown}",
                file=sys.stderr,
            )
    baselines = split_names(args.baselines)
    unknown = sorted(set(baselines) - set(BASELINE_NAMES))
    if unknown:
        raise ValueError(f"unknown model(s) {unknown}; choose from {', '.join(BASELINE_NAMES)}")
    if getattr(args, "covariates", None) and not args.file:
        raise ValueError("--covariates names columns of --file; named datasets have none")
    report = backtest(
        tasks,
        models,
        baselines=baselines,
        impute_missing=not args.no_impute,
        in_context_regression=bool(getattr(args, "covariates", None)),
    )
    report.config["command"] = " ".join(["lagllama", *sys.argv[1:]])
    _finish(report, args.output)


def cmd_backtest(args: argparse.Namespace) -> None:
    """``lagllama backtest``: baselines (and optionally zero-shot Lag-Llama) on datasets."""
    names = split_names(args.models)
    unknown = sorted(set(names) - {*BASELINE_NAMES, LAG_LLAMA})
    if unknown:
        raise ValueError(
            f"unknown model(s) {unknown}; choose from {', '.join((*BASELINE_NAMES, LAG_LLAMA))}"
        )
    models = {LAG_LLAMA: lag_llama_factory(args)} if LAG_LLAMA in names else {}
    args.baselines = ",".join(n for n in names if n != LAG_LLAMA)
    run_backtest(args, models)


def cmd_zero_shot(args: argparse.Namespace) -> None:
    """``lagllama zero-shot``: the pretrained checkpoint against baselines, no training."""
    run_backtest(args, {LAG_LLAMA: lag_llama_factory(args)})


def cmd_plot(args: argparse.Namespace) -> None:
    """``lagllama plot``: fan charts of one model on the first series of the first dataset."""
    from lagllama.evaluation.backtest import baseline
    from lagllama.plotting import plot_grid, save_figure

    if args.num_series < 1:
        raise ValueError(f"--num-series must be >= 1, got {args.num_series}")
    task = load_tasks(args)[0]
    if args.model == LAG_LLAMA:
        predictor = lag_llama_factory(args)(task)
    elif args.model in BASELINE_NAMES:
        predictor = baseline(args.model)(task)
    else:
        raise ValueError(f"unknown model {args.model!r}")
    inputs = list(islice(task.test_data().input, args.num_series))
    forecasts = list(predictor.predict(inputs))
    series = list(islice(task.dataset, len(inputs)))
    fig = plot_grid(forecasts, series, ncols=args.ncols, title=f"{args.model} on {task.name}")
    print(f"figure written to {save_figure(fig, args.output)}")


def cmd_datasets(args: argparse.Namespace) -> None:
    """``lagllama datasets``: known names and local availability in the data folder."""
    from lagllama.data.datasets import is_available, known_datasets, resolve_data_dir

    folder = resolve_data_dir(args.data_dir)
    print(f"data folder: {folder}")
    for name in known_datasets():
        available = is_available(name, folder)
        if available or not args.available:
            print(f"{name:40s} {'available' if available else 'missing'}")
