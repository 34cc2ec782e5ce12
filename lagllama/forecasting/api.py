"""Future forecasts of a user's series, as one tidy table, from a DataFrame or a GluonTS dataset.

The table has one row per (series, future timestamp) and the columns ``item_id``,
``timestamp``, ``mean`` and one column per quantile named by its level (``"0.1"``, ``"0.5"``,
``"0.9"``), the layout of Chronos/AutoGluon forecasts; CSV and parquet outputs
(:mod:`lagllama.forecasting.files`, :mod:`lagllama.forecasting.ray_engine`) are the same table. Ids
are the input's: their dtype is kept for DataFrames, parquet files and GluonTS datasets, and
CSV ids are kept as the text they are written as (``007`` stays ``007``). Timestamps continue
each series after its last one in the input's own frequency and convention (``MS`` month
starts, ``W-SUN`` week labels, business days, ...).

Models are specifications (:mod:`lagllama.forecasting.specs`): the default ``lagllama``, a shipped
model, a checkpoint path, a baseline or an ensemble. A forecast depends only on a series'
data, the model and the seed, not on the batch, the chunk or the Ray worker that ran it: each
series draws its sample paths from its own generator (seeded from the seed and its id), and
a hybrid's member weights are fitted once per call, on rolling validation windows of a
sample of the whole input chosen by id (:meth:`Forecaster.fit`), before any chunk is
forecast.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import pandas as pd
from gluonts.dataset import Dataset
from gluonts.model import Forecast
from gluonts.time_feature import get_seasonality

from lagllama.data.frequency import offset_alias
from lagllama.data.series_chunks import (
    NO_COVARIATES,
    SeriesChunk,
    dataset_chunks,
    frame_chunk,
    layout_columns,
)
from lagllama.data.tables import detect_layout
from lagllama.forecasting.covariates import (
    KNOWN,
    InContextRegression,
    find_covariates,
    future_groups,
)
from lagllama.forecasting.ensembles import QuantileEnsemble, validation_sample
from lagllama.forecasting.options import ForecastOptions
from lagllama.forecasting.specs import build_predictor, parse_model

ID, TIME, MEAN = "item_id", "timestamp", "mean"


def quantile_column(q: float) -> str:
    """Column name of quantile ``q``: its level as written, ``0.1`` -> ``"0.1"``."""
    return f"{q:g}"


class Forecaster:
    """One model, loaded once, turning chunks of series of one frequency into tidy tables.

    ``counts`` tallies series, series with missing values, imputed inputs, fallbacks, a
    hybrid's members that dropped out of a series and series too short for its weights.
    ``weights`` fix a hybrid's member weights; else :meth:`fit` them before forecasting.
    """

    def __init__(
        self, options: ForecastOptions, freq: str, weights: Iterable[float] | None = None
    ) -> None:
        self.options = options
        self.spec = parse_model(options.model)
        season = get_seasonality(offset_alias(freq))
        self.predictor = build_predictor(
            self.spec, options, season, weights=None if weights is None else list(weights)
        )
        self.regression = InContextRegression(self.predictor)
        self.counts: Counter[str] = Counter()

    @property
    def weights(self) -> dict[str, float] | None:
        """A hybrid's member weights, once fitted or fixed."""
        if not isinstance(self.predictor, QuantileEnsemble) or self.predictor.weights is None:
            return None
        return dict(zip(self.predictor.names, map(float, self.predictor.weights)))

    def fit(self, chunks: Iterable[SeriesChunk]) -> None:
        """Fit a hybrid's member weights once, on a sample of the series of ``chunks`` (all of
        the input) chosen by id; nothing to do for other models."""
        if isinstance(self.predictor, QuantileEnsemble) and self.predictor.weights is None:
            sample = validation_sample(e for chunk in chunks for e in chunk.entries)
            self.predictor.weights = self.predictor.fit(sample)

    def predict(self, entries: list[dict]) -> list[Forecast]:
        """GluonTS forecasts of ``entries``, in order; known-future covariates by in-context
        regression (:mod:`lagllama.forecasting.covariates`), none: the model's own forecasts."""
        if any(KNOWN in e for e in entries):
            self.regression.counts.clear()
            forecasts = list(self.regression.predict(entries))
            self.counts.update(self.regression.counts)
        else:
            forecasts = list(self.predictor.predict(entries))
        self.counts["series"] += len(entries)
        self.counts["missing"] += sum(bool(np.isnan(e["target"]).any()) for e in entries)
        self.counts["imputed"] += getattr(self.predictor, "num_imputed", 0)
        self.counts["fallbacks"] += getattr(self.predictor, "num_fallbacks", 0)
        self.counts.update(getattr(self.predictor, "counts", Counter()))
        return forecasts

    def table(self, chunk: SeriesChunk) -> pd.DataFrame:
        """The tidy forecast table of a chunk: id, timestamp, mean, one column per quantile."""
        forecasts = self.predict(chunk.entries)
        h = self.options.prediction_length
        columns: dict[str, Any] = {
            ID: chunk.ids.repeat(h).reset_index(drop=True),
            # microseconds hold every date a Period can (nanoseconds end in 2262)
            TIME: pd.DatetimeIndex(
                np.concatenate([f.as_unit("us").to_numpy() for f in chunk.future])
            ),
            MEAN: np.concatenate([f.mean for f in forecasts]),
        }
        for q in self.options.quantiles:
            columns[quantile_column(q)] = np.concatenate([f.quantile(q) for f in forecasts])
        return pd.DataFrame(columns)


