"""The ``lagllama`` command: forecast, backtest, plot, list datasets, zero-shot, train, fine-tune.

Heavy imports (GluonTS, statsforecast, torch, the estimators) happen inside the
subcommands so ``lagllama --help`` stays fast. Bad input (ValueError, FileNotFoundError)
exits with status 2 and a one-line ``lagllama: error: ...`` on stderr.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gluonts.model import Predictor

    from lagllama.evaluation import BacktestReport, BacktestTask

BASELINE_NAMES = ("seasonal-naive", "auto-ets", "auto-theta", "auto-arima")
LAG_LLAMA = "lag-llama"


def _names(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


# ---------------------------------------------------------------- arguments
def _data_arguments(parser: argparse.ArgumentParser) -> None:
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
    _column_arguments(group)


def _column_arguments(group: argparse._ArgumentGroup) -> None:
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


def _model_arguments(parser: argparse.ArgumentParser) -> None:
    from lagllama.nn.precision import SAMPLING_PRECISIONS

    group = parser.add_argument_group("Lag-Llama")
    group.add_argument(
        "--checkpoint",
        type=Path,
        help="a shipped model's name (e.g. lagllama-small) or a Lag-Llama checkpoint file "
        "(.ckpt); default: the package's default pretrained model. For zero-shot, an ensemble "
        "joined by + (lagllama-small+lagllama-base): each member draws its share of the paths; "
        "a member may be a baseline (lagllama-small+auto-theta): quantiles averaged with "
        "weights fitted on the last window before the forecast",
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


def _hardware_arguments(parser: argparse.ArgumentParser) -> None:
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


def _hardware(args: argparse.Namespace) -> dict[str, Any]:
    """Lightning trainer arguments from ``--accelerator/--devices/--precision``."""
    values = {"accelerator": args.accelerator or "auto"}
    if args.devices is not None:
        values["devices"] = int(args.devices) if args.devices.isdigit() else args.devices
    if args.precision is not None:
        values["precision"] = args.precision
    return values


def _training_arguments(parser: argparse.ArgumentParser, fine_tune: bool = False) -> None:
    from lagllama.fine_tuning import DEFAULTS

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
        "--min-gain",
        type=float,
        default=DEFAULTS["min_gain"],
        help="relative validation gain needed to leave the starting model "
        f"(default {DEFAULTS['min_gain']:g})",
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
        help="choose weights on the last training window and keep them without confirming "
        "them on a later window (default: choose on the window before, confirm on the last)",
    )


def _report_arguments(parser: argparse.ArgumentParser, baselines: str | None) -> None:
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


def _column_list(text: str | None) -> list[str] | None:
    return None if text is None else [c.strip() for c in text.split(",") if c.strip()]


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
    _column_arguments(group)
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
        help="a shipped checkpoint (default: the package's default model), a checkpoint path, "
        f"or a baseline: {', '.join(BASELINE_NAMES)}",
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


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with all subcommands."""
    parser = argparse.ArgumentParser(
        prog="lagllama",
        description="Probabilistic forecasting with Lag-Llama on GluonTS: evaluate, plot, train.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

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

    p = sub.add_parser(
        "backtest",
        help="score models and baselines on datasets (WQL, MASE, MSIS, coverage, ...)",
        description="Backtest models on the last windows of each series and write a report. "
        "Example: lagllama backtest --dataset m1_monthly --models seasonal-naive,auto-ets",
    )
    _data_arguments(p)
    p.add_argument(
        "--models",
        default="seasonal-naive,auto-ets",
        help=f"comma-separated models from {', '.join((*BASELINE_NAMES, LAG_LLAMA))} "
        "(lag-llama needs --checkpoint; seasonal-naive is always added)",
    )
    _model_arguments(p)
    _report_arguments(p, baselines=None)
    p.set_defaults(func=cmd_backtest)

    p = sub.add_parser(
        "plot",
        help="quantile fan charts of one model's forecasts",
        description="Forecast the last window of the first series and draw fan charts "
        "(50/80/95%% bands, median, history, actuals).",
    )
    _data_arguments(p)
    p.add_argument("--model", default="auto-ets", help="model to plot (default auto-ets)")
    _model_arguments(p)
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
    _data_arguments(p)
    _model_arguments(p)
    _report_arguments(p, baselines="seasonal-naive")
    p.set_defaults(func=cmd_zero_shot)

    for name, what in (("train", "from scratch"), ("fine-tune", "from a checkpoint")):
        p = sub.add_parser(
            name,
            help=f"train Lag-Llama {what} on each dataset's training part, then backtest it",
            description=f"Train Lag-Llama {what} on each series without its test windows, "
            "save the predictor under OUTPUT/models/DATASET and score it against baselines.",
        )
        _data_arguments(p)
        _model_arguments(p)
        _training_arguments(p, fine_tune=name == "fine-tune")
        _hardware_arguments(p)
        _report_arguments(p, baselines="seasonal-naive")
        p.set_defaults(func=cmd_train, fine_tune=name == "fine-tune")

    p = sub.add_parser(
        "pretrain",
        help="pretrain one frequency-independent Lag-Llama on a corpus (resumable, chunked)",
        description="Pretrain Lag-Llama from a JSON/TOML config (model size, data mix, steps, "
        "batch size, lr, devices/num_nodes/strategy, output dir). Each run stops after "
        "--max-minutes and checkpoints; re-running the same command resumes from "
        "OUTPUT/checkpoints/last.ckpt. Example: lagllama pretrain --config configs/pretrain_small.json",
    )
    p.add_argument("--config", type=Path, required=True, help="pretraining config (.json/.toml)")
    p.add_argument(
        "--max-minutes",
        type=float,
        help="wall-clock minutes for this chunk (default: the config's chunk_minutes, 45)",
    )
    p.add_argument(
        "--stop-at-step",
        type=int,
        metavar="N",
        help="end this chunk at optimiser step N (the lr schedule still follows `steps`)",
    )
    p.add_argument(
        "--export",
        type=Path,
        metavar="DIR",
        help="after training, export the last checkpoint (safetensors + config JSON) into DIR",
    )
    _hardware_arguments(p)
    p.set_defaults(func=cmd_pretrain)
    return parser


# ---------------------------------------------------------------- helpers
def load_tasks(args: argparse.Namespace) -> list[BacktestTask]:
    """Backtest tasks for every ``--dataset`` name and ``--file`` path."""
    from lagllama.data import read_file
    from lagllama.evaluation import dataset_task, repository_task

    names = [name for text in args.dataset for name in _names(text)]
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
        dataset = read_file(path, **columns)
        tasks.append(dataset_task(path.stem, dataset, args.prediction_length, args.windows))
    return tasks


def _checkpoints(args: argparse.Namespace) -> list[Path | str]:
    """``--checkpoint``: one model, or the members of an ensemble ``a+b`` (zero-shot only),
    where a member may be a statistical baseline by name (``lagllama-v2-small+auto-theta``)."""
    from lagllama.ensemble import ENSEMBLE_SEPARATOR, split_members
    from lagllama.evaluation import BASELINES

    spec = args.checkpoint
    if spec is None or ENSEMBLE_SEPARATOR not in str(spec) or Path(spec).is_file():
        return [_checkpoint(spec)]  # a file whose name holds a + is one checkpoint
    members = split_members(str(spec))
    if all(m in BASELINES for m in members):
        raise ValueError(f"the ensemble {spec} needs at least one Lag-Llama member")
    return [m if m in BASELINES else _checkpoint(Path(m)) for m in members]


def _checkpoint(path: Path | None) -> Path:
    """A shipped model's name or a checkpoint file, else (``None``) the packaged default."""
    from lagllama.pretrained import DEFAULT_NAME, available_models, checkpoint_path

    if path is None or str(path) in available_models():
        try:
            return Path(checkpoint_path(DEFAULT_NAME if path is None else str(path)))
        except (ImportError, FileNotFoundError) as err:
            raise ValueError(f"no default checkpoint available ({err}); pass --checkpoint") from err
    if not Path(path).exists():
        shipped = ", ".join(available_models()) or "none"
        raise FileNotFoundError(f"checkpoint not found: {path} (shipped models: {shipped})")
    return Path(path)


def _estimator_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "batch_size": args.batch_size,
        "num_parallel_samples": args.num_samples,
        "sampling_precision": getattr(args, "sampling_precision", "32"),
        "trainer_kwargs": {
            "max_epochs": getattr(args, "max_epochs", 1),
            "logger": False,
            **(_hardware(args) if hasattr(args, "accelerator") else {"accelerator": "cpu"}),
        },
    }
    if args.context_length is not None:
        kwargs["context_length"] = args.context_length
    if getattr(args, "num_batches_per_epoch", None) is not None:
        kwargs["num_batches_per_epoch"] = args.num_batches_per_epoch
    if getattr(args, "lr", None) is not None:
        kwargs["lr"] = args.lr
    return kwargs


