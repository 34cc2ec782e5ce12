"""Lightning wrapper of :class:`TimeLLMModel` (GluonTS style: ``model_kwargs`` dict)."""

from __future__ import annotations

import math
from typing import Any

import lightning.pytorch as pl
import torch
from gluonts.core.component import validated
from gluonts.itertools import select

from lagllama.nn.precision import warn_slow_bf16_training
from lagllama.training.schedules import planned_steps

from .module import TimeLLMModel

LR_SCHEDULES = ("constant", "onecycle")


class TimeLLMLightningModule(pl.LightningModule):
    """Trains the adapter of a ``TimeLLMModel``; the backbone is frozen and never saved.

    Parameters
    ----------
    model_kwargs
        Keyword arguments of ``TimeLLMModel`` (see ``TimeLLMConfig``).
    lr
        Learning rate of Adam (the peak rate of the one-cycle schedule).
    weight_decay
        Weight decay of Adam.
    lr_schedule
        ``"onecycle"`` (as in the official code: warm-up over ``pct_start`` of the run,
        then cosine annealing to ``lr / 1e4``, stepped per batch over the run length:
        the trainer's ``max_steps``, or ``max_epochs * num_batches_per_epoch``, whichever
        is shorter) or ``"constant"``. Without a finite run length the one-cycle schedule
        falls back to a constant rate.
    pct_start
        Fraction of the run spent warming up (one-cycle schedule).
    num_batches_per_epoch
        Batches per epoch of the (unsized) GluonTS training stream, to size the schedule.
    """

    @validated()
    def __init__(
        self,
        model_kwargs: dict,
        lr: float = 1e-3,
        weight_decay: float = 1e-8,
        lr_schedule: str = "onecycle",
        pct_start: float = 0.2,
        num_batches_per_epoch: int | None = None,
    ) -> None:
        super().__init__()
        if lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}, got {lr_schedule!r}")
        self.model = TimeLLMModel(**model_kwargs)
        self.lr = lr
        self.weight_decay = weight_decay
        self.lr_schedule = lr_schedule
        self.pct_start = pct_start
        self.num_batches_per_epoch = num_batches_per_epoch
        self.inputs = self.model.describe_inputs()

    def forward(self, *args, **kwargs):
        return self.model.forward(*args, **kwargs)

    def on_fit_start(self) -> None:
        """Warn before a slow run: bf16 training on a CPU without bf16 instructions."""
        warn_slow_bf16_training(self.trainer.precision, self.device)

    def _loss(self, batch) -> torch.Tensor:
        return self.model.loss(
            **select(self.inputs, batch),
            future_target=batch["future_target"],
            future_observed_values=batch["future_observed_values"],
        ).mean()

    def training_step(self, batch, batch_idx: int):  # type: ignore[override]
        loss = self._loss(batch)
        self.log("train_loss", loss, on_epoch=True, on_step=False, prog_bar=True)
        return loss

    def validation_step(self, batch, batch_idx: int):  # type: ignore[override]
        loss = self._loss(batch)
        self.log("val_loss", loss, on_epoch=True, on_step=False, prog_bar=True)
        return loss

    def configure_optimizers(self) -> Any:
        params = [p for p in self.model.parameters() if p.requires_grad]
        optimizer = torch.optim.Adam(params, lr=self.lr, weight_decay=self.weight_decay)
        total = (
            planned_steps(self.trainer, self.num_batches_per_epoch)
            if self._trainer is not None
            else math.inf
        )
        if self.lr_schedule == "constant" or not math.isfinite(total) or total < 2:
            return optimizer
        scheduler = torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=self.lr, total_steps=int(total), pct_start=self.pct_start
        )
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }
