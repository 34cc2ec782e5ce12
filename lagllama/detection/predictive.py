"""One-step-ahead predictive distributions of every point of a series, each from its past only.

Lag-Llama is a causal decoder: token ``t`` reads the values at ``t - lag`` (every lag >= 1)
and attends to earlier tokens only, so one teacher-forced forward pass over a window gives
the next-step distribution of every position in it, without sampling. What is not causal by
itself is the scaling: the model scales a window by statistics of its context (median and
IQR). So a stream is cut into blocks of ``block`` steps; for the block ``[t0, t0 + block)``
the scale comes from the ``context_length`` values before ``t0`` and stays fixed over the
block, and one forward pass over context + block (GluonTS's instance splitter builds the
windows, with the lags' history before the context and padding masked as in training) gives
the distributions of the block's points. Every point's distribution then depends on values
before it only. Until a stream holds a full context the blocks are 1, 2, 4, ... points long,
so the scale follows its first values; the last block is padded with missing values, which
the points before them never read.

The seasonal naive baseline predicts ``x[t - m]`` plus the mean of the past one-step errors,
with their standard deviation over a trailing window (a windowed Gaussian on errors).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from gluonts.dataset.field_names import FieldName
from gluonts.dataset.loader import as_stacked_batches
from gluonts.time_feature import get_seasonality
from gluonts.transform import InstanceSampler, InstanceSplitter
from scipy import stats

from lagllama.data.frequency import offset_alias

#: Quantiles of the 80% band reported beside the median.
BAND = (0.1, 0.9)
#: Quantile columns of a detection table, in order: the median, then the band.
QUANTILES = (0.5, *BAND)
#: One-step errors a windowed Gaussian needs before it predicts.
MIN_ERRORS = 10
#: An error spread below this fraction of the series' level (at least 1) is noise: a tenth of
#: Lag-Llama's resolution (its robust scaler's floor is 1e-3 of the level, at least 1e-3).
RELATIVE_FLOOR = 1e-4


@dataclass(frozen=True)
class OneStep:
    """Per point of a series: the predictive median and 80% band, and the log of the two-sided
    tail probability of the observed value (NaN where the value is missing or no prediction
    could be made, e.g. at the first point)."""

    median: np.ndarray
    low: np.ndarray
    high: np.ndarray
    log_tail: np.ndarray


def log_tail(distribution: stats.rv_continuous, values: np.ndarray) -> np.ndarray:
    """``log P(|X - median| >= |x - median|)`` per point of a frozen scipy distribution
    symmetric about its median (NaN parameters or values: NaN)."""
    both = np.minimum(distribution.logcdf(values), distribution.logsf(values))
    return np.minimum(np.log(2.0) + both, 0.0)


def one_step(distribution: stats.rv_continuous, target: np.ndarray) -> OneStep:
    """The median, band and log tail probabilities of a frozen scipy distribution with one
    entry per point."""
    return OneStep(
        distribution.ppf(0.5),
        distribution.ppf(BAND[0]),
        distribution.ppf(BAND[1]),
        log_tail(distribution, target),
    )


def block_starts(length: int, block: int, ramp: int) -> np.ndarray:
    """The first points of a stream's blocks: 1, 2, 4, ... while below ``ramp`` (so the scale
    follows a young stream's first values closely), then every ``block`` points."""
    starts, start = [], 1
    while start < length:
        starts.append(start)
        start += min(start, block) if start < ramp else block
    return np.array(starts, dtype=int)


class BlockSampler(InstanceSampler):
    """The block starts of a stream padded to ``last start + block`` points."""

    block: int
    ramp: int

    def __call__(self, ts: np.ndarray) -> np.ndarray:
        return block_starts(ts.shape[self.axis] - self.block + 1, self.block, self.ramp)