def lag_llama_factory(
    args: argparse.Namespace, train: bool = False, from_checkpoint: bool = True
) -> Callable[[BacktestTask], Predictor]:
    """Build a Lag-Llama predictor per task: zero-shot, fine-tuned or trained from scratch.

    Trained predictors are saved under ``OUTPUT/models/<dataset>`` when ``--output`` is set;
    Lightning checkpoints stay under ``OUTPUT/training/<dataset>`` (``lagllama_runs/`` without it).
    """
    checkpoints = _checkpoints(args) if from_checkpoint else [None]
    if train and len(checkpoints) > 1:
        raise ValueError(
            f"fine-tuning starts from one checkpoint, not the ensemble {args.checkpoint}"
        )
    checkpoint = checkpoints[0]

    def factory(task: BacktestTask) -> Predictor:
        from lagllama.estimators import LagLlamaEstimator

        kwargs = {"prediction_length": task.prediction_length, "freq": task.freq}
        kwargs.update(_estimator_kwargs(args))
        if len(checkpoints) > 1:
            from lagllama.ensemble import member_predictors
            from lagllama.evaluation import FORECAST_QUANTILES, baseline

            def member(path: str, n: int) -> Predictor:
                estimator = LagLlamaEstimator.from_checkpoint(
                    path, **{**kwargs, "num_parallel_samples": n}
                )
                return estimator.create_zero_shot_predictor()

            return member_predictors(
                [str(c) for c in checkpoints],
                member,
                lambda name: baseline(name)(task),
                args.num_samples,
                FORECAST_QUANTILES,
            )
        if checkpoint is not None:
            estimator = LagLlamaEstimator.from_checkpoint(checkpoint, **kwargs)
        else:
            estimator = LagLlamaEstimator(**kwargs)
        if not train:
            return estimator.create_zero_shot_predictor()
        # Lightning's checkpoints and logs are kept: they are what `fine-tune` starts from.
        root = (args.output or Path("lagllama_runs")) / "training" / task.name
        if checkpoint is not None:
            predictor = _fine_tune(args, task, checkpoint, root)
        else:
            estimator.trainer_kwargs["default_root_dir"] = str(root)
            predictor = estimator.train(task.train_data())
        print(f"checkpoints of {task.name} kept under {root}", file=sys.stderr)
        if args.output is not None:
            folder = args.output / "models" / task.name
            folder.mkdir(parents=True, exist_ok=True)
            predictor.serialize(folder)
        return predictor

    return factory


