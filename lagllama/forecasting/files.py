"""Forecasts of CSV/parquet files of any size: read in chunks, written atomically.

:func:`forecast_file` reads a long CSV/parquet file in chunks (a series' rows must be
contiguous: sorted by id, or at least grouped), forecasts them in batches and appends to a
temporary file beside the output, renamed at the end; on any error no output file is left.
The input is checked (file, columns, the first chunk's rows, the future table against every
series' last timestamp) before any progress bar or output file appears. Memory is bounded by
the chunk size, not by the file.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from lagllama.data.datasets import check_readable
from lagllama.data.series_chunks import (
    CHUNK_SERIES,
    NO_COVARIATES,
    SeriesChunk,
    frame_chunk,
    layout_columns,
)
from lagllama.data.tables import Layout, detect_layout
from lagllama.forecasting.api import fitted_forecaster
from lagllama.forecasting.covariates import (
    Covariates,
    find_covariates,
    future_covariates,
    future_groups,
)
from lagllama.forecasting.options import ForecastOptions

#: Rows read from a long file at a time; memory is bounded by this, not by the file.
CHUNK_ROWS = 100_000
OUTPUT_SUFFIXES = (".csv", ".parquet", ".pq")


def _read_columns(path: Path) -> list[str]:
    if path.suffix.lower() == ".csv":
        return list(pd.read_csv(path, nrows=0).columns)
    import pyarrow.parquet as pq

    return list(pq.ParquetFile(path).schema_arrow.names)


def _check_table_file(path: Path) -> None:
    if not path.exists():
        raise FileNotFoundError(f"no such file: {path}")
    if path.suffix.lower() not in (".csv", ".parquet", ".pq"):
        raise ValueError(f"unsupported file type {path.suffix!r} for {path}; use .csv or .parquet")
    check_readable(path)


def _read_table(path: Path, id_column: str | None) -> pd.DataFrame:
    """A whole CSV/parquet table (CSV ids read as text)."""
    if path.suffix.lower() == ".csv":
        return pd.read_csv(path, dtype={id_column: str} if id_column else None)
    return pd.read_parquet(path)


def _row_batches(
    path: Path, id_column: str | None, rows: int, columns: Sequence[str] | None
) -> Iterator[pd.DataFrame]:
    """Rows of a long file in order, ``rows`` at a time (CSV ids read as text), of ``columns``
    (None: every column)."""
    columns = None if columns is None else list(columns)
    if path.suffix.lower() == ".csv":
        dtype = {id_column: str} if id_column else None
        yield from pd.read_csv(path, usecols=columns, dtype=dtype, chunksize=rows)
        return
    import pyarrow.parquet as pq

    for batch in pq.ParquetFile(path).iter_batches(batch_size=rows, columns=columns):
        yield batch.to_pandas()


def _whole_series(batches: Iterable[pd.DataFrame], id_column: str) -> Iterator[pd.DataFrame]:
    """Frames of whole series from row batches: the last id of a batch waits for the next.

    Each id's rows must be contiguous; an id seen again later is an error naming it and its
    row (remembering finished ids costs one set entry per series).
    """
    carry: pd.DataFrame | None = None
    seen: set = set()
    offset = 0
    for batch in batches:
        if batch.empty:
            continue
        batch.index = pd.RangeIndex(offset, offset + len(batch))
        offset += len(batch)
        frame = batch if carry is None else pd.concat([carry, batch])
        ids = frame[id_column]
        starts = np.flatnonzero(ids.ne(ids.shift()).to_numpy())
        done, carry = frame.iloc[: starts[-1]], frame.iloc[starts[-1] :]
        _check_contiguous(done, id_column, seen)
        if len(done):
            yield done
    if carry is not None:
        _check_contiguous(carry, id_column, seen)
        yield carry


def _check_contiguous(frame: pd.DataFrame, id_column: str, seen: set) -> None:
    ids = frame[id_column]
    runs = ids[ids.ne(ids.shift())]
    for label, item_id in runs.items():
        if item_id in seen:
            raise ValueError(
                f"the rows of series {str(item_id)!r} are not contiguous (it appears again at "
                f"data row {label + 1}); sort the file by {id_column!r}"
            )
        seen.add(item_id)


def _covariates(
    history: pd.DataFrame,
    layout: Layout,
    future: pd.DataFrame | None,
    covariates: Sequence[str] | None,
    past_covariates: Sequence[str] | None,
) -> Covariates:
    """The covariates of a long table: none without a future table or named covariates
    (other columns ignored, as zero-shot models could not use past-only ones anyway), and
    none in a wide table (one column per series)."""
    if future is None and not covariates and not past_covariates:
        return NO_COVARIATES
    if layout.target is None:
        if future is not None or covariates or past_covariates:
            raise ValueError(
                "covariates need long form (id, time, target and covariate columns); the table "
                "is wide (one column per series)"
            )
        return NO_COVARIATES
    return find_covariates(history, layout_columns(layout), future, covariates, past_covariates)


def _check_future_rows(
    path: Path,
    layout: Layout,
    freq: str,
    prediction_length: int,
    future: Mapping[str, pd.DataFrame],
    spec: Covariates,
    chunk_rows: int,
) -> None:
    """Check that the future table has every series' forecast steps and values, from a pass
    over the history's ids and timestamps alone, so that a bad future table fails before any
    progress bar or output file, not at the chunk that needs it."""
    columns = [layout.item_id, layout.timestamp]
    lasts = [
        pd.to_datetime(batch[layout.timestamp], errors="coerce")
        .groupby(batch[layout.item_id], sort=False)
        .max()
        for batch in _row_batches(path, layout.item_id, chunk_rows, columns)
    ]
    last = pd.concat(lasts).groupby(level=0, sort=False).max().dropna()
    for item_id, end in last.items():
        ahead = pd.date_range(end, periods=prediction_length + 1, freq=freq)[1:]
        future_covariates(item_id, future, ahead, spec)


def file_chunks(
    path: str | Path,
    prediction_length: int,
    freq: str | None = None,
    timestamp_column: str | None = None,
    target_column: str | None = None,
    item_id_column: str | None = None,
    chunk_rows: int = CHUNK_ROWS,
    future_file: str | Path | None = None,
    covariates: Sequence[str] | None = None,
    past_covariates: Sequence[str] | None = None,
) -> Iterator[SeriesChunk]:
    """Chunks of whole series from a CSV or parquet file, long or wide, read ``chunk_rows`` rows
    at a time in long form (wide files hold one column per series and are read whole).

    ``future_file`` (read whole: h rows a series) holds the known-future covariates; the
    history's other columns are covariates (:mod:`lagllama.forecasting.covariates`)."""
    path = Path(path)
    _check_table_file(path)
    columns = _read_columns(path)
    layout = detect_layout(columns, timestamp_column, target_column, item_id_column)
    future_df = None
    if future_file is not None:
        _check_table_file(Path(future_file))
        future_df = _read_table(Path(future_file), layout.item_id)
    # names checked before any row is read
    spec = _covariates(
        pd.DataFrame(columns=columns), layout, future_df, covariates, past_covariates
    )
    future = future_groups(future_df, layout.item_id, layout.timestamp) if spec.known else None
    if layout.target is None or layout.item_id is None:
        frame = pd.read_csv(path) if path.suffix.lower() == ".csv" else pd.read_parquet(path)
        if layout.target is None:  # wide: chunks of columns
            values = [c for c in frame.columns if c != layout.timestamp]
            parts = [
                frame[[layout.timestamp, *values[i : i + CHUNK_SERIES]]]
                for i in range(0, max(len(values), 1), CHUNK_SERIES)
            ]
        else:
            parts = [frame]
    else:
        columns = None if spec else layout_columns(layout)
        batches = _row_batches(path, layout.item_id, chunk_rows, columns)
        parts = _whole_series(batches, layout.item_id)
    empty = True
    for part in parts:
        if spec:  # categorical levels from this chunk's rows
            spec = _covariates(part, layout, future_df, covariates, past_covariates)
        chunk, freq = frame_chunk(part, layout, freq, prediction_length, future, spec)
        if empty and future is not None and layout.item_id is not None:
            _check_future_rows(path, layout, freq, prediction_length, future, spec, chunk_rows)
        empty = False
        yield chunk
    if empty:
        raise ValueError(f"{path} has no rows")