class LagLlamaOneStep:
    """Causal one-step distributions of a Lag-Llama checkpoint (see the module docstring).

    ``block`` defaults to the checkpoint's prediction length (the window it was trained on is
    context + prediction length); a smaller block refreshes the scale more often and costs
    proportionally more forward passes. Before the stream holds a full context the blocks
    are 1, 2, 4, ... points long.
    """

    def __init__(
        self, checkpoint: str | Path, block: int | None = None, batch_size: int = 64
    ) -> None:
        from lagllama.estimators.lag_llama import LagLlamaEstimator
        from lagllama.estimators.lag_llama.estimator import TIME_FEAT, load_checkpoint

        trained = load_checkpoint(checkpoint)["hyper_parameters"]["model_kwargs"]
        self.block = block or trained["prediction_length"]
        if self.block < 1:
            raise ValueError(f"block must be >= 1, got {self.block}")
        estimator = LagLlamaEstimator.from_checkpoint(checkpoint, prediction_length=self.block)
        config = estimator.config
        if config.num_covariate_features:
            raise ValueError(f"{checkpoint} was trained with covariates; detection reads none")
        if config.distr_output not in ("student_t", "normal"):
            raise ValueError(
                f"detection needs a Student-t or normal head, {checkpoint} has "
                f"{config.distr_output}"
            )
        self.config = config
        self.batch_size = batch_size
        self.model = estimator.create_lightning_module().model.eval()
        fields = [FieldName.OBSERVED_VALUES] + ([TIME_FEAT] if estimator.time_features else [])
        splitter = InstanceSplitter(
            target_field=FieldName.TARGET,
            is_pad_field=FieldName.IS_PAD,
            start_field=FieldName.START,
            forecast_start_field=FieldName.FORECAST_START,
            instance_sampler=BlockSampler(block=self.block, ramp=config.context_length),
            past_length=config.past_length,
            future_length=self.block,
            time_series_fields=fields,
            dummy_value=0.0,
        )
        self.transform = estimator.create_transformation() + splitter
        suffixes = ["target", "observed_values"] + (
            ["time_feat"] if estimator.time_features else []
        )
        self.inputs = [f"{side}_{s}" for s in suffixes for side in ("past", "future")]

    def _starts(self, length: int) -> np.ndarray:
        return block_starts(length, self.block, self.config.context_length)

    def _padded(self, entry: dict) -> dict:
        """The entry with its target padded by missing values to its last block's end."""
        target = np.asarray(entry[FieldName.TARGET], dtype=np.float32)
        padded = np.full(self._starts(len(target))[-1] + self.block, np.nan, dtype=np.float32)
        padded[: len(target)] = target
        return {FieldName.START: entry[FieldName.START], FieldName.TARGET: padded}

    def _head_args(self, entries: list[dict]) -> Iterator[dict[str, np.ndarray]]:
        """Per batch of blocks (in order): the distribution's parameters in data units."""
        instances = self.transform.apply([self._padded(e) for e in entries], is_train=True)
        batches = as_stacked_batches(
            instances, batch_size=self.batch_size, field_names=self.inputs, output_type=torch.tensor
        )
        names = list(self.model.distr_output.args_dim)
        for batch in batches:
            with torch.inference_mode():
                window = self.model.window_hidden(
                    batch["past_target"],
                    batch["past_observed_values"],
                    batch["future_target"],
                    batch["future_observed_values"],
                    batch.get("past_time_feat"),
                    batch.get("future_time_feat"),
                )
                args = self.model.head_args(window["hidden"][:, -self.block :])
            params = {n: a.double().numpy() for n, a in zip(names, args)}
            loc, scale = (window[k].double().numpy() for k in ("loc", "scale"))
            params["loc"] = loc + scale * params["loc"]
            params["scale"] = scale * params["scale"]
            yield params

    def predict(self, entries: list[dict]) -> list[OneStep]:
        """The one-step distributions of every point of every entry, in order (the first
        point of a series has no past: no prediction)."""
        targets = [np.asarray(e[FieldName.TARGET], dtype=float) for e in entries]
        scored = [e for e, t in zip(entries, targets) if len(t) > 1]
        parts = list(self._head_args(scored)) if scored else []
        params = {k: np.concatenate([p[k] for p in parts]) for k in (parts[0] if parts else ())}
        out, row = [], 0
        for target in targets:
            starts = self._starts(len(target))
            if not len(starts):
                nothing = np.full(len(target), np.nan)
                out.append(one_step(stats.norm(nothing, nothing), target))
                continue
            spans = np.diff(np.r_[starts, len(target)])
            part = {
                k: np.concatenate([[np.nan], *(v[row + i, :n] for i, n in enumerate(spans))])
                for k, v in params.items()
            }
            row += len(starts)
            if self.config.distr_output == "student_t":
                distribution = stats.t(part["df"], part["loc"], part["scale"])
            else:
                distribution = stats.norm(part["loc"], part["scale"])
            out.append(one_step(distribution, target))
        return out


def windowed_gaussian(errors: pd.Series, level: pd.Series, window: int) -> stats.rv_continuous:
    """Per point, the normal distribution of its error with the mean and standard deviation of
    the ``window`` errors before it (NaN until ``MIN_ERRORS`` of them), floored at
    ``RELATIVE_FLOOR`` of the last level."""
    past = errors.shift(1).rolling(window, min_periods=MIN_ERRORS)
    floor = RELATIVE_FLOOR * level.abs().ffill().shift(1).clip(lower=1.0)
    return stats.norm(past.mean(), np.maximum(past.std(), floor))


class SeasonalNaiveOneStep:
    """A windowed Gaussian on the one-step errors of seasonal naive: the point ``t`` is
    predicted as the last observed value at or before ``t - m`` plus the mean error, with the
    errors' standard deviation, both over the ``window`` errors before ``t``.

    ``season_length`` defaults to GluonTS's seasonality of the series' frequency (288 for
    5-minute data: a day).
    """

    def __init__(self, season_length: int | None = None, window: int = 8640) -> None:
        self.season_length = season_length
        self.window = window

    def predict(self, entries: list[dict]) -> list[OneStep]:
        """The one-step distributions of every point of every entry, in order."""
        out = []
        for entry in entries:
            target = pd.Series(np.asarray(entry[FieldName.TARGET], dtype=float))
            m = self.season_length or get_seasonality(offset_alias(entry["start"].freqstr))
            naive = target.ffill().shift(m)
            errors = windowed_gaussian(target - naive, target, self.window)
            distribution = stats.norm(naive + errors.mean(), errors.std())
            out.append(one_step(distribution, target.to_numpy()))
        return out
