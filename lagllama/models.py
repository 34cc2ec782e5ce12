"""Lag-Llama predictors for backtests, built from command-line options.

``lagllama backtest``, ``zero-shot``, ``train`` and ``fine-tune`` (and scripts that mimic
them with an ``argparse.Namespace``) get one predictor per task from
:func:`lag_llama_factory`: zero-shot from a checkpoint or an ensemble of checkpoints and
baselines, trained from scratch, or fine-tuned by the recipe of :mod:`lagllama.fine_tuning`.
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

    from lagllama.tasks import BacktestTask


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
        if train and getattr(args, "trained_covariates", False):
            kwargs.update(covariate_counts(task))
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


def covariate_counts(task: BacktestTask) -> dict[str, int]:
    """``num_feat_dynamic_real`` / ``num_past_feat_dynamic_real`` of a task's series, for a
    model that learns them (``--trained-covariates``); an error when it has none."""
    from lagllama.covariates import KNOWN, PAST

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
