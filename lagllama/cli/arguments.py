"""Argument groups shared by several ``lagllama`` subcommands, and their small parsers.

One definition per option keeps the subcommands' help texts and defaults the same wherever
an option appears (data, columns, model, hardware, report).
"""

from __future__ import annotations

import argparse
from pathlib import Path

BASELINE_NAMES = ("seasonal-naive", "auto-ets", "auto-theta", "auto-arima")
LAG_LLAMA = "lag-llama"


def split_names(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def column_list(text: str | None) -> list[str] | None:
    return None if text is None else [c.strip() for c in text.split(",") if c.strip()]


def data_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("data")
    group.add_argument(
        "--dataset",
        action="append",
        default=[],
        metavar="NAME[,NAME]",
        help="GluonTS/Monash dataset name(s), e.g. m1_monthly; repeatable",
    )
    group.add_argument(
        "--file",
        action="append",
        default=[],
        type=Path,
        metavar="PATH",
        help="a .tsf, .csv or .parquet file (long or wide form); repeatable",
    )
    group.add_argument(
        "--data-dir",
        type=Path,
        help="folder holding dataset folders (default: $LAGLLAMA_DATA_DIR, then ~/.gluonts/datasets)",
    )
    group.add_argument(
        "--no-download", action="store_true", help="never download; fail if a dataset is missing"
    )
    group.add_argument(
        "--prediction-length",
        type=int,
        help="forecast horizon for --file inputs (named datasets use their own)",
    )
    group.add_argument(
        "--windows", type=int, default=1, help="rolling backtest windows per series (default 1)"
    )
    column_arguments(group)
    _covariate_arguments(group)


def column_arguments(group: argparse._ArgumentGroup) -> None:
    group.add_argument("--freq", help="pandas frequency for files (default: inferred)")
    group.add_argument(
        "--timestamp-column", help="time column of CSV/parquet (default: timestamp or ds)"
    )
    group.add_argument(
        "--target-column", help="target column, long form (default: target, y or value)"
    )
    group.add_argument(
        "--item-id-column",
        help="series id column; its presence means long form (default: item_id, unique_id, id "
        "or series; wide form without one)",
    )


def _covariate_arguments(group: argparse._ArgumentGroup) -> None:
    group.add_argument(
        "--covariates",
        metavar="A,B",
        help="columns of --file known ahead (their values in each backtest window are taken "
        "from the file): every model but seasonal naive uses them by in-context regression",
    )
    group.add_argument(
        "--past-covariates", metavar="C", help="past-only covariate columns of --file"
    )


def model_arguments(parser: argparse.ArgumentParser) -> None:
    from lagllama.nn.precision import SAMPLING_PRECISIONS

    group = parser.add_argument_group("Lag-Llama")
    group.add_argument(
        "--checkpoint",
        help="the model: lagllama (the default: a hybrid of Lag-Llama and AutoTheta), a shipped "
        "model (lagllama models), a checkpoint file (.ckpt), or an ensemble joined by +: "
        "Lag-Llama members (lagllama-fast+lagllama-large) share the sample paths; with a "
        "baseline among them (lagllama-large+auto-theta) quantiles are averaged with weights "
        "fitted on rolling windows before the forecast. Fine-tuning tunes every Lag-Llama member",
    )
    group.add_argument("--context-length", type=int, help="context window (default: model's)")
    group.add_argument("--batch-size", type=int, default=64, help="batch size (default 64)")
    group.add_argument(
        "--num-samples", type=int, default=100, help="sample paths per forecast (default 100)"
    )
    group.add_argument(
        "--sampling-precision",
        choices=SAMPLING_PRECISIONS,
        default="32",
        help="32: float32 sampling (default); bf16: the decoder's matrix products in bfloat16 "
        "(faster on GPUs and CPUs with bf16 instructions)",
    )


def hardware_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("hardware (passed to Lightning)")
    group.add_argument(
        "--accelerator",
        default=None,
        help="cpu, gpu, mps or auto (default: auto; pretrain: config)",
    )
    group.add_argument("--devices", default=None, help="e.g. 1, 2 or auto (default: auto)")
    group.add_argument(
        "--precision", default=None, help="e.g. 32-true, bf16-mixed, 16-mixed (default 32-true)"
    )


def report_arguments(parser: argparse.ArgumentParser, baselines: str | None) -> None:
    if baselines is not None:
        parser.add_argument(
            "--baselines",
            default=baselines,
            help=f"comma-separated baselines from {', '.join(BASELINE_NAMES)} (default {baselines})",
        )
    parser.add_argument(
        "--output", type=Path, help="folder for report.md, results.csv, report.json"
    )
    parser.add_argument(
        "--no-impute",
        action="store_true",
        help="don't impute NaNs before statsforecast fits (failing series fall back anyway)",
    )
