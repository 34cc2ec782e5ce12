"""Statistical baselines: seasonal naive and the statsforecast models GluonTS wraps.

statsforecast fits fail on some series (too short, constant, all missing): a baseline then
falls back to seasonal naive for that series, or, as an ensemble member, drops out of it
(:class:`FallbackPredictor` counts both), so a forecast never stops on one bad series.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence

import numpy as np
import pandas as pd
from gluonts.dataset import Dataset
from gluonts.model import Forecast, Predictor
from gluonts.model.seasonal_naive import SeasonalNaivePredictor

#: Quantiles averaged by WQL (Chronos / GluonTS convention).
WQL_QUANTILES = tuple(round(0.1 * i, 1) for i in range(1, 10))
#: Quantiles the baselines produce: WQL's plus the 95% interval for MSIS and coverage.
FORECAST_QUANTILES = (0.025, 0.05, *WQL_QUANTILES, 0.95, 0.975)
BASELINE = "seasonal-naive"
STATSFORECAST_MODELS = {
    "auto-ets": "AutoETSPredictor",
    "auto-theta": "AutoThetaPredictor",
    "auto-arima": "AutoARIMAPredictor",
}
BASELINES = (BASELINE, *STATSFORECAST_MODELS)
#: History a statsforecast member of an ensemble is fitted on (as AutoGluon's ``max_ts_length``,
#: 2,500, but shorter): AutoTheta's fit grows faster than linearly (1.48 CPU-s on 2,500 hourly
#: points, 0.23 on 1,000, 0.06 on 500; one AMD EPYC core), and on ETT (3 windows) its WQL was
#: 0.142 on the last 2,500 points, 0.120 on 1,000, 0.124 on 500 (exchange rate: 0.0076,
#: 0.0074, 0.0075). 1,000 put the default at 0.41 s per series (2 threads), over its 0.4 bar.
ENSEMBLE_MAX_HISTORY = 500


def impute(target: np.ndarray) -> np.ndarray:
    """Fill NaNs: linear interpolation inside, nearest value at the ends, 0 if all missing."""
    series = pd.Series(np.asarray(target, dtype=float))
    if not series.isna().any():
        return series.to_numpy()
    filled = series.interpolate(limit_direction="both")
    return filled.fillna(0.0).to_numpy()


class FallbackPredictor(Predictor):
    """Wrap a predictor: impute NaNs before predicting, and forecast a series with
    ``fallback`` when the primary model fails on it (``None`` without one: the caller drops
    the member for that series). Counts both, per ``predict`` call."""

    def __init__(
        self,
        primary: Predictor,
        fallback: Predictor | None,
        impute_missing: bool = True,
        max_history: int | None = None,
    ) -> None:
        super().__init__(prediction_length=primary.prediction_length)
        self.primary = primary
        self.fallback = fallback
        self.impute_missing = impute_missing
        self.max_history = max_history
        self.num_fallbacks = 0
        self.num_imputed = 0
        self.failures: list[str] = []

    def predict(self, dataset: Dataset, **kwargs) -> Iterator[Forecast | None]:
        self.num_fallbacks = self.num_imputed = 0
        self.failures = []
        for entry in dataset:
            target = np.asarray(entry["target"], dtype=float)
            if self.max_history is not None and len(target) > self.max_history:
                cut = len(target) - self.max_history
                entry = {**entry, "start": entry["start"] + cut, "target": target[cut:]}
                target = target[cut:]
            if self.impute_missing and np.isnan(target).any():
                entry = {**entry, "target": impute(target)}
                self.num_imputed += 1
            try:
                with warnings.catch_warnings():  # statsmodels' tests divide by zero on flat series
                    warnings.simplefilter("ignore", RuntimeWarning)
                    forecast = next(iter(self.primary.predict([entry], **kwargs)))
                if not np.isfinite(forecast.quantile(0.5)).all():
                    raise ValueError("non-finite forecast")
            except Exception as err:  # statsforecast raises many types when a fit fails
                self.num_fallbacks += 1
                self.failures.append(f"{entry.get('item_id')}: {type(err).__name__}: {err}")
                if self.fallback is None:
                    forecast = None
                else:
                    forecast = next(iter(self.fallback.predict([entry], **kwargs)))
            yield forecast


def seasonal_naive(prediction_length: int, season_length: int) -> Predictor:
    """GluonTS seasonal naive; its single sample makes it a point forecast for all quantiles."""
    return SeasonalNaivePredictor(prediction_length=prediction_length, season_length=season_length)


def baseline_predictor(
    name: str,
    prediction_length: int,
    season_length: int,
    quantile_levels: Sequence[float] = FORECAST_QUANTILES,
    impute_missing: bool = True,
    fallback: bool = True,
    max_history: int | None = None,
) -> Predictor:
    """A baseline by name (:data:`BASELINES`). statsforecast models forecast
    ``quantile_levels``, see NaNs imputed, and fall back to seasonal naive on a series they
    fail on (or, without ``fallback``, give ``None`` for it: an ensemble member that drops out);
    ``max_history`` fits them on each series' last points only."""
    if name == BASELINE:
        return seasonal_naive(prediction_length, season_length)
    if name not in STATSFORECAST_MODELS:
        raise ValueError(f"unknown baseline {name!r}; choose from {', '.join(BASELINES)}")
    from gluonts.ext import statsforecast

    primary = getattr(statsforecast, STATSFORECAST_MODELS[name])(
        prediction_length=prediction_length,
        quantile_levels=list(quantile_levels),
        season_length=season_length,
    )
    backup = seasonal_naive(prediction_length, season_length) if fallback else None
    return FallbackPredictor(primary, backup, impute_missing, max_history)
