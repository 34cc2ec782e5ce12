"""Covariates: table columns to GluonTS fields, and zero-shot in-context regression.

Conventions (the README states them once):

- The history table holds id, time and target, and any other column is a covariate.
- A covariate is *known-future* when the future table has a column of that name (or it is
  named in ``covariates``). It is *past-only* otherwise (or when named in ``past_covariates``).
- The future table holds id, time and every known-future covariate, one row for each of
  the ``h`` steps after each series' last timestamp.
- A column whose values are all numbers is real-valued. A column whose values are all text
  is categorical and is one-hot encoded. A column mixing the two is an error that names it.

In GluonTS fields, known-future covariates are ``feat_dynamic_real`` (covariates x
(history + h)) and past-only ones are ``past_feat_dynamic_real`` (covariates x history).

Zero-shot, the pretrained models read no covariates. :class:`InContextRegression` adds
them to any predictor, as TimesFM does. For each series it fits a ridge regression of the
scaled target on the standardised known-future covariates over the context, beside one level
per phase of the series' season (hour of day, day of week, ...) that stays in the residual,
so a covariate that follows the season gets only the effect of its deviations. The base model
forecasts the residual, and the regression on the future covariates is added back to every
sample path (or quantile), so the quantiles stay ordered. Past-only covariates cannot be
extrapolated, so this method ignores them.

Fallbacks are counted in ``counts``, never silent:
- a covariate that is constant within a series is dropped for that series;
- a series where no covariate varies, or with fewer observed points than its covariates
  + 2, is forecast without regression.
Collinear covariates are handled by the ridge penalty.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from gluonts.dataset import Dataset
from gluonts.model import Forecast, Predictor
from gluonts.model.forecast import QuantileForecast, SampleForecast
from gluonts.time_feature import get_seasonality

from lagllama.data.frequency import offset_alias

KNOWN = "feat_dynamic_real"
PAST = "past_feat_dynamic_real"
#: Ridge penalty on standardised covariates (units of the scaled target): enough to keep
#: collinear or near-constant covariates from blowing up, small beside a real effect.
RIDGE = 1.0


@dataclass(frozen=True)
class Covariates:
    """Which columns are known-future and which past-only, and the one-hot levels of the
    categorical ones (``{column: levels}``; real columns are absent)."""

    known: tuple[str, ...] = ()
    past: tuple[str, ...] = ()
    levels: tuple[tuple[str, tuple[str, ...]], ...] = ()

    def __bool__(self) -> bool:
        return bool(self.known or self.past)

    def names(self, columns: Sequence[str]) -> list[str]:
        """Feature names of ``columns`` after one-hot encoding (``col=level``)."""
        levels = dict(self.levels)
        return [f"{c}={v}" if c in levels else c for c in columns for v in levels.get(c, [None])]


def _values_kind(values: pd.Series, column: str, where: str) -> str | None:
    """``"real"`` or ``"categorical"`` (None: no value to tell); a mix of numbers and text is
    an error naming a row."""
    present = values.dropna()
    if present.empty:
        return None
    if pd.api.types.is_numeric_dtype(present) or present.dtype == bool:
        return "real"
    numbers = pd.to_numeric(present, errors="coerce")
    if numbers.isna().all():
        return "categorical"
    if numbers.notna().all():
        return "real"
    bad = present[numbers.isna()]
    raise ValueError(
        f"covariate column {column!r} has text where a number is expected: {bad.iloc[0]!r} "
        f"at data row {bad.index[0] + 1} of the {where}"
    )


def find_covariates(
    history: pd.DataFrame,
    layout_columns: Sequence[str],
    future: pd.DataFrame | None = None,
    covariates: Sequence[str] | None = None,
    past_covariates: Sequence[str] | None = None,
    future_in_history: bool = False,
) -> Covariates:
    """The covariates of a history table (columns beyond ``layout_columns``), split by the
    conventions above; named columns must exist, and known-future ones must be in ``future``
    (or, for backtests, ``future_in_history``: the table holds the windows' future values)."""
    extra = [c for c in history.columns if c not in layout_columns]
    unknown = [c for c in future.columns if c not in history.columns] if future is not None else []
    if unknown:
        raise ValueError(
            f"the future table has column {unknown[0]!r} that the history lacks; a known-future "
            f"covariate needs its past values too (the history's columns are "
            f"{list(history.columns)})"
        )
    for name in [*(covariates or ()), *(past_covariates or ())]:
        if name not in extra:
            raise ValueError(f"covariate column {name!r} not found; the extra columns are {extra}")
    if covariates is not None or past_covariates is not None:
        known = list(covariates or ())
        past = list(past_covariates or [c for c in extra if c not in known])
    else:
        in_future = set(future.columns) if future is not None else set()
        known = [c for c in extra if c in in_future]
        past = [c for c in extra if c not in in_future]
    if known and future is None and not future_in_history:
        raise ValueError(
            f"known-future covariates {known} need a future table (--future-file, future_df=) "
            "with their values at every forecast step"
        )
    missing = [c for c in known if c not in future.columns] if future is not None else []
    if missing:
        raise ValueError(
            f"the future table has no column {missing[0]!r} (a known-future covariate); its "
            f"columns are {list(future.columns)}"
        )
    levels = []
    for column in [*known, *past]:
        kind = _values_kind(history[column], column, "history")
        if column in known and future is not None:
            future_kind = _values_kind(future[column], column, "future table")
            if None not in (kind, future_kind) and future_kind != kind:
                raise ValueError(
                    f"covariate column {column!r} is {kind} in the history but {future_kind} "
                    "in the future table"
                )
        if kind == "categorical":
            seen = history[column].dropna().astype(str)
            if column in known and future is not None:
                seen = pd.concat([seen, future[column].dropna().astype(str)])
            levels.append((column, tuple(sorted(seen.unique()))))
    return Covariates(tuple(known), tuple(past), tuple(levels))


def _encode(frame: pd.DataFrame, columns: Sequence[str], spec: Covariates) -> np.ndarray:
    """``frame[columns]`` as a float matrix (rows x features), categoricals one-hot."""
    levels = dict(spec.levels)
    parts = []
    for column in columns:
        if column in levels:
            text = frame[column].astype("string")
            for level in levels[column]:
                one = (text == level).astype(float).to_numpy(na_value=np.nan)
                one[text.isna().to_numpy()] = np.nan
                parts.append(one)
        else:
            parts.append(pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=float))
    return np.stack(parts, axis=1) if parts else np.zeros((len(frame), 0))