def _fine_tune(args: argparse.Namespace, task: BacktestTask, checkpoint: Path, root: Path):
    """The fine-tuning recipe of :mod:`lagllama.fine_tuning` on one task's training part."""
    from lagllama.fine_tuning import DEFAULTS, fine_tune

    kwargs = _estimator_kwargs(args)
    trainer = {**kwargs.pop("trainer_kwargs"), "default_root_dir": str(root)}
    result = fine_tune(
        task.train_data(),
        task.prediction_length,
        checkpoint=checkpoint,
        freq=task.freq,
        lr=kwargs.pop("lr", DEFAULTS["lr"]),
        warmup_steps=args.warmup_steps,
        ema_decay=args.ema_decay or None,
        max_epochs=trainer.pop("max_epochs"),
        max_steps=args.max_steps,
        patience=args.patience,
        freeze_layers=args.freeze_layers,
        validation=args.validation,
        min_gain=args.min_gain,
        validation_samples=args.validation_samples,
        validation_series=args.validation_series,
        confirm=args.confirm,
        max_minutes=args.max_minutes,
        trainer_kwargs=trainer,
        **kwargs,
    )
    r = result.report
    if r.confirm_best is not None and r.kept_start:
        verdict = (
            f"the chosen weights failed confirmation on the last window ({r.confirm_best:.4f} "
            f"vs the start's {r.confirm_start:.4f}): kept the starting model"
        )
    elif r.kept_start:
        verdict = "no epoch beat the starting model: kept the starting model"
    else:
        verdict = f"best validation {r.metric} {r.best_val_loss:.4f} at step {r.best_step}"
        if r.confirm_best is not None:
            verdict += f", confirmed {r.confirm_best:.4f} vs {r.confirm_start:.4f}"
    print(
        f"fine-tuned {task.name}: validation {r.metric} {r.start_val_loss:.4f} at the start, "
        f"{verdict}; {r.steps} steps in {r.wall_s:.0f} s",
        file=sys.stderr,
    )
    return result.predictor