def fitted_forecaster(
    options: ForecastOptions, source: Callable[[], Iterable[SeriesChunk]]
) -> tuple[Forecaster, Iterable[SeriesChunk]]:
    """A forecaster for the chunks ``source()`` yields, with a hybrid's weights fitted over all
    of them first (a second pass over the input), and the chunks to forecast."""
    chunks = iter(source())
    first = next(chunks, None)
    if first is None:
        raise ValueError("no series to forecast")
    forecaster = Forecaster(options, first.freq)
    if forecaster.weights is None and forecaster.spec.is_hybrid:
        forecaster.fit(source())
    return forecaster, _chained(first, chunks)


def _chained(first: SeriesChunk, rest: Iterable[SeriesChunk]) -> Iterable[SeriesChunk]:
    yield first
    yield from rest


def summary_line(counts: Counter[str], weights: dict[str, float] | None = None) -> str:
    """One line on what was forecast and how missing values, ensembles and covariates were
    handled."""
    line = (
        f"{counts['series']} series forecast; {counts['missing']} had missing values "
        f"({counts['imputed']} imputed, the rest masked by the model); "
        f"{counts['fallbacks']} fell back to seasonal naive"
    )
    if weights is not None:
        shares = ", ".join(f"{name} {w:.2f}" for name, w in weights.items())
        line += f"; member weights {shares} (fitted once on rolling windows)"
        if counts["equal_weights"]:
            line += f", equal on {counts['equal_weights']} series too short to validate"
    dropped = {k.split(":", 1)[1]: v for k, v in counts.items() if k.startswith("dropped:") and v}
    if dropped:
        line += "; " + ", ".join(f"{name} dropped out of {n} series" for name, n in dropped.items())
        line += " (its fit failed: too short, constant or missing)"
    unregressed = counts["not_regressed_constant"] + counts["not_regressed_too_few_points"]
    if counts["regressed"] or unregressed:
        line += (
            f"; covariates by in-context regression on {counts['regressed']} series "
            f"({counts['constant_covariates']} constant covariate(s) dropped within a series; "
            f"{counts['not_regressed_constant']} series with no varying covariate and "
            f"{counts['not_regressed_too_few_points']} with fewer points than covariates + 2 "
            "forecast without them)"
        )
    past_only = [k.split(":", 1)[1] for k, v in counts.items() if k.startswith("past_only:") and v]
    if past_only:
        line += f"; past-only covariates, ignored zero-shot: {', '.join(past_only)}"
    return line


def forecast(
    data: pd.DataFrame | Dataset,
    prediction_length: int,
    model: str | None = None,
    quantiles: Iterable[float] = (0.1, 0.5, 0.9),
    num_samples: int = 100,
    seed: int | None = 0,
    *,
    freq: str | None = None,
    timestamp_column: str | None = None,
    target_column: str | None = None,
    item_id_column: str | None = None,
    batch_size: int = 64,
    future_df: pd.DataFrame | None = None,
    covariates: Iterable[str] | None = None,
    past_covariates: Iterable[str] | None = None,
) -> pd.DataFrame:
    """Forecast ``prediction_length`` steps past the end of every series.

    ``data``: a long or wide DataFrame (columns detected as in
    :func:`lagllama.data.tables.detect_layout`, or named with the keyword arguments) or a
    GluonTS dataset (with ``feat_dynamic_real`` covering history and future, if any).
    ``model``: a specification (:mod:`lagllama.forecasting.specs`; ``None``: the default).
    ``future_df``: id, time and the known-future covariates at every forecast step
    (conventions in :mod:`lagllama.forecasting.covariates`). ``seed=None`` samples from torch's
    global RNG (as a GluonTS predictor does). Returns the tidy table of the module docstring.
    """
    options = ForecastOptions(
        prediction_length, model, tuple(quantiles), num_samples, seed, batch_size
    )
    parse_model(model)
    if isinstance(data, pd.DataFrame):
        layout = detect_layout(data.columns, timestamp_column, target_column, item_id_column)
        wide = layout.target is None
        if wide and (future_df is not None or covariates or past_covariates):
            raise ValueError(
                "covariates need long form (id, time, target and covariate columns); the table "
                "is wide (one column per series)"
            )
        spec = (
            NO_COVARIATES
            if wide
            else find_covariates(
                data, layout_columns(layout), future_df, covariates, past_covariates
            )
        )
        future = future_groups(future_df, layout.item_id, layout.timestamp) if spec.known else None
        chunk, _ = frame_chunk(data, layout, freq, prediction_length, future, spec)

        def source() -> Iterable[SeriesChunk]:
            return [chunk]

    else:

        def source() -> Iterable[SeriesChunk]:
            return dataset_chunks(data, prediction_length)

    forecaster, chunks = fitted_forecaster(options, source)
    return pd.concat([forecaster.table(c) for c in chunks], ignore_index=True)
