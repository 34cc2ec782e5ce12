"""Quantile fan charts for GluonTS forecasts (SampleForecast or QuantileForecast).

Uses matplotlib's object-oriented API (``Figure`` without pyplot), so it works headless
and never touches global pyplot state.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from gluonts.dataset import DataEntry
from gluonts.dataset.util import to_pandas
from gluonts.model import Forecast
from matplotlib.axes import Axes
from matplotlib.figure import Figure

#: Central interval widths drawn as bands, widest first so narrower ones sit on top.
BAND_LEVELS = (0.95, 0.8, 0.5)
IMAGE_FORMATS = (".png", ".svg", ".pdf")


def band_quantiles(levels: Sequence[float] = BAND_LEVELS) -> list[float]:
    """Quantiles needed for central intervals ``levels`` plus the median, sorted."""
    qs = {0.5}
    for level in levels:
        qs |= {round(0.5 - level / 2, 4), round(0.5 + level / 2, 4)}
    return sorted(qs)


def _as_series(series: DataEntry | pd.Series | None) -> pd.Series | None:
    if series is None or isinstance(series, pd.Series):
        return series
    return to_pandas(series)


def _timestamps(index: pd.Index) -> pd.DatetimeIndex:
    return index.to_timestamp() if isinstance(index, pd.PeriodIndex) else pd.DatetimeIndex(index)


def plot_forecast(
    forecast: Forecast,
    series: DataEntry | pd.Series | None = None,
    ax: Axes | None = None,
    history_length: int | None = None,
    levels: Sequence[float] = BAND_LEVELS,
    title: str | None = None,
) -> tuple[Axes, dict[float, np.ndarray]]:
    """Draw history, median, central-interval bands and actuals for one forecast.

    ``series`` is the observed series (a GluonTS entry or a period-indexed pandas Series);
    points before the forecast start are history (the last ``history_length``, default
    4 horizons), points inside the horizon are drawn as actuals. Returns the Axes and the
    quantile arrays that were drawn, keyed by quantile level; raises ValueError when a
    needed quantile is missing (NaN) rather than drawing an incomplete chart.
    """
    if ax is None:
        ax = Figure(figsize=(8, 4)).add_subplot()
    horizon = forecast.index
    x = _timestamps(horizon)
    observed = _as_series(series)
    if observed is not None:
        history = observed[observed.index < horizon[0]]
        history = history.iloc[-(history_length or 4 * len(horizon)) :]
        ax.plot(
            _timestamps(history.index), history.to_numpy(), color="black", lw=1, label="history"
        )
        actual = observed[observed.index.isin(horizon)]
        if len(actual):
            ax.plot(
                _timestamps(actual.index),
                actual.to_numpy(),
                color="black",
                lw=1,
                ls="--",
                marker=".",
                label="actual",
            )
    drawn = {q: np.asarray(forecast.quantile(q), dtype=float) for q in band_quantiles(levels)}
    missing = [q for q, values in drawn.items() if not np.isfinite(values).all()]
    if missing:
        raise ValueError(
            f"forecast {forecast.item_id!r} has no finite values for quantile(s) {missing}; "
            f"a QuantileForecast needs the keys {band_quantiles(levels)}"
        )
    for level, alpha in zip(sorted(levels, reverse=True), (0.15, 0.25, 0.35, 0.45)):
        lo, hi = drawn[round(0.5 - level / 2, 4)], drawn[round(0.5 + level / 2, 4)]
        ax.fill_between(
            x, lo, hi, color="tab:blue", alpha=alpha, lw=0, label=f"{level:.0%} interval"
        )
    ax.plot(x, drawn[0.5], color="tab:blue", lw=1.5, label="median")
    ax.set_title(title if title is not None else str(forecast.item_id or ""))
    ax.tick_params(axis="x", labelrotation=30, labelsize=8)
    return ax, drawn


def plot_grid(
    forecasts: Sequence[Forecast],
    series: Sequence[DataEntry | pd.Series] | None = None,
    ncols: int = 3,
    history_length: int | None = None,
    levels: Sequence[float] = BAND_LEVELS,
    title: str | None = None,
) -> Figure:
    """Fan charts for many forecasts in a grid (one panel each), with a shared legend."""
    if not forecasts:
        raise ValueError("no forecasts to plot")
    ncols = max(1, min(ncols, len(forecasts)))
    nrows = math.ceil(len(forecasts) / ncols)
    fig = Figure(figsize=(4.5 * ncols, 3.2 * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for i, forecast in enumerate(forecasts):
        plot_forecast(
            forecast,
            series=None if series is None else series[i],
            ax=axes[i],
            history_length=history_length,
            levels=levels,
        )
    for ax in axes[len(forecasts) :]:
        ax.set_visible(False)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=len(labels), fontsize=8)
    if title:
        fig.suptitle(title)
    return fig


def save_figure(fig: Figure, path: str | Path, dpi: int = 120) -> Path:
    """Save as PNG, SVG or PDF (chosen by extension), creating the folder if needed."""
    path = Path(path)
    if path.suffix.lower() not in IMAGE_FORMATS:
        raise ValueError(f"unsupported image type {path.suffix!r}; use {', '.join(IMAGE_FORMATS)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    return path
