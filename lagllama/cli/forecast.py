"""``lagllama forecast``: future forecasts of a file or dataset into a tidy table (and charts)."""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from pathlib import Path

from lagllama.cli.arguments import column_arguments, column_list, split_names
from lagllama.forecasting.files import ForecastRun
from lagllama.forecasting.options import ForecastOptions
from lagllama.forecasting.specs import DEFAULT_MODEL


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``forecast``."""
    p = sub.add_parser(
        "forecast",
        help="forecast the future of every series into a CSV/parquet table (and fan charts)",
        description="Forecast PREDICTION_LENGTH steps after the last timestamp of every series. "
        "Writes one row per (series, timestamp) with mean and quantile columns. Large files are "
        "read in chunks (a series' rows must be contiguous); --engine ray runs on a Ray cluster. "
        "Example: lagllama forecast --file sales.csv --prediction-length 12 --output f.csv",
    )
    _forecast_arguments(p)
    p.set_defaults(func=cmd_forecast)


def _forecast_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("data")
    group.add_argument("--file", type=Path, metavar="PATH", help="a .csv or .parquet file")
    group.add_argument("--dataset", metavar="NAME", help="a GluonTS/Monash dataset name")
    group.add_argument("--data-dir", type=Path, help="folder holding dataset folders")
    group.add_argument("--no-download", action="store_true", help="never download a dataset")
    group.add_argument(
        "--prediction-length",
        type=int,
        help="steps to forecast (required for --file; datasets default to their own)",
    )
    column_arguments(group)
    group.add_argument(
        "--chunk-rows", type=int, help="rows of a long file read at a time (default 100,000)"
    )
    group = parser.add_argument_group("covariates (long form; see the README's conventions)")
    group.add_argument(
        "--future-file",
        type=Path,
        metavar="PATH",
        help="id, time and the known-future covariates at every forecast step; the history's "
        "columns that it also has are known-future covariates (in-context regression)",
    )
    group.add_argument(
        "--covariates", metavar="A,B", help="known-future covariate columns (default: detected)"
    )
    group.add_argument(
        "--past-covariates",
        metavar="C",
        help="past-only covariate columns (default: the history's other columns)",
    )
    group = parser.add_argument_group("model")
    group.add_argument(
        "--model",
        help=f"{DEFAULT_MODEL} (the default), a shipped model (lagllama models), a checkpoint "
        "path, a baseline (seasonal-naive, auto-ets, auto-theta, auto-arima), or an ensemble "
        "of them joined by +",
    )
    group.add_argument(
        "--quantiles", default="0.1,0.5,0.9", help="comma-separated levels (default 0.1,0.5,0.9)"
    )
    group.add_argument("--num-samples", type=int, default=100, help="sample paths (default 100)")
    group.add_argument(
        "--seed", type=int, default=0, help="seed of every series' paths (default 0)"
    )
    group.add_argument("--batch-size", type=int, default=64, help="series per batch (default 64)")
    group = parser.add_argument_group("output")
    group.add_argument(
        "--output", type=Path, required=True, help="forecast table: NAME.csv or NAME.parquet"
    )
    group.add_argument("--plot", type=Path, metavar="FOLDER", help="fan charts of the first series")
    group.add_argument("--num-plots", type=int, default=6, help="series to plot (default 6)")
    group.add_argument("--quiet", action="store_true", help="no progress bar")
    group = parser.add_argument_group("Ray")
    group.add_argument(
        "--engine",
        choices=("local", "ray"),
        default="local",
        help="local: one process, chunked (default); ray: Ray Data actors, parquet output",
    )
    group.add_argument(
        "--ray-address", help="an existing Ray cluster, HOST:6379 (default: a local Ray instance)"
    )
    group.add_argument("--ray-workers", type=int, help="actors (default: one per CPU of Ray)")


def _quantiles(text: str) -> list[float]:
    try:
        return [float(q) for q in split_names(text)]
    except ValueError:
        raise ValueError(
            f"--quantiles must be numbers in (0, 1), e.g. 0.1,0.5,0.9; got {text!r}"
        ) from None


def _plot_forecasts(
    args: argparse.Namespace, options: ForecastOptions, run: ForecastRun, chunks: Iterable
) -> None:
    """Fan charts of the first ``--num-plots`` series (same model, seeds and weights as the
    table) into ``--plot``."""
    import re

    from lagllama.forecasting.api import Forecaster
    from lagllama.plotting import plot_forecast, save_figure

    series = []
    for chunk in chunks:
        series += list(zip(chunk.ids, chunk.entries))[: args.num_plots - len(series)]
        if len(series) >= args.num_plots:
            break
    entries = [entry for _, entry in series]
    weights = None if run.weights is None else list(run.weights.values())
    forecaster = Forecaster(options, entries[0]["start"].freqstr, weights)
    label = options.model or DEFAULT_MODEL
    for i, ((item_id, entry), forecast) in enumerate(zip(series, forecaster.predict(entries))):
        ax, _ = plot_forecast(forecast, entry, title=f"{label}: {item_id}")
        name = re.sub(r"[^\w.-]+", "_", str(item_id))
        save_figure(ax.figure, args.plot / f"{i + 1:02d}_{name}.png")
    print(f"{len(series)} fan charts written to {args.plot}")


def cmd_forecast(args: argparse.Namespace) -> None:
    """``lagllama forecast``: future forecasts of a file or dataset into a tidy table."""
    from lagllama.data.datasets import load_dataset
    from lagllama.data.series_chunks import dataset_chunks
    from lagllama.forecasting.api import summary_line
    from lagllama.forecasting.files import CHUNK_ROWS, file_chunks, forecast_chunks
    from lagllama.forecasting.specs import parse_model

    if (args.file is None) == (args.dataset is None):
        raise ValueError("give one --file PATH or --dataset NAME")
    h = args.prediction_length
    if args.file is not None:
        if h is None:
            raise ValueError(f"--prediction-length is required for --file {args.file}")

        def source() -> Iterable:
            return file_chunks(
                args.file,
                h,
                args.freq,
                args.timestamp_column,
                args.target_column,
                args.item_id_column,
                args.chunk_rows or CHUNK_ROWS,
                args.future_file,
                column_list(args.covariates),
                column_list(args.past_covariates),
            )

    else:
        if args.future_file or args.covariates or args.past_covariates:
            raise ValueError("covariates are read from --file (and --future-file), not --dataset")
        data = load_dataset(args.dataset, args.data_dir, download=not args.no_download)
        h = h or data.metadata.prediction_length

        def source() -> Iterable:
            return dataset_chunks(data.test, h)

    if h < 1:
        raise ValueError(f"--prediction-length must be >= 1, got {h}")
    options = ForecastOptions(
        h,
        args.model,
        tuple(_quantiles(args.quantiles)),
        args.num_samples,
        args.seed,
        args.batch_size,
    )
    parse_model(options.model)
    if args.engine == "ray":
        from lagllama.forecasting.ray_engine import forecast_ray

        run = forecast_ray(
            source,
            args.output,
            options,
            address=args.ray_address,
            workers=args.ray_workers,
            progress=not args.quiet,
        )
    else:
        run = forecast_chunks(source, args.output, options, progress=not args.quiet)
    rate = run.counts["series"] / max(run.seconds, 1e-9)
    print(f"wrote {run.rows:,} rows to {run.output} in {run.seconds:.1f} s ({rate:.1f} series/s)")
    print(summary_line(run.counts, run.weights))
    if args.plot is not None:
        _plot_forecasts(args, options, run, source())
