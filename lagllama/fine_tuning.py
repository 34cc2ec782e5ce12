"""Fine-tuning a pretrained Lag-Llama on a user's dataset, with a recipe that cannot make the
model much worse than where it started.

The last ``prediction_length`` points of every training series are carved off as a
validation window (the training windows never reach them, and they lie before any test
window, which ``task.train_data()`` already excludes). The starting model is scored on that
window first; training then runs from the pretrained weights with a small learning rate,
warm-up and (optionally) an exponential moving average of the weights, is scored after every
epoch, stops early when the score stops improving, and returns the best weights seen -- the
starting weights when nothing beat them. ``max_minutes`` (wall) and ``max_cpu_minutes``
bound the whole run, ``max_steps`` its length.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from gluonts.dataset import Dataset
from gluonts.dataset.common import ListDataset
from gluonts.torch.model.predictor import PyTorchPredictor
from lightning.pytorch.callbacks import EarlyStopping

from lagllama.callbacks import CPUTimeBudget


def carve_validation(
    dataset: Dataset, prediction_length: int, min_train_points: int = 1
) -> tuple[ListDataset, ListDataset]:
    """``(train, validation)``: every series without its last ``prediction_length`` points,
    and the series whose validation window holds an observed value with at least
    ``min_train_points`` observed points before it (the others only train)."""
    train, validation = [], []
    freq = None
    for entry in dataset:
        target = np.asarray(entry["target"], dtype=np.float32)
        freq = freq or entry["start"].freqstr
        head = target[:-prediction_length] if len(target) > prediction_length else target[:0]
        if np.isfinite(head).sum() >= min_train_points:
            train.append({**entry, "target": head})
            if np.isfinite(target[-prediction_length:]).any():
                validation.append({**entry, "target": target})
        elif np.isfinite(target).sum() >= 1:
            train.append({**entry, "target": target})  # too short to validate on
    if not validation:
        raise ValueError(
            f"no series is long enough to carve a validation window of {prediction_length} "
            f"points (with {min_train_points} observed points before it) for fine-tuning"
        )
    return ListDataset(train, freq=freq), ListDataset(validation, freq=freq)


class BestWeights(pl.Callback):
    """Scores the starting weights on the validation data, then keeps a copy of the weights
    of every validation that beats the best so far; ``restore`` loads the best copy.

    The weights are copied at the end of the validation epoch, when they are the weights
    just validated (with EMA, the averaged ones, swapped in until the EMA callback's own
    epoch-end hook: so this callback must come before it in the list); the score is read at
    validation end, once Lightning has reduced the epoch's ``val_loss``.
    """

    def __init__(self) -> None:
        self.start_loss = math.inf
        self.best_loss = math.inf
        self.best_step = 0
        self.best_state: dict[str, torch.Tensor] | None = None
        self.history: list[tuple[int, float]] = []
        self._validated: dict[str, torch.Tensor] | None = None

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        loaders = trainer.val_dataloaders
        if loaders is None:
            raise ValueError("BestWeights needs validation data")
        was_training = pl_module.training
        pl_module.eval()
        total, count = 0.0, 0
        with torch.no_grad():
            for batch in loaders:
                batch = {k: v.to(pl_module.device) for k, v in batch.items()}
                loss = pl_module._loss(batch, train=False)
                n = len(batch["past_target"])
                total, count = total + float(loss) * n, count + n
        pl_module.train(was_training)
        self.start_loss = self.best_loss = total / max(count, 1)
        self.best_state = _copy_state(pl_module)
        self.history.append((0, self.start_loss))

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.sanity_checking:
            self._validated = _copy_state(pl_module)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or self._validated is None:
            return
        loss = float(trainer.callback_metrics["val_loss"])
        self.history.append((trainer.global_step, loss))
        if loss < self.best_loss:
            self.best_loss, self.best_step = loss, trainer.global_step
            self.best_state = self._validated
        self._validated = None

    def restore(self, module: torch.nn.Module) -> None:
        if self.best_state is not None:
            module.load_state_dict(self.best_state)


def _copy_state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


class FreezeLowerLayers(pl.Callback):
    """Freezes the input projection and the first ``n`` decoder blocks (no gradient, so
    AdamW leaves them, and their weight decay, untouched)."""

    def __init__(self, n: int) -> None:
        self.n = n

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        decoder = pl_module.model.decoder
        if self.n > len(decoder.blocks):
            raise ValueError(f"freeze_layers={self.n} but the model has {len(decoder.blocks)}")
        if self.n > 0:
            for module in [decoder.embed, *decoder.blocks[: self.n]]:
                module.requires_grad_(False)


@dataclass
class FineTuneReport:
    """What a fine-tuning run did; ``kept_start`` says the starting model was returned."""

    start_val_loss: float
    best_val_loss: float
    best_step: int
    steps: int
    kept_start: bool
    wall_s: float
    cpu_s: float
    history: list[tuple[int, float]]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class FineTuneResult:
    predictor: PyTorchPredictor
    report: FineTuneReport


#: Recipe defaults (see benchmarks/fine_tune.py for the measurements behind them).
DEFAULTS = {
    "lr": 1e-4,
    "warmup_steps": 20,
    "ema_decay": 0.99,
    "num_batches_per_epoch": 20,
    "max_epochs": 25,
    "patience": 4,
    "freeze_layers": 0,
}


def fine_tune(
    data: Dataset,
    prediction_length: int,
    checkpoint: str | Path | None = None,
    freq: str | None = None,
    lr: float = DEFAULTS["lr"],
    warmup_steps: int = DEFAULTS["warmup_steps"],
    ema_decay: float | None = DEFAULTS["ema_decay"],
    num_batches_per_epoch: int = DEFAULTS["num_batches_per_epoch"],
    max_epochs: int = DEFAULTS["max_epochs"],
    max_steps: int | None = None,
    patience: int = DEFAULTS["patience"],
    freeze_layers: int = DEFAULTS["freeze_layers"],
    max_minutes: float | None = None,
    max_cpu_minutes: float | None = None,
    trainer_kwargs: dict[str, Any] | None = None,
    from_scratch: bool = False,
    **estimator_kwargs: Any,
) -> FineTuneResult:
    """Fine-tune a checkpoint (a shipped model's name or a ``.ckpt`` path; default: the
    shipped default model) on ``data`` and return the predictor with a report.

    ``estimator_kwargs`` go to :meth:`LagLlamaEstimator.from_checkpoint` (``context_length``,
    ``batch_size``, ``num_parallel_samples``, ...); ``trainer_kwargs`` to Lightning
    (``accelerator``, ``devices``, ``precision``, ...). ``from_scratch`` trains the same
    architecture with the same recipe from random weights (the baseline fine-tuning must beat).
    """
    from lagllama.estimators import LagLlamaEstimator
    from lagllama.pretrained import DEFAULT_NAME, available_models, checkpoint_path

    if checkpoint is None or str(checkpoint) in available_models():
        checkpoint = checkpoint_path(DEFAULT_NAME if checkpoint is None else str(checkpoint))
    if ema_decay is not None and not 0.0 < ema_decay < 1.0:
        raise ValueError(f"ema_decay must be in (0, 1), got {ema_decay}")
    train, validation = carve_validation(data, prediction_length)
    best = BestWeights()
    callbacks: list[pl.Callback] = [best, FreezeLowerLayers(freeze_layers)]
    if patience > 0:
        callbacks.append(EarlyStopping(monitor="val_loss", patience=patience, mode="min"))
    if max_cpu_minutes is not None:
        callbacks.append(CPUTimeBudget(max_cpu_minutes * 60.0))
    trainer = {
        "max_epochs": max_epochs,
        "logger": False,
        "num_sanity_val_steps": 0,
        **(trainer_kwargs or {}),
    }
    trainer["callbacks"] = callbacks + list(trainer.get("callbacks", []))
    if max_steps is not None:
        trainer["max_steps"] = max_steps
    if max_minutes is not None:
        trainer["max_time"] = {"seconds": max_minutes * 60.0}
    estimator = LagLlamaEstimator.from_checkpoint(
        checkpoint,
        prediction_length,
        freq=freq,
        lr=lr,
        warmup_steps=warmup_steps,
        ema_decay=ema_decay,
        num_batches_per_epoch=num_batches_per_epoch,
        trainer_kwargs=trainer,
        **estimator_kwargs,
    )
    if from_scratch:
        estimator.init_checkpoint = None
    wall0, cpu0 = time.perf_counter(), time.process_time()
    out = estimator.train_model(train, validation_data=validation)
    best.restore(out.trained_net)
    report = FineTuneReport(
        start_val_loss=best.start_loss,
        best_val_loss=best.best_loss,
        best_step=best.best_step,
        steps=int(out.trainer.global_step),
        kept_start=best.best_step == 0,
        wall_s=time.perf_counter() - wall0,
        cpu_s=time.process_time() - cpu0,
        history=copy.deepcopy(best.history),
    )
    return FineTuneResult(out.predictor, report)
