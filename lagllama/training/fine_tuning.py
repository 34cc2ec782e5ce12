"""Fine-tuning a pretrained Lag-Llama on a user's dataset, with a recipe that cannot make the
model much worse than where it started.

A validation window of ``prediction_length`` points is carved off the end of every training
series (with ``confirm``, below, the window before the last; the training windows never reach
it, and it lies before any test window, which ``task.train_data()`` already excludes). The starting model is scored on that
window first; training then runs from the pretrained weights with a small learning rate,
warm-up and (optionally) an exponential moving average of the weights, is scored after every
epoch, stops early when the score stops improving, and returns the best weights seen -- the
starting weights when nothing beat them by ``min_gain``. The score is the WQL of sampled
forecasts of the validation windows (what a user evaluates; the teacher-forced likelihood
often improves while multi-step forecasts get worse), with common random numbers so that two
weights are compared on the same draws. ``max_cpu_minutes`` bounds the whole run (it keeps
back the time of the confirmation below), ``max_minutes`` (wall) the training, and
``max_steps`` its length.

With ``confirm`` (the default) a second window is carved before that one: training sees
neither, weights are chosen on the earlier window, and the chosen weights are kept only if
they also beat the starting model on the last window (a forecast one window later, as the
test window will be). Measured on m1_monthly: weights 10% better than the start on the last
training window were 23% worse on the test window, while on the window before it no
fine-tuned weights beat the start at all (see benchmarks/fine_tune.py).
"""

from __future__ import annotations

import copy
import math
import time
from collections import ChainMap
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from gluonts.dataset import Dataset
from gluonts.dataset.common import ListDataset
from gluonts.dataset.split import split
from gluonts.ev.metrics import MeanWeightedSumQuantileLoss
from gluonts.model.evaluation import BatchForecast
from gluonts.torch.model.predictor import PyTorchPredictor

from lagllama.evaluation.backtest import WQL_QUANTILES
from lagllama.training.callbacks import CPUTimeBudget
from lagllama.training.fine_tuning_defaults import DEFAULTS


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


class ForecastScore:
    """WQL of sampled forecasts of the validation windows: the last ``prediction_length``
    points of (at most ``max_series``, a fixed random subset of) the validation series,
    forecast from what precedes them with ``num_samples`` paths.

    Every call draws from the same seed (the caller's random state is left untouched), so
    two sets of weights are compared on common random numbers, not on sampling noise.
    """

    def __init__(
        self,
        validation: Dataset,
        prediction_length: int,
        make_predictor: Callable[[pl.LightningModule], PyTorchPredictor],
        num_samples: int = 50,
        max_series: int = 256,
        seed: int = 0,
    ) -> None:
        entries = list(validation)
        if len(entries) > max_series:
            keep = np.random.default_rng(seed).choice(len(entries), max_series, replace=False)
            entries = [entries[i] for i in sorted(keep)]
        _, template = split(entries, offset=-prediction_length)
        self.test_data = template.generate_instances(prediction_length, windows=1)
        labels = np.stack([entry["target"] for entry in self.test_data.label])
        self.labels = np.ma.masked_invalid(labels)
        self.make_predictor = make_predictor
        self.num_samples = num_samples
        self.seed = seed

    def __call__(self, module: pl.LightningModule) -> float:
        predictor = self.make_predictor(module)
        was_training, samples = module.training, module.num_parallel_samples
        module.num_parallel_samples = self.num_samples
        try:
            cuda = [module.device] if module.device.type == "cuda" else []
            with torch.random.fork_rng(devices=cuda):
                torch.manual_seed(self.seed)
                forecasts = list(predictor.predict(self.test_data.input))
        finally:
            module.num_parallel_samples = samples
            module.train(was_training)
        # GluonTS's metric, fed directly (evaluate_forecasts would draw a progress bar per call)
        wql = MeanWeightedSumQuantileLoss(quantile_levels=WQL_QUANTILES)(axis=None)
        wql.update(ChainMap({"label": self.labels}, BatchForecast(forecasts)))
        return float(wql.get())


class BestWeights(pl.Callback):
    """Scores the starting weights on the validation data, then keeps a copy of the weights
    of every validation that beats the best so far; ``restore`` loads the best copy.

    The score is ``score(module)`` when given (e.g. a :class:`ForecastScore`), else
    Lightning's teacher-forced ``val_loss``. Leaving the starting weights takes a score
    below ``start * (1 - min_gain)``; ``patience`` validations without a new best stop the
    run (0: never).

    The weights are scored and copied at the end of the validation epoch, when they are the
    weights just validated (with EMA, the averaged ones, swapped in until the EMA callback's
    own epoch-end hook: so this callback must come before it in the list); the decision is
    taken at validation end, once Lightning has reduced the epoch's ``val_loss``.
    """

    def __init__(
        self,
        score: Callable[[pl.LightningModule], float] | None = None,
        min_gain: float = 0.0,
        patience: int = 0,
    ) -> None:
        self.score = score
        self.min_gain = min_gain
        self.patience = patience
        self.start_loss = math.inf
        self.best_loss = math.inf
        self.best_step = 0
        self.best_state: dict[str, torch.Tensor] | None = None
        self.start_state: dict[str, torch.Tensor] | None = None
        #: CPU seconds the starting weights' score took (what one more scoring costs)
        self.score_cpu_s = 0.0
        self.history: list[tuple[int, float]] = []
        self._validated: tuple[dict[str, torch.Tensor], float | None] | None = None
        self._stale = 0

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        loaders = trainer.val_dataloaders
        if loaders is None:
            raise ValueError("BestWeights needs validation data")
        if self.score is not None:
            cpu0 = time.process_time()
            start = self.score(pl_module)
            self.score_cpu_s = time.process_time() - cpu0
        else:
            start = _teacher_forced_loss(pl_module, loaders)
        self.start_loss = self.best_loss = start
        self.best_state = self.start_state = _copy_state(pl_module)
        self.history.append((0, start))

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.sanity_checking:
            score = self.score(pl_module) if self.score is not None else None
            self._validated = (_copy_state(pl_module), score)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or self._validated is None:
            return
        state, score = self._validated
        self._validated = None
        loss = float(trainer.callback_metrics["val_loss"]) if score is None else score
        self.history.append((trainer.global_step, loss))
        bar = self.start_loss * (1.0 - self.min_gain) if self.best_step == 0 else self.best_loss
        if loss < min(bar, self.best_loss):
            self.best_loss, self.best_step, self.best_state = loss, trainer.global_step, state
            self._stale = 0
        else:
            self._stale += 1
        if self.patience and self._stale >= self.patience:
            trainer.should_stop = True

    def restore(self, module: torch.nn.Module) -> None:
        if self.best_state is not None:
            module.load_state_dict(self.best_state)

    def keep_start(self) -> None:
        """Make the starting weights the result (a choice that failed confirmation)."""
        self.best_state, self.best_step, self.best_loss = (
            self.start_state,
            0,
            self.start_loss,
        )


