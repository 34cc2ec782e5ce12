"""Run length of a Lightning fit over GluonTS's unsized batch streams, for lr schedules."""

from __future__ import annotations

import math

import lightning.pytorch as pl


def planned_steps(trainer: pl.Trainer, num_batches_per_epoch: int | None) -> float:
    """Optimiser steps of the fit: ``max_steps`` or ``max_epochs * num_batches_per_epoch``.

    The shorter of the two; ``inf`` when neither is finite. Lightning's own
    ``estimated_stepping_batches`` is infinite for GluonTS training streams (they have no
    length), which would silently keep a decaying schedule at its peak for the whole run.
    """
    if num_batches_per_epoch is None:
        return float(trainer.estimated_stepping_batches)
    total = trainer.max_steps if trainer.max_steps > 0 else math.inf
    if trainer.max_epochs is not None and trainer.max_epochs > 0:
        epoch_steps = trainer.max_epochs * num_batches_per_epoch
        total = min(total, epoch_steps // trainer.accumulate_grad_batches)
    return total


def warmup_cosine(step: int, warmup: int, total: float, floor: float = 0.1) -> float:
    """Learning-rate factor: linear warm-up over ``warmup`` steps, then cosine decay from 1 to
    ``floor`` at step ``total`` (constant 1 after warm-up when ``total`` is unknown)."""
    if warmup and step < warmup:
        return (step + 1) / warmup
    if not math.isfinite(total) or total <= warmup:
        return 1.0
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))
