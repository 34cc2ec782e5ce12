"""From one-step predictions to anomaly scores in [0, 1]: HTM's anomaly likelihood, online.

First a surprise per point, ``-log p`` with ``p`` a two-sided tail probability of the
observed value:

* ``"errors"`` (the default): under a windowed Gaussian of the model's past one-step errors
  around its predictive median (mean and standard deviation of the last ``history`` errors).
  The point forecast is the model's, the yardstick the series' own long record of errors;
* ``"tail"``: under the model's own predictive distribution (Lag-Llama's Student-t). It
  widens with recent volatility and has heavy tails, so a spike after a noisy hour surprises
  it little: on NAB it scores far lower (``docs/anomaly.md``).

A surprise alone makes a poor detector: no threshold fits every series. Numenta's anomaly
likelihood (Ahmad et al., 2017; NAB's ``numenta`` detector) calibrates per series, and this
is its recipe, with the surprise in place of HTM's prediction error:

* the surprise of a series' first ``warmup`` points is ignored (little context there);
* a short mean of the last ``short`` surprises is compared with the mean and standard
  deviation of the earlier short means over the last ``history`` points (at least
  ``min_samples`` of them): ``z = (short - mean) / std`` (``std >= min_std``);
* the likelihood tail is ``Q(|z|)`` (HTM's ``tailProbability``: an unusually quiet stretch
  counts as well as a noisy one), reported as NAB's numenta detector reports it:
  ``score = min(1, -log10(tail) / 10)``, so 0.5 means one chance in 100,000;
* HTM's filter: a red score (>= 0.5) right after a red score becomes yellow (0.3), so a long
  anomaly raises one alarm, not hundreds;
* HTM's spatial rule (NAB's ``numenta`` detector): a value beyond the range the series has
  shown so far by more than ``spatial_tolerance`` (5%) of that range scores 1, whatever its
  likelihood. People call a new extreme an anomaly; a forecaster that follows a level shift
  within a few steps stops being surprised by it. ``None`` turns the rule off.

Every statistic at ``t`` reads values up to ``t`` only. Missing values have no score (NaN);
observed points without one yet (warm-up, too few samples) score 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from lagllama.detection.predictive import OneStep, log_tail, windowed_gaussian

#: Scores at or above this are HTM's "red"; a red right after a red becomes ``YELLOW``.
RED = 0.5
YELLOW = 0.3
#: ``score = -log10(tail) / SCORE_DECADES``: 1 at a calibrated tail of 1e-10 or less.
SCORE_DECADES = 10.0
#: The flag threshold: HTM's red, a calibrated tail of 1e-5 (NAB's optimum for the default
#: detector is 0.561, 1.5 points better: ``benchmarks/results/nab.md``; not tuned to it).
DEFAULT_THRESHOLD = RED
SURPRISES = ("errors", "tail")


@dataclass(frozen=True)
class Calibration:
    """The surprise and the windows of the running calibration (HTM's defaults: averaging
    window 10, a month of 5-minute points as history, 100 samples before a first estimate)."""

    surprise: str = "errors"
    short: int = 10
    history: int = 8640
    warmup: int = 64
    min_samples: int = 100
    min_std: float = 0.05
    spatial_tolerance: float | None = 0.05

    def __post_init__(self) -> None:
        if self.surprise not in SURPRISES:
            raise ValueError(f"surprise must be one of {SURPRISES}, got {self.surprise!r}")
        for name in ("short", "history", "min_samples"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.warmup < 0 or self.min_std <= 0:
            raise ValueError("warmup must be >= 0 and min_std > 0")
        if self.spatial_tolerance is not None and self.spatial_tolerance < 0:
            raise ValueError(f"spatial_tolerance must be >= 0, got {self.spatial_tolerance}")

    @property
    def learning(self) -> int:
        """Points of a series before its first possible score."""
        return self.warmup + self.min_samples


DEFAULT_CALIBRATION = Calibration()


def surprise(
    prediction: OneStep, target: np.ndarray, calibration: Calibration = DEFAULT_CALIBRATION
) -> np.ndarray:
    """``-log p`` of every point (NaN where missing or not predicted); see the module
    docstring for the two kinds."""
    if calibration.surprise == "tail":
        return -prediction.log_tail
    values = pd.Series(np.asarray(target, dtype=float))
    errors = values - prediction.median
    return -log_tail(windowed_gaussian(errors, values, calibration.history), errors)


def anomaly_scores(
    prediction: OneStep, target: np.ndarray, calibration: Calibration = DEFAULT_CALIBRATION
) -> np.ndarray:
    """Scores in [0, 1] of one series from its one-step predictions; NaN where the value is
    missing."""
    c = calibration
    surprises = pd.Series(surprise(prediction, target, c))
    surprises.iloc[: c.warmup] = np.nan
    short = surprises.rolling(c.short, min_periods=1).mean().where(surprises.notna())
    past = short.shift(1).rolling(c.history, min_periods=c.min_samples)
    z = ((short - past.mean()) / np.maximum(past.std(), c.min_std)).abs().to_numpy()
    score = np.clip(-stats.norm.logsf(z) / np.log(10.0) / SCORE_DECADES, 0.0, 1.0)
    score = np.nan_to_num(score, nan=0.0)
    red = score >= RED
    score[1:][red[1:] & red[:-1]] = YELLOW
    if c.spatial_tolerance is not None:
        beyond = beyond_range(target, c.spatial_tolerance)
        beyond[: c.learning] = False
        score[beyond] = 1.0
    return np.where(np.isnan(target), np.nan, score)


def beyond_range(target: np.ndarray, tolerance: float) -> np.ndarray:
    """Where a value lies beyond the range of the values before it by more than ``tolerance``
    times that range (never where the range is still a single value, or the value missing)."""
    values = pd.Series(np.asarray(target, dtype=float))
    high, low = values.cummax().ffill().shift(1), values.cummin().ffill().shift(1)
    margin = (high - low) * tolerance
    beyond = ((values > high + margin) | (values < low - margin)) & (high > low)
    return beyond.to_numpy()


def check_threshold(threshold: float) -> float:
    """``threshold`` if it is a score (in [0, 1]), else a ValueError."""
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be in [0, 1], got {threshold}")
    return threshold


def flags(scores: np.ndarray, threshold: float) -> np.ndarray:
    """Anomaly flags: a score at or above ``threshold`` (never a missing value)."""
    return np.nan_to_num(scores, nan=-1.0) >= check_threshold(threshold)