def _check_finite(values: np.ndarray, names: Sequence[str], item_id: object, rows, where: str):
    bad = ~np.isfinite(values)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        what = "missing (NaN)" if np.isnan(values[row, col]) else "infinite"
        raise ValueError(
            f"known-future covariate {names[col]!r} is {what} for series {str(item_id)!r} at "
            f"{rows[row]} ({where}); it needs a value at every forecast step"
        )


def future_covariates(
    item_id: object,
    future: Mapping[str, pd.DataFrame],
    future_index: pd.DatetimeIndex,
    spec: Covariates,
) -> np.ndarray:
    """The known-future covariates of one series at its forecast steps (steps x features)
    from the future table's rows by id (:func:`future_groups`); a series, step or value the
    table lacks is an error naming it."""
    rows = future.get(str(item_id))
    if rows is None:
        raise ValueError(
            f"the future table has no rows for series {str(item_id)!r}; it needs "
            f"{len(future_index)} rows from {future_index[0]} to {future_index[-1]}"
        )
    missing = future_index.difference(rows.index)
    if len(missing):
        raise ValueError(
            f"the future table lacks timestamp {missing[0]} for series {str(item_id)!r}; it "
            f"needs the {len(future_index)} steps from {future_index[0]} to {future_index[-1]}"
        )
    ahead = _encode(rows.loc[future_index], spec.known, spec)
    _check_finite(ahead, spec.names(spec.known), item_id, list(future_index), "future table")
    return ahead


def covariate_fields(
    item_id: object,
    history: pd.DataFrame,
    grid: pd.DatetimeIndex,
    future: Mapping[str, pd.DataFrame],
    future_index: pd.DatetimeIndex,
    time_column: str,
    spec: Covariates,
) -> dict[str, np.ndarray]:
    """``feat_dynamic_real`` / ``past_feat_dynamic_real`` of one series: the history's
    covariates on the series' grid (gaps NaN), the known ones continued by the future rows."""
    fields: dict[str, np.ndarray] = {}
    by_time = history.set_index(pd.DatetimeIndex(pd.to_datetime(history[time_column])))
    if spec.past:
        past = _encode(by_time, spec.past, spec)
        fields[PAST] = pd.DataFrame(past, index=by_time.index).reindex(grid).to_numpy().T
    if spec.known:
        names = spec.names(spec.known)
        known = _encode(by_time, spec.known, spec)
        infinite = np.isinf(known)
        if infinite.any():
            row = int(np.argwhere(infinite)[0][0])
            _check_finite(known[row : row + 1], names, item_id, [by_time.index[row]], "history")
        hist = pd.DataFrame(known, index=by_time.index).reindex(grid).to_numpy()
        ahead = future_covariates(item_id, future, future_index, spec)
        fields[KNOWN] = np.concatenate([hist, ahead]).T.astype(np.float32)
    return fields


