"""Whole series ready to forecast, in chunks: from a DataFrame (long or wide) or a GluonTS
dataset.

A chunk holds each series' original id, its GluonTS entry (with covariate fields, if any) and
its future timestamps, so a forecast table can be built without the input. Reading files in
chunks is :mod:`lagllama.forecasting.files`; forecasting the chunks is :mod:`lagllama.forecasting.api`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from gluonts.dataset import Dataset

from lagllama.data.tables import Layout, frame_series, infer_freq, period_timestamps, series_entry
from lagllama.forecasting.covariates import KNOWN, PAST, Covariates, covariate_fields

#: Series per chunk for wide tables and GluonTS datasets.
CHUNK_SERIES = 1_000
NO_COVARIATES = Covariates()


@dataclass
class SeriesChunk:
    """Whole series ready to forecast: original ids, GluonTS entries and the future timestamps.

    ``counts`` tallies what reading found that the forecast summary should name:
    ``past_only:NAME``, series with a past-only covariate, which zero-shot forecasts ignore.
    """

    ids: pd.Series
    entries: list[dict]
    future: list[pd.DatetimeIndex]
    counts: Counter[str] = field(default_factory=Counter)

    @property
    def freq(self) -> str:
        """The period frequency of the entries (``"M"``, ``"W-SUN"``, ``"h"``, ...)."""
        return self.entries[0]["start"].freqstr


def frame_chunk(
    df: pd.DataFrame,
    layout: Layout,
    freq: str | None,
    prediction_length: int,
    future: Mapping[str, pd.DataFrame] | None = None,
    covariates: Covariates = NO_COVARIATES,
) -> tuple[SeriesChunk, str]:
    """The series of ``df`` (long or wide) as a chunk, and the input frequency (inferred once).

    ``future``: the future table's rows by series id (:func:`lagllama.forecasting.covariates.future_groups`),
    needed for known-future ``covariates``. Errors name the series: duplicate or off-grid
    timestamps, text, an infinite target, no observed value; missing future rows or values.
    """
    series = frame_series(df, layout)
    freq = freq or infer_freq(series, layout.timestamp)
    parts = dict(_series_frames(df, layout)) if covariates else {}
    entries, future_index = [], []
    for item_id, index, values in series:
        entry = series_entry(item_id, index, values, freq, layout.timestamp)
        if np.isnan(entry["target"]).all():
            raise ValueError(f"series {str(item_id)!r} has no observed value")
        ahead = pd.date_range(index.max(), periods=prediction_length + 1, freq=freq)[1:]
        if covariates:
            grid = pd.date_range(index.min(), index.max(), freq=freq)
            entry.update(
                covariate_fields(
                    item_id, parts[item_id], grid, future or {}, ahead, layout.timestamp, covariates
                )
            )
        entries.append(entry)
        future_index.append(ahead)
    dtype = df[layout.item_id].dtype if layout.item_id else None
    ids = pd.Series([item_id for item_id, _, _ in series], dtype=dtype)
    counts = Counter({f"past_only:{name}": len(entries) for name in covariates.past})
    return SeriesChunk(ids, entries, future_index, counts), freq


def _series_frames(df: pd.DataFrame, layout: Layout) -> Iterator[tuple[Any, pd.DataFrame]]:
    """Each long-form series' rows, by id as in the table (covariates are long form only)."""
    if layout.target is None:
        raise ValueError(
            "covariates need long form (id, time, target and covariate columns); the table is "
            "wide (one column per series)"
        )
    if layout.item_id is None:
        yield "0", df
        return
    yield from df.groupby(layout.item_id, sort=False)


def dataset_chunks(
    dataset: Dataset, prediction_length: int, size: int = CHUNK_SERIES
) -> Iterator[SeriesChunk]:
    """A GluonTS dataset in chunks of ``size`` series (ids default to the series' position)."""
    ids, entries, future = [], [], []
    for i, entry in enumerate(dataset):
        target = np.asarray(entry["target"], dtype=np.float32)
        item_id = entry.get("item_id", i)
        if np.isnan(target).all():
            raise ValueError(f"series {str(item_id)!r} has no observed value")
        if np.isinf(target).any():
            raise ValueError(
                f"series {str(item_id)!r} has an infinite target value at position "
                f"{int(np.flatnonzero(np.isinf(target))[0])}"
            )
        start = pd.Period(entry["start"])
        ids.append(item_id)
        fields = {k: np.asarray(entry[k], dtype=np.float32) for k in (KNOWN, PAST) if k in entry}
        if KNOWN in fields and fields[KNOWN].shape[-1] != len(target) + prediction_length:
            raise ValueError(
                f"series {str(item_id)!r}: {KNOWN} has {fields[KNOWN].shape[-1]} steps, it "
                f"needs the history and the forecast: {len(target)} + {prediction_length}"
            )
        entries.append({"item_id": str(item_id), "start": start, "target": target, **fields})
        future.append(period_timestamps(start + len(target), prediction_length))
        if len(entries) == size:
            yield SeriesChunk(pd.Series(ids), entries, future)
            ids, entries, future = [], [], []
    if entries:
        yield SeriesChunk(pd.Series(ids), entries, future)


def layout_columns(layout: Layout) -> list[str]:
    return [c for c in (layout.item_id, layout.timestamp, layout.target) if c is not None]
