"""Lag-Llama predictors for backtests, built from command-line options.

``lagllama backtest``, ``zero-shot``, ``train`` and ``fine-tune`` (and scripts that mimic
them with an ``argparse.Namespace``) get one predictor per task from
:func:`lag_llama_factory`: zero-shot from a checkpoint or an ensemble of checkpoints and
baselines, trained from scratch, or fine-tuned by the recipe of :mod:`lagllama.training.fine_tuning`.
It lives outside :mod:`lagllama.cli` so the command line only parses and prints. Heavy
imports (GluonTS, torch, the estimators) happen inside the functions.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gluonts.model import Predictor

    from lagllama.data.tasks import BacktestTask


def _hardware(args: argparse.Namespace) -> dict[str, Any]:
    """Lightning trainer arguments from ``--accelerator/--devices/--precision``."""
    values = {"accelerator": args.accelerator or "auto"}
    if args.devices is not None:
        values["devices"] = int(args.devices) if args.devices.isdigit() else args.devices
    if args.precision is not None:
        values["precision"] = args.precision
    return values


def _estimator_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """``LagLlamaEstimator`` arguments from the options (the trainer's: epochs, no logger,
    hardware; CPU for commands without hardware options)."""
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
    """Build the predictor of ``--checkpoint`` (a model specification, default ``lagllama``)
    per task: zero-shot, fine-tuned (every Lag-Llama member of the specification tuned by
    the recipe of :mod:`lagllama.training.fine_tuning`; a hybrid's weights refitted on the
    task's inputs) or, without ``from_checkpoint``, trained from scratch.

    Trained predictors are saved under ``OUTPUT/models/<dataset>`` when ``--output`` is set;
    Lightning checkpoints stay under ``OUTPUT/training/<dataset>`` (``lagllama_runs/`` without it).
    """
    from lagllama.forecasting.specs import parse_model

    checkpoint = getattr(args, "checkpoint", None)
    spec = parse_model(None if checkpoint is None else str(checkpoint)) if from_checkpoint else None

    def factory(task: BacktestTask) -> Predictor:
        from lagllama.forecasting.options import ForecastOptions
        from lagllama.forecasting.specs import build_predictor

        options = ForecastOptions(
            task.prediction_length,
            spec.name if spec else None,
            num_samples=args.num_samples,
            seed=getattr(args, "seed", 0),
            batch_size=args.batch_size,
            sampling_precision=getattr(args, "sampling_precision", "32"),
            context_length=args.context_length,
        )
        if spec is not None and not train:
            return build_predictor(spec, options, task.season_length, task.freq)
        root = (args.output or Path("lagllama_runs")) / "training" / task.name
        # Lightning's checkpoints and logs are kept: they are what `fine-tune` starts from.
        if spec is None:
            from lagllama.estimators.lag_llama import LagLlamaEstimator

            kwargs = {"prediction_length": task.prediction_length, "freq": task.freq}
            kwargs.update(_estimator_kwargs(args))
            if getattr(args, "trained_covariates", False):
                kwargs.update(covariate_counts(task))
            estimator = LagLlamaEstimator(**kwargs)
            estimator.trainer_kwargs["default_root_dir"] = str(root)
            predictor = estimator.train(task.train_data())
        else:
            from lagllama.forecasting.specs import build_tuned

            single = len(spec.lag_llama) == 1
            tuned = {
                m.name: _fine_tune(
                    args, task, Path(m.checkpoint), root if single else root / Path(m.name).stem
                )
                for m in spec.lag_llama
            }
            predictor = build_tuned(spec, options, task.season_length, task.freq, tuned)
        print(f"checkpoints of {task.name} kept under {root}", file=sys.stderr)
        if args.output is not None and (spec is None or len(spec.members) == 1):
            folder = args.output / "models" / task.name
            folder.mkdir(parents=True, exist_ok=True)
            predictor.serialize(folder)
        return predictor

    return factory


def covariate_counts(task: BacktestTask) -> dict[str, int]:
    """``num_feat_dynamic_real`` / ``num_past_feat_dynamic_real`` of a task's series, for a
    model that learns them (``--trained-covariates``); an error when it has none."""
    from lagllama.forecasting.covariates import KNOWN, PAST

    entry = next(iter(task.dataset))
    counts = {
        "num_feat_dynamic_real": len(entry.get(KNOWN, [])),
        "num_past_feat_dynamic_real": len(entry.get(PAST, [])),
    }
    if not any(counts.values()):
        raise ValueError(
            f"--trained-covariates: {task.name} has no covariates; name them with --covariates "
            "or --past-covariates"
        )
    return counts


def _fine_tune(args: argparse.Namespace, task: BacktestTask, checkpoint: Path, root: Path):
    """The fine-tuning recipe of :mod:`lagllama.training.fine_tuning` on one task's training part."""
    from lagllama.training.fine_tuning import fine_tune
    from lagllama.training.fine_tuning_defaults import DEFAULTS

    kwargs = _estimator_kwargs(args)
    if getattr(args, "trained_covariates", False):
        kwargs.update(covariate_counts(task))
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
        validation_windows=args.validation_windows,
        noise_factor=args.noise_factor,
        **kwargs,
    )
    r = result.report
    print(
        f"fine-tuned {task.name}: validation {r.metric} {r.start_val_loss:.4f} at the start "
        f"(mean of {r.windows} windows), {r.summary()}; {r.steps} steps in {r.wall_s:.0f} s",
        file=sys.stderr,
    )
    return result.predictor