def history_fields(
    history: pd.DataFrame, grid: pd.DatetimeIndex, time_column: str, spec: Covariates
) -> dict[str, np.ndarray]:
    """The covariate fields of one series of a backtest table, which holds the future values
    of its windows: known and past-only covariates over the whole series' grid (gaps NaN; a
    missing known value contributes no regression effect at that step)."""
    by_time = history.set_index(pd.DatetimeIndex(pd.to_datetime(history[time_column])))
    fields = {}
    for name, columns in ((KNOWN, spec.known), (PAST, spec.past)):
        if columns:
            values = _encode(by_time, columns, spec)
            if np.isinf(values).any():
                row = int(np.argwhere(np.isinf(values))[0][0])
                column = spec.names(columns)[int(np.argwhere(np.isinf(values))[0][1])]
                raise ValueError(
                    f"covariate {column!r} is infinite at {by_time.index[row]} (data row "
                    f"{history.index[row] + 1})"
                )
            frame = pd.DataFrame(values, index=by_time.index).reindex(grid)
            fields[name] = frame.to_numpy(dtype=np.float32).T
    return fields


def future_groups(
    future: pd.DataFrame, id_column: str | None, time_column: str
) -> dict[str, pd.DataFrame]:
    """The future table's rows by series id (as text), indexed by time; one group ``"0"``
    without an id. A repeated (id, time) is an error naming both, as in the history."""
    for role, column in (("id", id_column), ("time", time_column)):
        if column is not None and column not in future.columns:
            raise ValueError(
                f"the future table has no {role} column {column!r}; its columns are "
                f"{list(future.columns)}"
            )
    try:
        times = pd.DatetimeIndex(pd.to_datetime(future[time_column]))
    except (ValueError, TypeError) as err:
        raise ValueError(
            f"time column {time_column!r} of the future table has values that are not dates: {err}"
        ) from err
    ids = future[id_column].astype(str) if id_column is not None else pd.Series("0", future.index)
    dup = pd.DataFrame({"id": ids.to_numpy(), "time": times}).duplicated().to_numpy()
    if dup.any():
        raise ValueError(
            f"duplicate timestamps for item {ids[dup].iloc[0]!r} in time column "
            f"{time_column!r} of the future table: {times[dup][0]}"
        )
    rows = future.set_index(times)
    return {str(k): part for k, part in rows.groupby(ids.to_numpy(), sort=False)}


# ------------------------------------------------------------------ in-context regression
@dataclass(frozen=True)
class Effects:
    """A series' fitted covariate effects over its history and its future."""

    history: np.ndarray
    future: np.ndarray
    dropped: int


