"""Lightning callbacks for training on shared or small machines."""

from __future__ import annotations

import time
from collections.abc import Callable

import lightning.pytorch as pl


class CPUTimeBudget(pl.Callback):
    """Stops training once the process has used ``seconds`` of CPU time since fit start.

    CPU time (``time.process_time``, all threads of the process) rather than wall time, so
    other jobs on a shared machine do not change how much training a model gets; this is
    how the benchmarks give models equal budgets. ``reserve()`` (seconds, asked at every
    check) is kept back for work that follows training, e.g. a final scoring.
    """

    def __init__(self, seconds: float, reserve: Callable[[], float] | None = None) -> None:
        if seconds <= 0:
            raise ValueError(f"the CPU-time budget must be positive, got {seconds}")
        self.seconds = seconds
        self.reserve = reserve
        self.start = 0.0

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.start = time.process_time()

    def on_train_batch_end(self, trainer: pl.Trainer, *args: object) -> None:
        reserve = self.reserve() if self.reserve is not None else 0.0
        if time.process_time() - self.start >= self.seconds - reserve:
            trainer.should_stop = True
