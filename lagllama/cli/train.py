"""``lagllama train`` and ``fine-tune``: train Lag-Llama per dataset, save it, backtest it.

The training itself is :func:`lagllama.evaluation.predictors.lag_llama_factory` (fine-tuning by the recipe
of :mod:`lagllama.training.fine_tuning`); this module holds their options.
"""

from __future__ import annotations

import argparse

from lagllama.cli.arguments import (
    LAG_LLAMA,
    data_arguments,
    hardware_arguments,
    model_arguments,
    report_arguments,
)
from lagllama.cli.evaluate import run_backtest
from lagllama.evaluation.predictors import lag_llama_factory


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Register ``train`` and ``fine-tune``."""
    for name, what in (("train", "from scratch"), ("fine-tune", "from a checkpoint")):
        p = sub.add_parser(
            name,
            help=f"train Lag-Llama {what} on each dataset's training part, then backtest it",
            description=f"Train Lag-Llama {what} on each series without its test windows, "
            "save the predictor under OUTPUT/models/DATASET and score it against baselines.",
        )
        data_arguments(p)
        model_arguments(p)
        _training_arguments(p, fine_tune=name == "fine-tune")
        hardware_arguments(p)
        report_arguments(p, baselines="seasonal-naive")
        p.set_defaults(func=cmd_train, fine_tune=name == "fine-tune")


def _training_arguments(parser: argparse.ArgumentParser, fine_tune: bool = False) -> None:
    from lagllama.training.fine_tuning_defaults import DEFAULTS

    group = parser.add_argument_group("training")
    epochs = DEFAULTS["max_epochs"] if fine_tune else 5
    batches = DEFAULTS["num_batches_per_epoch"] if fine_tune else 50
    group.add_argument("--max-epochs", type=int, default=epochs, help=f"epochs (default {epochs})")
    group.add_argument(
        "--num-batches-per-epoch",
        type=int,
        default=batches,
        help=f"batches per epoch (default {batches})",
    )
    group.add_argument("--lr", type=float, help="learning rate (default: estimator's/recipe's)")
    group.add_argument(
        "--trained-covariates",
        action="store_true",
        help="learn --covariates and --past-covariates as model inputs (feat_dynamic_real, "
        "past_feat_dynamic_real; new input weights start at zero) instead of in-context "
        "regression; the baselines still use in-context regression",
    )
    if not fine_tune:
        return
    group.add_argument("--max-minutes", type=float, help="wall-clock budget per dataset")
    group.add_argument("--max-steps", type=int, help="optimiser steps at most per dataset")
    group.add_argument(
        "--patience",
        type=int,
        default=DEFAULTS["patience"],
        help="stop after this many epochs without a better validation score (0: never)",
    )
    group.add_argument(
        "--freeze-layers",
        type=int,
        default=DEFAULTS["freeze_layers"],
        help="freeze the input projection and this many lower decoder blocks",
    )
    group.add_argument("--warmup-steps", type=int, default=DEFAULTS["warmup_steps"])
    group.add_argument(
        "--ema-decay",
        type=float,
        default=DEFAULTS["ema_decay"],
        help="decay of the weights' moving average; 0 turns it off",
    )
    group.add_argument(
        "--validation",
        choices=("forecast", "loss"),
        default=DEFAULTS["validation"],
        help="select weights by the WQL of sampled validation forecasts (default) or by "
        "the teacher-forced likelihood",
    )
    group.add_argument(
        "--validation-windows",
        type=int,
        default=DEFAULTS["validation_windows"],
        help="rolling validation windows carved off each training series, at most "
        f"(default {DEFAULTS['validation_windows']}; fewer when the series are short)",
    )
    group.add_argument(
        "--min-gain",
        type=float,
        default=DEFAULTS["min_gain"],
        help="least relative gain on the mean validation score that keeps the tuned weights "
        f"(default {DEFAULTS['min_gain']:g})",
    )
    group.add_argument(
        "--noise-factor",
        type=float,
        default=DEFAULTS["noise_factor"],
        help="keeping the tuned weights also takes a gain of this many times the score's "
        f"sampling noise (default {DEFAULTS['noise_factor']:g})",
    )
    group.add_argument("--validation-samples", type=int, default=DEFAULTS["validation_samples"])
    group.add_argument(
        "--validation-series",
        type=int,
        default=DEFAULTS["validation_series"],
        help="score at most this many series (a fixed random subset)",
    )
    group.add_argument(
        "--no-confirm",
        dest="confirm",
        action="store_false",
        help="keep the weights best on the mean validation score (by --min-gain) without "
        "the window rule (default: tuned weights need a majority of windows and a gain beyond "
        "the noise; weaker evidence averages them with the starting model)",
    )


def cmd_train(args: argparse.Namespace) -> None:
    """``lagllama train`` / ``fine-tune``: train per dataset, save, and backtest."""
    name = f"{LAG_LLAMA}-fine-tuned" if args.fine_tune else f"{LAG_LLAMA}-trained"
    run_backtest(args, {name: lag_llama_factory(args, train=True, from_checkpoint=args.fine_tune)})