def ridge_effects(
    target: np.ndarray, known: np.ndarray, ridge: float = RIDGE, season: int = 1
) -> Effects | str:
    """The effects of a ridge regression of the scaled ``target`` on the standardised
    ``known`` covariates (features x (T + h)), or why there are none: ``"constant"`` (no
    covariate varies over the observed points) or ``"too_few_points"``.

    With ``season`` > 1, one level per phase of the season (hour of day, day of week, ...)
    is fitted beside the covariates and left in the residual for the model to forecast: a
    covariate that follows the season (temperature follows the hour) gets only the effect
    of its deviations, not the seasonal pattern the model already knows (Frisch-Waugh)."""
    T = len(target)
    x_hist, x_future = known[:, :T].T.astype(float), known[:, T:].T.astype(float)
    fit = np.isfinite(target) & np.isfinite(x_hist).all(axis=1)
    if fit.sum() < 3:
        return "too_few_points"
    mean, std = x_hist[fit].mean(axis=0), x_hist[fit].std(axis=0)
    varies = std > 1e-9 * np.maximum(1.0, np.abs(mean))
    if not varies.any():
        return "constant"
    season = season if fit.sum() >= 2 * season + varies.sum() + 2 else 1
    if fit.sum() < varies.sum() + season + 1:
        return "too_few_points"
    y = target[fit].astype(float)
    loc = np.median(y)
    scale = np.mean(np.abs(y - loc)) or 1.0
    z = (y - loc) / scale
    xs = (x_hist[fit][:, varies] - mean[varies]) / std[varies]
    phases = np.eye(season)[np.arange(T)[fit] % season]  # intercept when season == 1
    design = np.concatenate([xs, phases], axis=1)
    penalty = np.concatenate([np.full(xs.shape[1], ridge), np.full(season, 1e-6)])
    beta = np.linalg.solve(design.T @ design + np.diag(penalty), design.T @ z)[: xs.shape[1]]

    def effect(x: np.ndarray) -> np.ndarray:
        values = scale * (((x[:, varies] - mean[varies]) / std[varies]) @ beta)
        return np.where(np.isfinite(values), values, 0.0)

    return Effects(effect(x_hist), effect(x_future), int((~varies).sum()))


def shift_forecast(forecast: Forecast, shift: np.ndarray) -> Forecast:
    """``forecast`` moved by ``shift`` at every step: every path, or every quantile."""
    if isinstance(forecast, SampleForecast):
        return SampleForecast(
            forecast.samples + shift[None, :].astype(forecast.samples.dtype),
            start_date=forecast.start_date,
            item_id=forecast.item_id,
        )
    if isinstance(forecast, QuantileForecast):
        return QuantileForecast(
            forecast.forecast_array + shift[None, :],
            start_date=forecast.start_date,
            forecast_keys=forecast.forecast_keys,
            item_id=forecast.item_id,
        )
    raise TypeError(f"cannot add covariate effects to a {type(forecast).__name__}")


class InContextRegression(Predictor):
    """Zero-shot covariates for any predictor (see the module docstring).

    Entries without ``feat_dynamic_real`` reach ``base`` unchanged, so forecasts without
    covariates are exactly the base model's. ``counts`` tallies ``regressed`` series,
    ``constant_covariates`` dropped within a series, and series forecast without regression
    (``not_regressed_constant``, ``not_regressed_too_few_points``).
    """

    def __init__(self, base: Predictor, ridge: float = RIDGE) -> None:
        super().__init__(prediction_length=base.prediction_length)
        self.base = base
        self.ridge = ridge
        self.counts: Counter[str] = Counter()

    @property
    def num_fallbacks(self) -> int:
        return getattr(self.base, "num_fallbacks", 0)

    @property
    def num_imputed(self) -> int:
        return getattr(self.base, "num_imputed", 0)

    def predict(self, dataset: Dataset, **kwargs) -> Iterator[Forecast]:
        entries = list(dataset)
        inputs, shifts = [], []
        for entry in entries:
            target = np.asarray(entry["target"], dtype=float)
            plain = {k: v for k, v in entry.items() if k not in (KNOWN, PAST)}
            fit = None
            if KNOWN in entry:
                season = get_seasonality(offset_alias(pd.Period(entry["start"]).freqstr))
                fit = ridge_effects(target, np.asarray(entry[KNOWN]), self.ridge, season)
            if isinstance(fit, str):
                self.counts[f"not_regressed_{fit}"] += 1
                fit = None
            if fit is not None:
                plain["target"] = (target - fit.history).astype(np.float32)
                self.counts["regressed"] += 1
                self.counts["constant_covariates"] += fit.dropped
            inputs.append(plain)
            shifts.append(None if fit is None else fit.future)
        for forecast, shift in zip(self.base.predict(inputs, **kwargs), shifts, strict=True):
            yield forecast if shift is None else shift_forecast(forecast, shift)


class WithoutCovariates(Predictor):
    """``base`` on the same entries with their covariate fields removed: the same model
    without covariates, side by side with :class:`InContextRegression` in one backtest."""

    def __init__(self, base: Predictor) -> None:
        super().__init__(prediction_length=base.prediction_length)
        self.base = base

    def predict(self, dataset: Dataset, **kwargs) -> Iterator[Forecast]:
        plain = ({k: v for k, v in e.items() if k not in (KNOWN, PAST)} for e in dataset)
        return self.base.predict(plain, **kwargs)