def check_output(path: str | Path) -> Path:
    """``path`` if it names a table this module writes (.csv, .parquet), else a ValueError."""
    path = Path(path)
    if path.suffix.lower() not in OUTPUT_SUFFIXES:
        raise ValueError(f"output {path} must end in .csv or .parquet")
    return path


@contextmanager
def atomic_table(path: str | Path) -> Iterator[Callable[[pd.DataFrame], None]]:
    """Append tables to a temporary file beside ``path``, renamed to ``path`` on success.

    On any error the temporary file is removed and ``path`` is left as it was.
    """
    path = check_output(path)
    suffix = path.suffix.lower()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    writer = None

    def write(table: pd.DataFrame) -> None:
        nonlocal writer
        if suffix == ".csv":
            table.to_csv(tmp, mode="a" if writer else "w", header=writer is None, index=False)
            writer = True
            return
        import pyarrow as pa
        import pyarrow.parquet as pq

        if writer is None:
            arrow = pa.Table.from_pandas(table, preserve_index=False)
            writer = pq.ParquetWriter(tmp, arrow.schema)
        else:
            arrow = pa.Table.from_pandas(table, schema=writer.schema, preserve_index=False)
        writer.write_table(arrow)

    try:
        yield write
        if writer is None:
            raise ValueError("no forecasts to write")
        if suffix != ".csv":
            writer.close()
        os.replace(tmp, path)
    except BaseException:
        if writer is not None and suffix != ".csv":
            writer.close()
        tmp.unlink(missing_ok=True)
        raise