def _finish(report: BacktestReport, output: Path | None) -> None:
    columns = ["dataset", "model", "WQL", "MASE", "fallbacks", "imputed", "runtime_s"]
    print(report.table()[columns].to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    if output is not None:
        paths = report.save(output)
        print("report written to " + ", ".join(str(p) for p in paths.values()))


def _run_backtest(
    args: argparse.Namespace, models: dict[str, Callable[[BacktestTask], Predictor]]
) -> None:
    from lagllama.evaluation import backtest

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
    baselines = _names(args.baselines)
    unknown = sorted(set(baselines) - set(BASELINE_NAMES))
    if unknown:
        raise ValueError(f"unknown model(s) {unknown}; choose from {', '.join(BASELINE_NAMES)}")
    report = backtest(tasks, models, baselines=baselines, impute_missing=not args.no_impute)
    report.config["command"] = " ".join(["lagllama", *sys.argv[1:]])
    _finish(report, args.output)


# ---------------------------------------------------------------- subcommands
def _quantiles(text: str) -> list[float]:
    try:
        return [float(q) for q in _names(text)]
    except ValueError:
        raise ValueError(
            f"--quantiles must be numbers in (0, 1), e.g. 0.1,0.5,0.9; got {text!r}"
        ) from None


def _first_entries(chunks: Iterable, n: int, store: list) -> Iterator:
    """Pass chunks through, keeping (id, entry) of the first ``n`` series in ``store``."""
    for chunk in chunks:
        room = n - len(store)
        store += list(zip(chunk.ids[:room], chunk.entries[:room]))
        yield chunk


def _plot_forecasts(args: argparse.Namespace, series: list, prediction_length: int) -> None:
    """Fan charts of ``series`` (same model and seeds as the table) into ``--plot``."""
    import re

    from lagllama.forecasting import Forecaster
    from lagllama.plotting import plot_forecast, save_figure

    entries = [entry for _, entry in series]
    forecaster = Forecaster(
        args.model,
        prediction_length,
        entries[0]["start"].freqstr,
        _quantiles(args.quantiles),
        args.num_samples,
        args.seed,
        args.batch_size,
    )
    for i, ((item_id, entry), forecast) in enumerate(zip(series, forecaster.predict(entries))):
        ax, _ = plot_forecast(forecast, entry, title=f"{args.model}: {item_id}")
        name = re.sub(r"[^\w.-]+", "_", str(item_id))
        save_figure(ax.figure, args.plot / f"{i + 1:02d}_{name}.png")
    print(f"{len(series)} fan charts written to {args.plot}")


def cmd_forecast(args: argparse.Namespace) -> None:
    """``lagllama forecast``: future forecasts of a file or dataset into a tidy table."""
    from lagllama.data import load_dataset
    from lagllama.forecasting import (
        CHUNK_ROWS,
        dataset_chunks,
        file_chunks,
        forecast_chunks,
        summary_line,
    )
    from lagllama.pretrained import DEFAULT_NAME

    if (args.file is None) == (args.dataset is None):
        raise ValueError("give one --file PATH or --dataset NAME")
    args.model = args.model or DEFAULT_NAME
    h = args.prediction_length
    if args.file is not None:
        if h is None:
            raise ValueError(f"--prediction-length is required for --file {args.file}")
        chunks = file_chunks(
            args.file,
            h,
            args.freq,
            args.timestamp_column,
            args.target_column,
            args.item_id_column,
            args.chunk_rows or CHUNK_ROWS,
            args.future_file,
            _column_list(args.covariates),
            _column_list(args.past_covariates),
        )
    else:
        if args.future_file or args.covariates or args.past_covariates:
            raise ValueError("covariates are read from --file (and --future-file), not --dataset")
        data = load_dataset(args.dataset, args.data_dir, download=not args.no_download)
        h = h or data.metadata.prediction_length
        chunks = dataset_chunks(data.test, h)
    if h < 1:
        raise ValueError(f"--prediction-length must be >= 1, got {h}")
    first: list = []
    if args.plot is not None:
        chunks = _first_entries(chunks, args.num_plots, first)
    options = {
        "model": args.model,
        "quantiles": _quantiles(args.quantiles),
        "num_samples": args.num_samples,
        "seed": args.seed,
        "batch_size": args.batch_size,
        "progress": not args.quiet,
    }
    if args.engine == "ray":
        from lagllama.forecasting_ray import forecast_ray

        run = forecast_ray(
            chunks, args.output, h, address=args.ray_address, workers=args.ray_workers, **options
        )
    else:
        run = forecast_chunks(chunks, args.output, h, **options)
    rate = run.counts["series"] / max(run.seconds, 1e-9)
    print(f"wrote {run.rows:,} rows to {run.output} in {run.seconds:.1f} s ({rate:.1f} series/s)")
    print(summary_line(run.counts))
    if first:
        _plot_forecasts(args, first, h)


def cmd_backtest(args: argparse.Namespace) -> None:
    """``lagllama backtest``: baselines (and optionally zero-shot Lag-Llama) on datasets."""
    names = _names(args.models)
    unknown = sorted(set(names) - {*BASELINE_NAMES, LAG_LLAMA})
    if unknown:
        raise ValueError(
            f"unknown model(s) {unknown}; choose from {', '.join((*BASELINE_NAMES, LAG_LLAMA))}"
        )
    models = {LAG_LLAMA: lag_llama_factory(args)} if LAG_LLAMA in names else {}
    args.baselines = ",".join(n for n in names if n != LAG_LLAMA)
    _run_backtest(args, models)


def cmd_zero_shot(args: argparse.Namespace) -> None:
    """``lagllama zero-shot``: the pretrained checkpoint against baselines, no training."""
    _run_backtest(args, {LAG_LLAMA: lag_llama_factory(args)})


def cmd_train(args: argparse.Namespace) -> None:
    """``lagllama train`` / ``fine-tune``: train per dataset, save, and backtest."""
    name = f"{LAG_LLAMA}-fine-tuned" if args.fine_tune else f"{LAG_LLAMA}-trained"
    _run_backtest(args, {name: lag_llama_factory(args, train=True, from_checkpoint=args.fine_tune)})


def cmd_pretrain(args: argparse.Namespace) -> None:
    """``lagllama pretrain``: one resumable chunk of pretraining (optionally export it)."""
    from lagllama.pretraining.config import PretrainConfig
    from lagllama.pretraining.train import run_pretraining

    config = PretrainConfig.load(args.config)
    for key in ("accelerator", "devices", "precision"):
        if getattr(args, key) is not None:
            value = getattr(args, key)
            setattr(config, key, int(value) if key == "devices" and value.isdigit() else value)
    summary = run_pretraining(config, max_minutes=args.max_minutes, stop_at_step=args.stop_at_step)
    if args.export is not None:
        from lagllama.pretrained import export_checkpoint

        files = export_checkpoint(summary["checkpoint"], args.export, name=config.name)
        print("exported " + ", ".join(str(f) for f in files))


def cmd_plot(args: argparse.Namespace) -> None:
    """``lagllama plot``: fan charts of one model on the first series of the first dataset."""
    from lagllama.evaluation import baseline
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
    from lagllama.data import is_available, known_datasets, resolve_data_dir

    folder = resolve_data_dir(args.data_dir)
    print(f"data folder: {folder}")
    for name in known_datasets():
        available = is_available(name, folder)
        if available or not args.available:
            print(f"{name:40s} {'available' if available else 'missing'}")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``lagllama`` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    from lagllama.frequency import ignore_gluonts_frequency_warnings

    ignore_gluonts_frequency_warnings()
    try:
        args.func(args)
    except (ValueError, FileNotFoundError) as err:
        message = " ".join(str(err).split())
        print(f"lagllama: error: {message}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