def _teacher_forced_loss(pl_module: pl.LightningModule, loaders: Any) -> float:
    """Mean teacher-forced loss per series over the validation loader(s)."""
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
    return total / max(count, 1)


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
    """What a fine-tuning run did; ``kept_start`` says the starting model was returned.
    ``metric`` names the validation score (``"WQL"`` of sampled forecasts or the
    teacher-forced ``"val_loss"``) that ``start_val_loss``/``best_val_loss`` hold.
    ``confirm_start``/``confirm_best``: WQL of the starting and of the chosen weights on the
    confirmation window (None without ``confirm`` or when the start was never beaten)."""

    metric: str
    start_val_loss: float
    best_val_loss: float
    best_step: int
    steps: int
    kept_start: bool
    wall_s: float
    cpu_s: float
    history: list[tuple[int, float]]
    confirm_start: float | None = None
    confirm_best: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class FineTuneResult:
    predictor: PyTorchPredictor
    report: FineTuneReport


#: Recipe defaults (see benchmarks/fine_tune.py for the measurements behind them).


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
    validation: str = DEFAULTS["validation"],
    min_gain: float = DEFAULTS["min_gain"],
    validation_samples: int = DEFAULTS["validation_samples"],
    validation_series: int = DEFAULTS["validation_series"],
    confirm: bool = DEFAULTS["confirm"],
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

    ``validation="forecast"`` selects weights by the WQL of ``validation_samples`` sampled
    paths on the validation windows of at most ``validation_series`` series (``"loss"``: by
    the teacher-forced likelihood); the starting weights are left only for a score at least
    ``min_gain`` (relative) better, and ``patience`` validations without a new best stop.
    ``confirm`` keeps the chosen weights only if they also beat the start on a later window
    (see the module docstring).
    """
    from lagllama.estimators.lag_llama import LagLlamaEstimator
    from lagllama.pretrained import DEFAULT_NAME, available_models, checkpoint_path

    if checkpoint is None or str(checkpoint) in available_models():
        checkpoint = checkpoint_path(DEFAULT_NAME if checkpoint is None else str(checkpoint))
    if ema_decay is not None and not 0.0 < ema_decay < 1.0:
        raise ValueError(f"ema_decay must be in (0, 1), got {ema_decay}")
    if validation not in ("forecast", "loss"):
        raise ValueError(f"validation must be 'forecast' or 'loss', got {validation!r}")
    confirm_data = None
    if confirm:
        data, confirm_data = carve_validation(data, prediction_length)
    train, validation_data = carve_validation(data, prediction_length)
    best = BestWeights(min_gain=min_gain, patience=patience)
    callbacks: list[pl.Callback] = [best, FreezeLowerLayers(freeze_layers)]
    if max_cpu_minutes is not None:  # confirmation's two scorings come out of the budget
        reserve = (lambda: 2.0 * best.score_cpu_s) if confirm else None
        callbacks.append(CPUTimeBudget(max_cpu_minutes * 60.0, reserve))
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
    transformation = estimator.create_transformation()

    def forecast_score(windows: Dataset) -> ForecastScore:
        return ForecastScore(
            windows,
            prediction_length,
            lambda module: estimator.create_predictor(transformation, module),
            num_samples=validation_samples,
            max_series=validation_series,
        )

    if validation == "forecast":
        best.score = forecast_score(validation_data)
    wall0, cpu0 = time.perf_counter(), time.process_time()
    out = estimator.train_model(train, validation_data=validation_data)
    best.restore(out.trained_net)
    confirm_start = confirm_best = None
    if confirm_data is not None and best.best_step != 0:
        score = forecast_score(confirm_data)
        confirm_best = score(out.trained_net)
        out.trained_net.load_state_dict(best.start_state)
        confirm_start = score(out.trained_net)
        if confirm_best >= confirm_start:
            best.keep_start()
        best.restore(out.trained_net)
    report = FineTuneReport(
        metric="WQL" if validation == "forecast" else "val_loss",
        start_val_loss=best.start_loss,
        best_val_loss=best.best_loss,
        best_step=best.best_step,
        steps=int(out.trainer.global_step),
        kept_start=best.best_step == 0,
        wall_s=time.perf_counter() - wall0,
        cpu_s=time.process_time() - cpu0,
        history=copy.deepcopy(best.history),
        confirm_start=confirm_start,
        confirm_best=confirm_best,
    )
    return FineTuneResult(out.predictor, report)
