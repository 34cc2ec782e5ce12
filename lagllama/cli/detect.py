"""``lagllama detect``: online anomaly scores and flags of every point of a file or dataset."""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from pathlib import Path

from lagllama.cli.arguments import column_arguments
from lagllama.detection.calibration import DEFAULT_CALIBRATION, DEFAULT_THRESHOLD, SURPRISES


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``detect``."""
    p = sub.add_parser(
        "detect",
        help="score every point for anomalies from one-step predictive distributions",
        description="Score every point of every series, online (each point from its past "
        "only), by how surprising it is under the model's one-step predictive distribution, "
        "calibrated per series as HTM's anomaly likelihood; flag scores at or above a "
        "threshold. Writes one row per point: item_id, timestamp, value, score, flag and the "
        "one-step median and 80%% band (0.5, 0.1, 0.9). See docs/anomaly.md. "
        "Example: lagllama detect --file metrics.csv --output anomalies.csv --plot charts",
    )
    group = p.add_argument_group("data (read as lagllama forecast reads it)")
    group.add_argument("--file", type=Path, metavar="PATH", help="a .csv or .parquet file")
    group.add_argument("--dataset", metavar="NAME", help="a GluonTS/Monash dataset name")
    group.add_argument("--data-dir", type=Path, help="folder holding dataset folders")
    group.add_argument("--no-download", action="store_true", help="never download a dataset")
    column_arguments(group)
    group.add_argument(
        "--chunk-rows", type=int, help="rows of a long file read at a time (default 100,000)"
    )
    group = p.add_argument_group("detector")
    group.add_argument(
        "--model",
        help="a Lag-Llama model: lagllama-fast (the default), a shipped model (lagllama "
        "models) or a checkpoint path; or seasonal-naive (a windowed Gaussian on its errors)",
    )
    group.add_argument(
        "--threshold",
        type=float,
        default=DEFAULT_THRESHOLD,
        help=f"flag scores at or above this, in [0, 1] (default {DEFAULT_THRESHOLD}, chosen on "
        "NAB); a score s means a calibrated tail probability of 10^(-10 s)",
    )
    group.add_argument(
        "--surprise",
        choices=SURPRISES,
        default=DEFAULT_CALIBRATION.surprise,
        help="errors: tail of the value under a windowed Gaussian of the model's one-step "
        "errors around its median (default); tail: under the model's own predictive "
        "distribution",
    )
    group.add_argument(
        "--history",
        type=int,
        default=DEFAULT_CALIBRATION.history,
        help=f"points of the running calibration (default {DEFAULT_CALIBRATION.history})",
    )
    group.add_argument(
        "--warmup",
        type=int,
        default=DEFAULT_CALIBRATION.warmup,
        help=f"first points of a series not used (default {DEFAULT_CALIBRATION.warmup})",
    )
    group.add_argument(
        "--min-samples",
        type=int,
        default=DEFAULT_CALIBRATION.min_samples,
        help="points after the warm-up before the first score (default "
        f"{DEFAULT_CALIBRATION.min_samples})",
    )
    group.add_argument(
        "--spatial-tolerance",
        type=float,
        default=DEFAULT_CALIBRATION.spatial_tolerance,
        help="a value beyond the range seen so far by more than this fraction of it scores 1 "
        f"(HTM's spatial rule; default {DEFAULT_CALIBRATION.spatial_tolerance})",
    )
    group.add_argument(
        "--no-spatial-rule",
        action="store_true",
        help="score new extremes by the forecast alone",
    )
    group.add_argument("--batch-size", type=int, default=64, help="windows per batch (default 64)")
    group = p.add_argument_group("output")
    group.add_argument(
        "--output", type=Path, required=True, help="anomaly table: NAME.csv or NAME.parquet"
    )
    group.add_argument(
        "--plot", type=Path, metavar="FOLDER", help="charts of the first series: band and flags"
    )
    group.add_argument("--num-plots", type=int, default=6, help="series to plot (default 6)")
    group.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_detect)


def cmd_detect(args: argparse.Namespace) -> None:
    """``lagllama detect``: the anomaly table of a file or dataset (and charts)."""
    from lagllama.data.datasets import load_dataset
    from lagllama.data.series_chunks import dataset_chunks
    from lagllama.detection.api import Detector, detect_chunks
    from lagllama.detection.calibration import Calibration
    from lagllama.detection.plotting import save_detection_plots
    from lagllama.forecasting.files import CHUNK_ROWS, check_output, file_chunks

    if (args.file is None) == (args.dataset is None):
        raise ValueError("give one --file PATH or --dataset NAME")
    check_output(args.output)
    if args.file is not None:

        def source() -> Iterable:
            return file_chunks(
                args.file,
                1,
                args.freq,
                args.timestamp_column,
                args.target_column,
                args.item_id_column,
                args.chunk_rows or CHUNK_ROWS,
            )

    else:
        data = load_dataset(args.dataset, args.data_dir, download=not args.no_download)

        def source() -> Iterable:
            return dataset_chunks(data.test, 1)

    calibration = Calibration(
        args.surprise,
        history=args.history,
        warmup=args.warmup,
        min_samples=args.min_samples,
        spatial_tolerance=None if args.no_spatial_rule else args.spatial_tolerance,
    )
    detector = Detector(args.model, args.threshold, calibration, args.batch_size)
    keep = args.num_plots if args.plot is not None else 0
    run = detect_chunks(source, args.output, detector, progress=not args.quiet, keep=keep)
    rate = run.rows / max(run.seconds, 1e-9)
    print(
        f"wrote {run.rows:,} rows of {run.series} series to {run.output} in {run.seconds:.1f} s "
        f"({rate:,.0f} points/s); {run.flagged} flagged at threshold {args.threshold:g}"
    )
    if run.unscored:
        print(
            f"{run.unscored} series have {calibration.learning} points or fewer: too short for "
            "any score (score 0); see --warmup and --min-samples"
        )
    if args.plot is not None:
        paths = save_detection_plots(run.first, args.plot, args.model or "lagllama-fast")
        print(f"{len(paths)} charts written to {args.plot}")