@dataclass
class ForecastRun:
    """What a run wrote: the output path, its row count, the tallies, the seconds it took and
    a hybrid's member weights (fitted once over the whole input)."""

    output: Path
    rows: int = 0
    counts: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0
    weights: dict[str, float] | None = None


def forecast_chunks(
    source: Callable[[], Iterable[SeriesChunk]],
    output: str | Path,
    options: ForecastOptions,
    progress: bool = True,
) -> ForecastRun:
    """Forecast the chunks ``source()`` yields and append each table to ``output`` (.csv or
    .parquet); a hybrid's weights are fitted on a first pass over ``source()``.

    The output's name, the first chunk (the file exists, is readable and its first rows
    parse) and the model are checked before the progress bar starts.
    """
    run = ForecastRun(check_output(output))
    start = time.perf_counter()
    forecaster, chunks = fitted_forecaster(options, source)
    with (
        atomic_table(output) as write,
        tqdm(unit="series", desc="forecast", disable=not progress, smoothing=0.1) as bar,
    ):
        for chunk in chunks:
            table = forecaster.table(chunk)
            write(table)
            run.rows += len(table)
            run.counts.update(chunk.counts)
            bar.update(len(chunk.entries))
    run.counts.update(forecaster.counts)
    run.weights = forecaster.weights
    run.seconds = time.perf_counter() - start
    return run


def forecast_file(
    path: str | Path,
    output: str | Path,
    options: ForecastOptions,
    *,
    freq: str | None = None,
    timestamp_column: str | None = None,
    target_column: str | None = None,
    item_id_column: str | None = None,
    chunk_rows: int = CHUNK_ROWS,
    progress: bool = True,
    future_file: str | Path | None = None,
    covariates: Sequence[str] | None = None,
    past_covariates: Sequence[str] | None = None,
) -> ForecastRun:
    """Forecast every series of a CSV/parquet file into ``output``, in bounded memory;
    ``future_file`` holds known-future covariates (see :func:`file_chunks`)."""

    def source() -> Iterator[SeriesChunk]:
        return file_chunks(
            path,
            options.prediction_length,
            freq,
            timestamp_column,
            target_column,
            item_id_column,
            chunk_rows,
            future_file,
            covariates,
            past_covariates,
        )

    return forecast_chunks(source, output, options, progress)
