"""The ``lagllama`` command: forecast, detect, backtest, plot, zero-shot, train, fine-tune, ...

Heavy imports (GluonTS, statsforecast, torch, the estimators) happen inside the
subcommands so ``lagllama --help`` stays fast. Bad input (ValueError, FileNotFoundError)
exits with status 2 and a one-line ``lagllama: error: ...`` on stderr.

One module per command group, each with its parsers and commands: :mod:`.forecast`,
:mod:`.detect`, :mod:`.evaluate` (backtest, zero-shot, plot, datasets), :mod:`.train` (train,
fine-tune) and :mod:`.pretrain`, :mod:`.models`; the options they share are in :mod:`.arguments`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from lagllama.cli import detect, evaluate, forecast, models, pretrain, train


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with all subcommands."""
    parser = argparse.ArgumentParser(
        prog="lagllama",
        description="Probabilistic forecasting with Lag-Llama on GluonTS: evaluate, plot, train.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    forecast.add_parser(sub)
    detect.add_parser(sub)
    models.add_parser(sub)
    evaluate.add_parsers(sub)
    train.add_parsers(sub)
    pretrain.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``lagllama`` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    from lagllama.data.frequency import ignore_gluonts_frequency_warnings

    ignore_gluonts_frequency_warnings()
    try:
        args.func(args)
    except (ValueError, FileNotFoundError) as err:
        message = " ".join(str(err).split())
        print(f"lagllama: error: {message}", file=sys.stderr)
        return 2
    return 0


__all__ = ["build_parser", "main"]
