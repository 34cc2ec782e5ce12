"""Fine-tuning a pretrained Lag-Llama on a user's dataset, with a recipe that cannot make the
model much worse than where it started.

Up to ``validation_windows`` rolling windows of ``prediction_length`` points are carved off
the end of every training series (:func:`carve_windows`): the last h points, the h points
before them, and so on, as many as the history allows. Training never reaches them, and they
lie before any test window (which ``task.train_data()`` already excludes). A model's score on
a window is the WQL of sampled forecasts of it (what a user evaluates; the teacher-forced
likelihood often improves while multi-step forecasts get worse), drawn with common random
numbers so that two weights are compared on the same draws. Training runs from the pretrained
weights with a small learning rate, warm-up and (optionally) an exponential moving average of
the weights, is scored after every epoch on the mean over the windows, stops early when that
stops improving, and restores the best weights seen.

With ``confirm`` (the default) the rule of :func:`decide` then picks what forecasts:

* the tuned weights, if they beat the start on a majority of the windows and on the mean by
  more than a margin: ``noise_factor`` times the score's sampling noise (the difference of the
  start's mean score under two sampling seeds), at least ``min_gain`` of the start's score;
* the start, if no epoch beat it on the mean;
* otherwise (a gain within the noise, or not on most windows) the quantile average of the two
  (:class:`QuantileAverage`): its quantile loss is at most the mean of theirs (the loss is
  convex in the quantile), so it cannot be much worse than the start, and a mixture of two
  models' errors often beats both.

Why several windows: one validation window often disagrees with the next. On tourism_quarterly
(held back from pretraining) weights that gained 1% on one window and also beat the start on
a confirmation window were 4% worse on the test window (WQL 0.0684 vs 0.0656); on m1_monthly,
weights 10% better than the start on the last training window were 23% worse on the test
window (see benchmarks/fine_tune.py).

``max_cpu_minutes`` bounds the whole run (it keeps back the time of the final scorings),
``max_minutes`` (wall) the training, and ``max_steps`` its length.
"""

from __future__ import annotations

import copy
import itertools
import json
import math
import time
from collections import ChainMap
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
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
from gluonts.model.forecast import Forecast, SampleForecast
from gluonts.model.predictor import Predictor
from gluonts.torch.model.predictor import PyTorchPredictor

from lagllama.evaluation.backtest import WQL_QUANTILES
from lagllama.forecasting.ensembles import common_horizon
from lagllama.training.callbacks import CPUTimeBudget
from lagllama.training.fine_tuning_defaults import DEFAULTS

#: Least share of the series that must keep a training window once the validation windows
#: are carved off (m1_monthly keeps 38% with three windows of 18, car parts none).
MIN_TRAINABLE = 0.25


