"""Tables of series (pandas DataFrames, long or wide) to GluonTS entries and back.

The columns are detected or named (:func:`detect_layout`); parsing errors name the series,
column and row, so a user can fix the file. :mod:`lagllama.data.datasets` reads and writes files
with these; :mod:`lagllama.data.series_chunks` cuts large tables into chunks.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from gluonts.dataset import Dataset
from gluonts.dataset.common import ListDataset

#: Column names that mark long form (one row per series and timestamp), in order of preference.
ID_COLUMNS = ("item_id", "unique_id", "id", "series")
#: Time column names looked for when none is given (``ds`` is Nixtla's).
TIME_COLUMNS = ("timestamp", "ds")
#: Target column names looked for in long form when none is given (``y`` is Nixtla's).
TARGET_COLUMNS = ("target", "y", "value")


@dataclass(frozen=True)
class Layout:
    """Where a table keeps its series: the time column, plus the target (and id) column in long
    form; wide form (``target`` None) has one numeric column per series."""

    timestamp: str
    target: str | None = None
    item_id: str | None = None


def _pick(columns: Sequence[str], candidates: Sequence[str]) -> str | None:
    return next((c for c in candidates if c in columns), None)


def detect_layout(
    columns: Iterable[str],
    timestamp_column: str | None = None,
    target_column: str | None = None,
    item_id_column: str | None = None,
) -> Layout:
    """The layout of a table with ``columns``: given names are checked, the others detected.

    Long form when a column is named like an id (:data:`ID_COLUMNS`; Nixtla's
    ``unique_id``/``ds``/``y`` included) or a target column is given; otherwise wide form.
    Errors name the column and the flag (keyword argument) that fixes them.
    """
    columns = list(columns)
    time = timestamp_column or _pick(columns, TIME_COLUMNS)
    if time not in columns:
        also = "" if timestamp_column else f" (nor {', '.join(map(repr, TIME_COLUMNS[1:]))})"
        raise ValueError(
            f"time column {timestamp_column or TIME_COLUMNS[0]!r} not found{also}; columns are "
            f"{columns}; pass --timestamp-column NAME (timestamp_column=)"
        )
    for role, name, flag in (
        ("target", target_column, "--target-column"),
        ("item id", item_id_column, "--item-id-column"),
    ):
        if name is not None and name not in columns:
            raise ValueError(f"{role} column {name!r} not found; columns are {columns}; fix {flag}")
    item_id = item_id_column or _pick([c for c in columns if c != time], ID_COLUMNS)
    if item_id is None:
        return Layout(time, target_column)
    target = target_column
    if target is None:
        others = [c for c in columns if c not in (time, item_id)]
        target = _pick(others, TARGET_COLUMNS) or (others[0] if len(others) == 1 else None)
        if target is None:
            raise ValueError(
                f"long form (id column {item_id!r}) but no target column named "
                f"{' / '.join(TARGET_COLUMNS)} among {others}; pass --target-column NAME "
                "(target_column=)"
            )
    return Layout(time, target, item_id)


def _row(label: object) -> str:
    """A row label as users count rows: 1-based data rows (header not counted)."""
    return f"data row {label + 1}" if isinstance(label, (int, np.integer)) else f"row {label!r}"


def _numeric(values: pd.Series, column: str, wide: bool = False) -> np.ndarray:
    """Floats of ``values``; missing stays NaN, text or an infinite value raises a ValueError
    naming the column and the row."""
    numbers = pd.to_numeric(values, errors="coerce")
    bad = numbers.isna() & values.notna()
    if bad.any():
        example = values[bad].iloc[0]
        if wide and bad.sum() == values.notna().sum():
            raise ValueError(
                f"column {column!r} holds text (e.g. {example!r}), so the table is not in wide "
                "form (one numeric column per series); for long form name the id and target "
                "columns: --item-id-column NAME --target-column NAME (item_id_column=, "
                "target_column=)"
            )
        raise ValueError(
            f"target column {column!r} contains non-numeric text, e.g. {example!r} at "
            f"{_row(values.index[bad][0])} ({int(bad.sum())} value(s))"
        )
    values = numbers.to_numpy(dtype=float)
    infinite = np.isinf(values)
    if infinite.any():  # a model cannot scale it; missing would hide a data error
        raise ValueError(
            f"target column {column!r} has an infinite value at "
            f"{_row(numbers.index[infinite][0])} ({int(infinite.sum())} value(s)); "
            "replace it with a number, or leave the cell empty for a missing value"
        )
    return values


def _timestamps(values: pd.Series, column: str) -> pd.DatetimeIndex:
    try:
        index = pd.DatetimeIndex(pd.to_datetime(values))
    except (ValueError, TypeError) as err:
        raise ValueError(f"time column {column!r} has values that are not dates: {err}") from err
    if index.hasnans:
        raise ValueError(
            f"time column {column!r} is empty at {_row(values.index[index.isna()][0])}"
        )
    return index


def _check_duplicates(item_id: object, index: pd.DatetimeIndex, column: str) -> None:
    dup = index.duplicated()
    if dup.any():
        raise ValueError(
            f"duplicate timestamps for item {str(item_id)!r} in time column {column!r}: "
            f"{index[dup][0]}"
        )


#: One series of a table: its id as in the table, its timestamps and its values.
RawSeries = tuple[Any, pd.DatetimeIndex, np.ndarray]


def frame_series(df: pd.DataFrame, layout: Layout) -> list[RawSeries]:
    """The series of ``df`` in order of first appearance, ids exactly as in the table."""
    if df.empty:
        raise ValueError("the table has no rows")
    if layout.target is None:
        index = _timestamps(df[layout.timestamp], layout.timestamp)
        value_columns = [c for c in df.columns if c != layout.timestamp]
        if not value_columns:
            raise ValueError(f"wide data needs series columns besides {layout.timestamp!r}")
        return [(c, index, _numeric(df[c], str(c), wide=True)) for c in value_columns]
    if layout.item_id is None:
        groups: Iterable = [("0", df)]
    else:
        ids = df[layout.item_id]
        if ids.isna().any():
            raise ValueError(
                f"item id column {layout.item_id!r} is empty at {_row(ids.index[ids.isna()][0])}"
            )
        groups = df.groupby(layout.item_id, sort=False)
    return [
        (
            item_id,
            _timestamps(part[layout.timestamp], layout.timestamp),
            _numeric(part[layout.target], layout.target),
        )
        for item_id, part in groups
    ]


def infer_freq(series: Iterable[RawSeries], column: str) -> str:
    """The frequency of the first series with >= 3 regular timestamps.

    A duplicate timestamp is named as such (series and timestamp) rather than reported as an
    uninferable frequency; so is the first irregular series.
    """
    irregular = None
    for item_id, index, _ in series:
        _check_duplicates(item_id, index, column)
        if len(index) >= 3:
            freq = pd.infer_freq(index.sort_values())
            if freq is not None:
                return freq
            irregular = item_id if irregular is None else irregular
    reason = (
        f"series {str(irregular)!r} has irregular timestamps"
        if irregular is not None
        else "every series has fewer than 3 timestamps"
    )
    raise ValueError(
        f"cannot infer the frequency from time column {column!r} ({reason}); pass the "
        "frequency explicitly, e.g. --freq D (freq='D')"
    )


def _check_freq(freq: str) -> None:
    try:
        pd.tseries.frequencies.to_offset(freq)
    except ValueError as err:
        raise ValueError(f"unknown frequency {freq!r}: {err}") from err


def series_entry(
    item_id: object, index: pd.DatetimeIndex, values: np.ndarray, freq: str, column: str
) -> dict:
    """One GluonTS entry on a regular grid: gaps between timestamps become NaN."""
    _check_duplicates(item_id, index, column)
    series = pd.Series(values, index=index).sort_index()
    grid = pd.date_range(series.index[0], series.index[-1], freq=freq)
    if not series.index.isin(grid).all():
        off = series.index[~series.index.isin(grid)][0]
        raise ValueError(f"timestamp {off} of item {str(item_id)!r} is not on the {freq!r} grid")
    regular = series.reindex(grid)
    return {
        "item_id": str(item_id),
        "start": grid[:1].to_period()[0],
        "target": regular.to_numpy(dtype=np.float32),
    }


def from_dataframe(
    df: pd.DataFrame,
    timestamp_column: str | None = None,
    target_column: str | None = None,
    item_id_column: str | None = None,
    freq: str | None = None,
    covariates: Sequence[str] | None = None,
    past_covariates: Sequence[str] | None = None,
) -> ListDataset:
    """Convert a long or wide DataFrame into a GluonTS dataset.

    Long form: an id column (optional for one series), a time column and a target column;
    wide form: the time column plus one numeric column per series. Column names not given
    are detected (:func:`detect_layout`). The frequency is inferred with ``pd.infer_freq``
    unless given; missing values and gaps on the grid become NaN. Named ``covariates``
    (known-future) and ``past_covariates`` columns become ``feat_dynamic_real`` and
    ``past_feat_dynamic_real`` over each whole series (a backtest table holds the future).
    """
    if freq is not None:
        _check_freq(freq)
    layout = detect_layout(df.columns, timestamp_column, target_column, item_id_column)
    series = frame_series(df, layout)
    freq = freq or infer_freq(series, layout.timestamp)
    entries = [series_entry(i, idx, v, freq, layout.timestamp) for i, idx, v in series]
    if covariates or past_covariates:
        _add_covariates(df, layout, entries, covariates, past_covariates)
    return ListDataset(entries, freq=entries[0]["start"].freq)


def _add_covariates(df, layout, entries, covariates, past_covariates) -> None:
    from lagllama.forecasting.covariates import find_covariates, history_fields

    if layout.target is None:
        raise ValueError("covariates need long form (id, time, target and covariate columns)")
    columns = [c for c in (layout.item_id, layout.timestamp, layout.target) if c is not None]
    spec = find_covariates(df, columns, None, covariates, past_covariates, future_in_history=True)
    parts = (
        [df] if layout.item_id is None else [p for _, p in df.groupby(layout.item_id, sort=False)]
    )
    for entry, part in zip(entries, parts, strict=True):
        freq = entry["start"].freq
        grid = pd.period_range(entry["start"], periods=len(entry["target"]), freq=freq)
        entry.update(history_fields(part, grid.to_timestamp(), layout.timestamp, spec))


def period_timestamps(start: pd.Period, length: int) -> pd.DatetimeIndex:
    """Timestamps that read back to the same periods (weeks are labelled by their last day)."""
    periods = pd.period_range(start, periods=length, freq=start.freq)
    weekly = isinstance(start.freq, pd.offsets.Week)
    try:
        if weekly:
            return periods.to_timestamp(how="end").normalize()
        return periods.to_timestamp(how="start")
    except pd.errors.OutOfBoundsDatetime:  # e.g. M1's years 20-26: second resolution
        labels = periods.asfreq("D", how="end") if weekly else periods.asfreq("s", how="start")
        stamps = np.array(labels.strftime("%Y-%m-%dT%H:%M:%S"), dtype="datetime64[s]")
        return pd.DatetimeIndex(stamps)


def to_dataframe(
    dataset: Dataset,
    layout: str = "long",
    timestamp_column: str = "timestamp",
    target_column: str = "target",
    item_id_column: str = "item_id",
) -> pd.DataFrame:
    """A GluonTS dataset as a long (id, timestamp, target) or wide (timestamp x series) frame."""
    frames = []
    for i, entry in enumerate(dataset):
        target = np.asarray(entry["target"], dtype=float)
        index = period_timestamps(entry["start"], len(target))
        item_id = str(entry.get("item_id", i))
        frames.append(pd.Series(target, index=pd.Index(index, name=timestamp_column), name=item_id))
    if layout == "wide":
        return pd.concat(frames, axis=1).reset_index()
    if layout == "long":
        return pd.concat(
            [
                s.rename(target_column).reset_index().assign(**{item_id_column: s.name})
                for s in frames
            ],
            ignore_index=True,
        )[[item_id_column, timestamp_column, target_column]]
    raise ValueError(f"layout must be 'long' or 'wide', got {layout!r}")