def carve_windows(
    dataset: Dataset,
    prediction_length: int,
    max_windows: int = 1,
    min_train_points: int = 1,
    train_length: int = 1,
) -> tuple[ListDataset, list[ListDataset]]:
    """``(train, windows)``: rolling validation windows of ``prediction_length`` points off
    the end of every series, ``windows[0]`` the last and each next one the points just before
    the previous, each a dataset of the series cut at the window's end (those with an
    observed value in it); ``train`` holds every series without its windows.

    A series has a window when ``min_train_points`` observed points precede it. There are as
    many windows as at least half of the series with one reach, at most ``max_windows`` (a
    window that few series reach would be a noisy vote in :func:`decide`), and fewer while
    that would leave fewer than :data:`MIN_TRAINABLE` of the series ``train_length`` points
    (what a training window takes): on car parts' 39 points, three windows of 12 would leave
    none to train on, and training would find no window. A series too short for any window
    trains whole.
    """
    if max_windows < 1:
        raise ValueError(f"need at least one validation window, got {max_windows}")
    h = prediction_length
    entries, counts, freq = [], [], None
    for entry in dataset:
        target = np.asarray(entry["target"], dtype=np.float32)
        freq = freq or entry["start"].freqstr
        observed = np.concatenate([[0], np.cumsum(np.isfinite(target))])
        n = 0
        while n < max_windows:
            cut = len(target) - (n + 1) * h
            if cut <= 0 or observed[cut] < min_train_points:
                break
            n += 1
        entries.append({**entry, "target": target})
        counts.append(n)
    reached = sorted((n for n in counts if n), reverse=True)
    k = reached[(len(reached) - 1) // 2] if reached else 0

    def trainable(k: int) -> int:
        """Series left with ``train_length`` points or more by ``k`` windows."""
        return sum(
            len(e["target"]) - min(n, k) * h >= train_length for e, n in zip(entries, counts)
        )

    while k > 1 and trainable(k) < MIN_TRAINABLE * len(entries):
        k -= 1
    train: list[dict] = []
    windows: list[list[dict]] = [[] for _ in range(k)]
    for entry, n in zip(entries, counts):
        target = entry["target"]
        n = min(n, k)
        if n == 0:
            if np.isfinite(target).any():
                train.append(entry)  # too short to validate on
            continue
        train.append({**entry, "target": target[: len(target) - n * h]})
        for j in range(n):
            end = len(target) - j * h
            if np.isfinite(target[end - h : end]).any():
                windows[j].append({**entry, "target": target[:end]})
    if not any(windows):
        raise ValueError(
            f"no series is long enough to carve a validation window of {prediction_length} "
            f"points (with {min_train_points} observed points before it) for fine-tuning"
        )
    return ListDataset(train, freq=freq), [ListDataset(w, freq=freq) for w in windows if w]


@dataclass
class WindowScores:
    """A model's WQL on each validation window (the last first), with the forecasts behind
    them, so that an average of two models is scored without forecasting again."""

    wql: np.ndarray
    forecasts: list[list[Forecast]]

    def __float__(self) -> float:
        return float(self.wql.mean())


class ForecastScore:
    """WQL of sampled forecasts, window by window: the last ``prediction_length`` points of
    (at most ``max_series``, a fixed random subset of) each window's series, forecast from
    what precedes them with ``num_samples`` paths.

    Every call draws from one seed (``seed``, unless the call names another; the caller's
    random state is left untouched), so two sets of weights are compared on common random
    numbers, not on sampling noise; another seed measures that noise.
    """

    def __init__(
        self,
        windows: Sequence[Dataset],
        prediction_length: int,
        make_predictor: Callable[[pl.LightningModule], PyTorchPredictor],
        num_samples: int = 50,
        max_series: int = 256,
        seed: int = 0,
    ) -> None:
        self.test_data = []
        self.labels = []
        for window in windows:
            entries = list(window)
            if len(entries) > max_series:
                keep = np.random.default_rng(seed).choice(len(entries), max_series, replace=False)
                entries = [entries[i] for i in sorted(keep)]
            _, template = split(entries, offset=-prediction_length)
            test_data = template.generate_instances(prediction_length, windows=1)
            labels = np.stack([entry["target"] for entry in test_data.label])
            self.test_data.append(test_data)
            self.labels.append(np.ma.masked_invalid(labels))
        self.make_predictor = make_predictor
        self.num_samples = num_samples
        self.seed = seed

    def forecasts(
        self, module: pl.LightningModule, seed: int | None = None
    ) -> list[list[Forecast]]:
        """The sample forecasts of every window, all windows in one pass of the predictor."""
        predictor = self.make_predictor(module)
        was_training, samples = module.training, module.num_parallel_samples
        module.num_parallel_samples = self.num_samples
        inputs = [entry for data in self.test_data for entry in data.input]
        try:
            cuda = [module.device] if module.device.type == "cuda" else []
            with torch.random.fork_rng(devices=cuda):
                torch.manual_seed(self.seed if seed is None else seed)
                forecasts = iter(list(predictor.predict(inputs)))
        finally:
            module.num_parallel_samples = samples
            module.train(was_training)
        return [list(itertools.islice(forecasts, len(data))) for data in self.test_data]

    def wql(self, forecasts: list[list[Forecast]]) -> np.ndarray:
        """WQL per window of ``forecasts`` (one list per window, as :meth:`forecasts` gives)."""
        scores = []
        for labels, window in zip(self.labels, forecasts, strict=True):
            # GluonTS's metric, fed directly (evaluate_forecasts draws a progress bar per call)
            wql = MeanWeightedSumQuantileLoss(quantile_levels=WQL_QUANTILES)(axis=None)
            wql.update(ChainMap({"label": labels}, BatchForecast(window)))
            scores.append(float(wql.get()))
        return np.array(scores)

    def __call__(self, module: pl.LightningModule, seed: int | None = None) -> WindowScores:
        forecasts = self.forecasts(module, seed)
        return WindowScores(self.wql(forecasts), forecasts)


class BestWeights(pl.Callback):
    """Scores the starting weights on the validation data, then keeps a copy of the weights
    of every validation that beats the best so far (``best_state``).

    The score is ``score(module)`` when given (e.g. a :class:`ForecastScore`; its mean over
    the windows is compared), else Lightning's teacher-forced ``val_loss``. Leaving the
    starting weights takes a score below ``start * (1 - min_gain)``; ``patience``
    validations without a new best stop the run (0: never). ``start_scored`` and
    ``best_scored`` keep what ``score`` returned for the start and for the best weights.

    The weights are scored and copied at the end of the validation epoch, when they are the
    weights just validated (with EMA, the averaged ones, swapped in until the EMA callback's
    own epoch-end hook: so this callback must come before it in the list); the decision is
    taken at validation end, once Lightning has reduced the epoch's ``val_loss``.
    """

    def __init__(
        self,
        score: Callable[[pl.LightningModule], Any] | None = None,
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
        self.start_scored: Any = None
        self.best_scored: Any = None
        #: CPU seconds the starting weights' score took (what one more scoring costs)
        self.score_cpu_s = 0.0
        self.history: list[tuple[int, float]] = []
        self._validated: tuple[dict[str, torch.Tensor], Any] | None = None
        self._stale = 0

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        loaders = trainer.val_dataloaders
        if loaders is None:
            raise ValueError("BestWeights needs validation data")
        if self.score is not None:
            cpu0 = time.process_time()
            self.start_scored = self.best_scored = self.score(pl_module)
            self.score_cpu_s = time.process_time() - cpu0
            start = float(self.start_scored)
        else:
            start = _teacher_forced_loss(pl_module, loaders)
        self.start_loss = self.best_loss = start
        self.best_state = self.start_state = _copy_state(pl_module)
        self.history.append((0, start))

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.sanity_checking:
            scored = self.score(pl_module) if self.score is not None else None
            self._validated = (_copy_state(pl_module), scored)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or self._validated is None:
            return
        state, scored = self._validated
        self._validated = None
        loss = float(trainer.callback_metrics["val_loss"] if scored is None else scored)
        self.history.append((trainer.global_step, loss))
        bar = self.start_loss * (1.0 - self.min_gain) if self.best_step == 0 else self.best_loss
        if loss < min(bar, self.best_loss):
            self.best_loss, self.best_step, self.best_state = loss, trainer.global_step, state
            self.best_scored = scored
            self._stale = 0
        else:
            self._stale += 1
        if self.patience and self._stale >= self.patience:
            trainer.should_stop = True


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


def decide(
    start: Sequence[float],
    tuned: Sequence[float],
    noise: float,
    noise_factor: float = DEFAULTS["noise_factor"],
    min_gain: float = DEFAULTS["min_gain"],
) -> tuple[str, str, float]:
    """The window rule: ``(decision, reason, margin)`` from the per-window scores (lower is
    better) of the start and of the tuned weights and the score's sampling noise.

    ``"tuned"`` needs a gain on a majority of the windows and on the mean a gain above the
    margin, ``max(min_gain * start's mean, noise_factor * noise)``; a gain on the mean no
    larger than the sampling noise gives ``"start"`` (an average would double the cost for
    nothing measurable); weaker evidence in between, ``"average"``.
    """
    start, tuned = np.asarray(start, float), np.asarray(tuned, float)
    mean = float(start.mean())
    margin = max(min_gain * mean, noise_factor * noise)
    gain = mean - float(tuned.mean())
    wins, n = int((tuned < start).sum()), len(start)
    majority, beyond = wins > n / 2, gain > margin
    if not gain > max(noise, 0.0):
        decision, why = "start", "no gain on the mean beyond the sampling noise"
    elif majority and beyond:
        decision, why = "tuned", "a majority of windows and a gain beyond the margin"
    elif majority:
        decision, why = "average", "a gain within the margin"
    elif beyond:
        decision, why = "average", "not a majority of windows"
    else:
        decision, why = "average", "not a majority of windows and a gain within the margin"
    reason = (
        f"{why}: better on {wins} of {n} windows, by {gain / mean:.2%} on the mean "
        f"(margin {margin / mean:.2%})"
    )
    return decision, reason, margin


def quantile_average(forecasts: Sequence[Forecast], weights: Sequence[float]) -> SampleForecast:
    """The forecast whose quantiles are, at every level, the ``weights``-average of the
    members' (sample forecasts of one series with as many paths each): their sorted paths
    averaged, then ordered as the first member's paths rank, so that the paths keep its
    dependence between time steps."""
    first = forecasts[0]
    for f in forecasts:
        if not isinstance(f, SampleForecast) or f.samples.shape != first.samples.shape:
            raise ValueError("a quantile average needs sample forecasts with as many paths each")
        if f.start_date != first.start_date or f.item_id != first.item_id:
            raise ValueError(
                f"averaged forecasts disagree on the series: {first.item_id!r} from "
                f"{first.start_date} vs {f.item_id!r} from {f.start_date}"
            )
    averaged = sum(w * np.sort(f.samples, axis=0) for w, f in zip(weights, forecasts, strict=True))
    samples = np.empty_like(averaged)
    np.put_along_axis(samples, np.argsort(first.samples, axis=0), averaged, axis=0)
    return SampleForecast(samples, start_date=first.start_date, item_id=first.item_id)


class QuantileAverage(Predictor):
    """Averages the quantiles of Lag-Llama predictors with fixed ``weights``, level by level
    (:func:`quantile_average`).

    Unlike :class:`~lagllama.forecasting.ensembles.QuantileEnsemble`, which gives quantile
    forecasts, it gives sample forecasts, so it mixes into an ensemble of Lag-Llama models
    (``a+b``) or a hybrid like any Lag-Llama predictor; it saves its members in subfolders.
    """

    def __init__(self, members: Sequence[Predictor], weights: Sequence[float]) -> None:
        super().__init__(prediction_length=common_horizon(members))
        if len(weights) != len(members) or min(weights) < 0 or sum(weights) <= 0:
            raise ValueError(f"need one non-negative weight per member, got {list(weights)}")
        self.members = list(members)
        self.weights = [w / sum(weights) for w in weights]

    def predict(self, dataset: Dataset, **kwargs: Any) -> Iterator[Forecast]:
        copies = itertools.tee(iter(dataset), len(self.members))
        streams = [m.predict(copy, **kwargs) for m, copy in zip(self.members, copies)]
        for forecasts in zip(*streams, strict=True):
            yield quantile_average(forecasts, self.weights)

    def serialize(self, path: Path) -> None:
        super().serialize(path)
        for i, member in enumerate(self.members):
            (path / f"member{i}").mkdir(exist_ok=True)
            member.serialize(path / f"member{i}")
        (path / "predictor.json").write_text(json.dumps({"weights": self.weights}))

    @classmethod
    def deserialize(cls, path: Path, **kwargs: Any) -> QuantileAverage:
        weights = json.loads((path / "predictor.json").read_text())["weights"]
        members = [
            Predictor.deserialize(path / f"member{i}", **kwargs) for i in range(len(weights))
        ]
        return cls(members, weights)


@dataclass
class FineTuneReport:
    """What a fine-tuning run did and what it returned.

    ``decision``: ``"start"`` (the starting weights), ``"tuned"`` (the best fine-tuned
    weights, from step ``best_step``) or ``"average"`` (the quantile average of the two);
    ``rule`` says why. ``metric`` names the selection score (``"WQL"`` of sampled forecasts
    or the teacher-forced ``"val_loss"``, over ``windows`` validation windows) that
    ``start_val_loss``/``best_val_loss``/``history`` hold as means over the windows. Per
    window, the last first: the WQL of the start, of the tuned weights and of their average
    (``start_scores``/``tuned_scores``/``average_scores``), ``wins`` (windows where the tuned
    weights beat the start), ``noise`` (the start's mean WQL under two sampling seeds, their
    difference) and ``margin`` (the gain on the mean that keeping the tuned weights took);
    those the run did not need are ``None``."""

    metric: str
    start_val_loss: float
    best_val_loss: float
    best_step: int
    steps: int
    decision: str
    rule: str
    windows: int
    wall_s: float
    cpu_s: float
    history: list[tuple[int, float]]
    start_scores: list[float] | None = None
    tuned_scores: list[float] | None = None
    average_scores: list[float] | None = None
    wins: int | None = None
    noise: float | None = None
    margin: float | None = None

    @property
    def kept_start(self) -> bool:
        return self.decision == "start"

    def summary(self) -> str:
        """What was returned, by which rule, and the per-window evidence."""
        what = {
            "start": "kept the starting model",
            "tuned": f"kept the tuned weights of step {self.best_step}",
            "average": f"averaged the start and the tuned weights of step {self.best_step}",
        }[self.decision]
        text = f"{what} ({self.rule})"
        scores = {
            "start": self.start_scores,
            "tuned": self.tuned_scores,
            "average": self.average_scores,
        }
        shown = [f"{k} {' '.join(f'{v:.4g}' for v in s)}" for k, s in scores.items() if s]
        if self.tuned_scores:
            text += f"; WQL per window, the last first: {', '.join(shown)}"
        if self.noise is not None and self.start_scores:
            noise = self.noise / float(np.mean(self.start_scores))
            text += f"; sampling noise {noise:.2%} of the start's score"
        return text

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class FineTuneResult:
    """The predictor the rule chose, its report, and what each other verdict would have
    returned (``"start"``, ``"tuned"``, ``"average"``; empty when no weights beat the start):
    what a benchmark needs to measure the rule against always choosing one of them."""

    predictor: Predictor
    report: FineTuneReport
    alternatives: dict[str, Predictor] = field(default_factory=dict)


#: Weights of the start and the tuned model in the average the weak-evidence verdict returns:
#: equal, since weights fitted on the windows that found the evidence weak would fit noise.
AVERAGE_WEIGHTS = (0.5, 0.5)


def _judge(
    score: ForecastScore,
    net: pl.LightningModule,
    best: BestWeights,
    noise_factor: float,
    min_gain: float,
) -> tuple[str, str, dict[str, Any]]:
    """:func:`decide` on the start and the best weights: decision, reason, and the report's
    evidence. The selection's forecasts are reused (with ``validation="forecast"``), so this
    costs one scoring, the start's under a second seed (three with ``"loss"``)."""
    net.load_state_dict(best.start_state)
    start = best.start_scored if isinstance(best.start_scored, WindowScores) else score(net)
    noise = abs(float(start) - float(score(net, seed=score.seed + 1)))
    net.load_state_dict(best.best_state)
    tuned = best.best_scored if isinstance(best.best_scored, WindowScores) else score(net)
    average = score.wql(
        [
            [quantile_average(pair, AVERAGE_WEIGHTS) for pair in zip(a, b, strict=True)]
            for a, b in zip(start.forecasts, tuned.forecasts, strict=True)
        ]
    )
    decision, reason, margin = decide(start.wql, tuned.wql, noise, noise_factor, min_gain)
    evidence = {
        "start_scores": start.wql.tolist(),
        "tuned_scores": tuned.wql.tolist(),
        "average_scores": average.tolist(),
        "wins": int((tuned.wql < start.wql).sum()),
        "noise": noise,
        "margin": margin,
    }
    return decision, reason, evidence


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
    validation_windows: int = DEFAULTS["validation_windows"],
    noise_factor: float = DEFAULTS["noise_factor"],
    **estimator_kwargs: Any,
) -> FineTuneResult:
    """Fine-tune a checkpoint (a shipped model's name or a ``.ckpt`` path; default: the
    shipped default model) on ``data`` and return the predictor with a report.

    ``estimator_kwargs`` go to :meth:`LagLlamaEstimator.from_checkpoint` (``context_length``,
    ``batch_size``, ``num_parallel_samples``, ...); ``trainer_kwargs`` to Lightning
    (``accelerator``, ``devices``, ``precision``, ...). ``from_scratch`` trains the same
    architecture with the same recipe from random weights (the baseline fine-tuning must beat).

    ``validation="forecast"`` selects weights by the mean WQL of ``validation_samples``
    sampled paths over up to ``validation_windows`` rolling windows of at most
    ``validation_series`` series each (``"loss"``: by the teacher-forced likelihood);
    ``patience`` validations without a new best stop. With ``confirm`` the rule of
    :func:`decide` (``noise_factor``, ``min_gain``) returns the start, the tuned weights or
    the :class:`QuantileAverage` of both; without it the best weights are kept when they beat
    the start's mean score by ``min_gain`` (relative). See the module docstring.
    """
    from lagllama.estimators.lag_llama import LagLlamaEstimator
    from lagllama.pretrained import DEFAULT_NAME, available_names, checkpoint_path

    if checkpoint is None or str(checkpoint) in available_names():
        checkpoint = checkpoint_path(DEFAULT_NAME if checkpoint is None else str(checkpoint))
    if ema_decay is not None and not 0.0 < ema_decay < 1.0:
        raise ValueError(f"ema_decay must be in (0, 1), got {ema_decay}")
    if validation not in ("forecast", "loss"):
        raise ValueError(f"validation must be 'forecast' or 'loss', got {validation!r}")
    # a training window: one observed point and the prediction length after it
    train, windows = carve_windows(
        data, prediction_length, validation_windows, train_length=prediction_length + 1
    )
    # with confirm, any gain on the mean is a candidate: the rule weighs it after training
    best = BestWeights(min_gain=0.0 if confirm else min_gain, patience=patience)
    callbacks: list[pl.Callback] = [best, FreezeLowerLayers(freeze_layers)]
    if max_cpu_minutes is not None:  # the rule's scorings come out of the budget
        scorings = (1 if validation == "forecast" else 3) if confirm else 0
        callbacks.append(CPUTimeBudget(max_cpu_minutes * 60.0, lambda: scorings * best.score_cpu_s))
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
    score = ForecastScore(
        windows,
        prediction_length,
        lambda module: estimator.create_predictor(transformation, module),
        num_samples=validation_samples,
        max_series=validation_series,
    )
    if validation == "forecast":
        best.score = score
    wall0, cpu0 = time.perf_counter(), time.process_time()
    validation_data = [entry for window in windows for entry in window]
    out = estimator.train_model(train, validation_data=validation_data)
    net = out.trained_net
    evidence: dict[str, Any] = {}
    if isinstance(best.start_scored, WindowScores):
        evidence["start_scores"] = best.start_scored.wql.tolist()
    if best.start_state is None:  # training never started (max_steps=0, a spent budget)
        decision, rule = "start", "no training step was taken"
    elif best.best_step == 0:
        decision = "start"
        rule = "no epoch beat it on the mean" + ("" if confirm else f" by {min_gain:.1%}")
    elif not confirm:
        decision = "tuned"
        rule = f"better on the mean by more than {min_gain:.1%}; the window rule is off"
        if isinstance(best.best_scored, WindowScores):
            evidence["tuned_scores"] = best.best_scored.wql.tolist()
    else:
        decision, rule, evidence = _judge(score, net, best, noise_factor, min_gain)
    if best.start_state is not None:
        net.load_state_dict(best.start_state if decision == "start" else best.best_state)
    predictor: Predictor = out.predictor
    alternatives: dict[str, Predictor] = {}
    if best.start_state is not None and best.best_step > 0:

        def with_state(state: dict) -> Predictor:
            copy_net = type(net)(**net.hparams)
            copy_net.load_state_dict(state)
            return estimator.create_predictor(transformation, copy_net)

        start = out.predictor if decision == "start" else with_state(best.start_state)
        tuned = with_state(best.best_state) if decision == "start" else out.predictor
        average = QuantileAverage([start, tuned], AVERAGE_WEIGHTS)
        alternatives = {"start": start, "tuned": tuned, "average": average}
        predictor = alternatives[decision]
    report = FineTuneReport(
        metric="WQL" if validation == "forecast" else "val_loss",
        start_val_loss=best.start_loss,
        best_val_loss=best.best_loss,
        best_step=best.best_step,
        steps=int(out.trainer.global_step),
        decision=decision,
        rule=rule,
        windows=len(windows),
        wall_s=time.perf_counter() - wall0,
        cpu_s=time.process_time() - cpu0,
        history=copy.deepcopy(best.history),
        **evidence,
    )
    return FineTuneResult(predictor, report, alternatives)
