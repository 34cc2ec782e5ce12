"""Future forecasts of a user's series, as one tidy table, from a DataFrame or a file of any size.

The table has one row per (series, future timestamp) and the columns ``item_id``,
``timestamp``, ``mean`` and one column per quantile named by its level (``"0.1"``, ``"0.5"``,
``"0.9"``), the layout of Chronos/AutoGluon forecasts; CSV and parquet outputs are the same
table. Ids are the input's: their dtype is kept for DataFrames, parquet files and GluonTS
datasets, and CSV ids are kept as the text they are written as (``007`` stays ``007``).
Timestamps continue each series after its last one in the input's own frequency and
convention (``MS`` month starts, ``W-SUN`` week labels, business days, ...).

Models: a shipped checkpoint by name (:func:`lagllama.pretrained.available_models`), a
Lag-Llama checkpoint path, or a baseline (``seasonal-naive``, ``auto-ets``, ``auto-theta``,
``auto-arima``; NaNs are imputed for statsforecast, and a failed fit falls back to seasonal
naive), or an ensemble of them joined by ``+`` (:mod:`lagllama.ensemble`). With a ``seed``, each series draws its sample paths from its own generator, seeded from
the seed and a hash of its id, so its forecast depends only on its data, the model and the
seed: not on the batch, the chunk, or the Ray worker that ran it.

:func:`forecast_file` reads a long CSV/parquet file in chunks (a series' rows must be
contiguous: sorted by id, or at least grouped), forecasts them in batches and appends to a
temporary file beside the output, renamed at the end; on any error no output file is left.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from gluonts.core.component import validated
from gluonts.dataset import Dataset
from gluonts.model import Forecast, Predictor
from gluonts.transform import MapTransformation
from tqdm.auto import tqdm

from lagllama.data import (
    Layout,
    check_readable,
    detect_layout,
    frame_series,
    infer_freq,
    period_timestamps,
    series_entry,
)
from lagllama.ensemble import ENSEMBLE_SEPARATOR, member_predictors, split_members
from lagllama.evaluation import BASELINES, FORECAST_QUANTILES, BacktestTask, baseline
from lagllama.pretrained import DEFAULT_NAME, available_models

DEFAULT_QUANTILES = (0.1, 0.5, 0.9)
ID, TIME, MEAN = "item_id", "timestamp", "mean"
#: Input field holding each series' sampling seed (read by ``LagLlamaLightningModule.forward``).
SEED_FIELD = "sample_seed"
#: Rows read from a long file at a time; memory is bounded by this, not by the file.
CHUNK_ROWS = 100_000
#: Series per chunk for wide tables and GluonTS datasets.
CHUNK_SERIES = 1_000
OUTPUT_SUFFIXES = (".csv", ".parquet", ".pq")


def quantile_column(q: float) -> str:
    """Column name of quantile ``q``: its level as written, ``0.1`` -> ``"0.1"``."""
    return f"{q:g}"


def check_quantiles(quantiles: Iterable[float]) -> tuple[float, ...]:
    """``quantiles`` sorted and unique, or a ValueError naming the bad level."""
    levels = tuple(sorted({float(q) for q in quantiles}))
    if not levels:
        raise ValueError("give at least one quantile, e.g. 0.1,0.5,0.9")
    bad = [q for q in levels if not 0.0 < q < 1.0]
    if bad:
        raise ValueError(f"quantile {bad[0]:g} is outside (0, 1)")
    return levels


def series_seed(seed: int, item_id: object) -> int:
    """A 63-bit seed from the run's seed and a series id (SHA-256, the same in every process)."""
    digest = hashlib.sha256(f"{seed}\x1f{item_id}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


class AddSampleSeed(MapTransformation):
    """Adds ``sample_seed`` (a 0-d int64 array) to each entry: ``series_seed(seed, item_id)``."""

    @validated()
    def __init__(self, seed: int) -> None:
        self.seed = seed

    def map_transform(self, data: dict, is_train: bool) -> dict:
        value = series_seed(self.seed, data.get("item_id"))
        return {**data, SEED_FIELD: np.array(value, dtype=np.int64)}


# ------------------------------------------------------------------ models
def resolve_model(model: str) -> tuple[str, str]:
    """``("baseline", name)`` or ``("checkpoint", path)`` for a model given by name or path."""
    if model in BASELINES:
        return "baseline", model
    shipped = available_models()
    if model in shipped:
        from lagllama.pretrained import checkpoint_path

        return "checkpoint", str(checkpoint_path(model))
    path = Path(model)
    if path.suffix == ".ckpt" or path.exists():
        if not path.is_file():
            raise FileNotFoundError(f"checkpoint not found: {path}")
        return "checkpoint", str(path)
    raise ValueError(
        f"unknown model {model!r}; choose a shipped checkpoint ({', '.join(shipped) or 'none'}), "
        f"a checkpoint path (.ckpt) or a baseline ({', '.join(BASELINES)})"
    )


def resolve_models(model: str) -> list[tuple[str, str]]:
    """``[(member, baseline name or checkpoint path)]`` of one model or an ensemble ``a+b``
    (a member may be a baseline: ``lagllama-small+auto-theta``)."""
    if ENSEMBLE_SEPARATOR not in model or Path(model).is_file():
        return [(model, resolve_model(model)[1])]
    members = split_members(model)
    if all(m in BASELINES for m in members):
        raise ValueError(f"the ensemble {model} needs at least one Lag-Llama member")
    return [(m, resolve_model(m)[1]) for m in members]


def lag_llama_predictor(
    checkpoint: str | Path,
    prediction_length: int,
    num_samples: int = 100,
    batch_size: int = 64,
    seed: int | None = 0,
    sampling_precision: str = "32",
) -> Predictor:
    """A zero-shot Lag-Llama predictor; with ``seed``, one random generator per series;
    ``sampling_precision="bf16"`` samples under bf16 autocast (see ``LagLlamaModel.sample``)."""
    from gluonts.torch.model.predictor import PyTorchPredictor

    from lagllama.estimators import LagLlamaEstimator

    estimator = LagLlamaEstimator.from_checkpoint(
        checkpoint,
        prediction_length=prediction_length,
        num_parallel_samples=num_samples,
        batch_size=batch_size,
        sampling_precision=sampling_precision,
    )
    plain = estimator.create_zero_shot_predictor()
    if seed is None:
        return plain
    return PyTorchPredictor(
        input_names=[*plain.input_names, SEED_FIELD],
        prediction_net=plain.prediction_net,
        batch_size=plain.batch_size,
        prediction_length=prediction_length,
        input_transform=AddSampleSeed(seed) + plain.input_transform,
        forecast_generator=plain.forecast_generator,
        device=plain.device,
    )


# ------------------------------------------------------------------ series
@dataclass
class SeriesChunk:
    """Whole series ready to forecast: original ids, GluonTS entries and the future timestamps."""

    ids: pd.Series
    entries: list[dict]
    future: list[pd.DatetimeIndex]

    @property
    def freq(self) -> str:
        """The period frequency of the entries (``"M"``, ``"W-SUN"``, ``"h"``, ...)."""
        return self.entries[0]["start"].freqstr


def frame_chunk(
    df: pd.DataFrame, layout: Layout, freq: str | None, prediction_length: int
) -> tuple[SeriesChunk, str]:
    """The series of ``df`` (long or wide) as a chunk, and the input frequency (inferred once).

    Errors name the series: duplicate or off-grid timestamps, text, no observed value.
    """
    series = frame_series(df, layout)
    freq = freq or infer_freq(series, layout.timestamp)
    entries, future = [], []
    for item_id, index, values in series:
        entry = series_entry(item_id, index, values, freq, layout.timestamp)
        if np.isnan(entry["target"]).all():
            raise ValueError(f"series {str(item_id)!r} has no observed value")
        entries.append(entry)
        future.append(pd.date_range(index.max(), periods=prediction_length + 1, freq=freq)[1:])
    dtype = df[layout.item_id].dtype if layout.item_id else None
    ids = pd.Series([item_id for item_id, _, _ in series], dtype=dtype)
    return SeriesChunk(ids, entries, future), freq


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
        start = pd.Period(entry["start"])
        ids.append(item_id)
        entries.append({"item_id": str(item_id), "start": start, "target": target})
        future.append(period_timestamps(start + len(target), prediction_length))
        if len(entries) == size:
            yield SeriesChunk(pd.Series(ids), entries, future)
            ids, entries, future = [], [], []
    if entries:
        yield SeriesChunk(pd.Series(ids), entries, future)


# ------------------------------------------------------------------ forecasting
class Forecaster:
    """One model, loaded once, turning chunks of series into tidy forecast tables.

    ``counts`` tallies series, series with missing values, imputed inputs and fallbacks.
    """

    def __init__(
        self,
        model: str,
        prediction_length: int,
        freq: str,
        quantiles: Sequence[float] = DEFAULT_QUANTILES,
        num_samples: int = 100,
        seed: int | None = 0,
        batch_size: int = 64,
    ) -> None:
        if prediction_length < 1:
            raise ValueError(f"prediction length must be >= 1, got {prediction_length}")
        self.prediction_length = prediction_length
        self.quantiles = check_quantiles(quantiles)
        levels = sorted({*FORECAST_QUANTILES, *self.quantiles})
        task = BacktestTask(model, [], prediction_length, freq)
        paths = dict(resolve_models(model))
        self.predictor = member_predictors(
            list(paths),
            lambda name, n: lag_llama_predictor(
                paths[name], prediction_length, n, batch_size, seed
            ),
            lambda name: baseline(name, quantile_levels=levels)(task),
            num_samples,
            levels,
        )
        self.counts: Counter[str] = Counter()

    def predict(self, entries: list[dict]) -> list[Forecast]:
        """GluonTS forecasts of ``entries``, in order."""
        forecasts = list(self.predictor.predict(entries))
        self.counts["series"] += len(entries)
        self.counts["missing"] += sum(bool(np.isnan(e["target"]).any()) for e in entries)
        self.counts["imputed"] += getattr(self.predictor, "num_imputed", 0)
        self.counts["fallbacks"] += getattr(self.predictor, "num_fallbacks", 0)
        return forecasts

    def table(self, chunk: SeriesChunk) -> pd.DataFrame:
        """The tidy forecast table of a chunk: id, timestamp, mean, one column per quantile."""
        forecasts = self.predict(chunk.entries)
        h = self.prediction_length
        columns: dict[str, Any] = {
            ID: chunk.ids.repeat(h).reset_index(drop=True),
            # microseconds hold every date a Period can (nanoseconds end in 2262)
            TIME: pd.DatetimeIndex(
                np.concatenate([f.as_unit("us").to_numpy() for f in chunk.future])
            ),
            MEAN: np.concatenate([f.mean for f in forecasts]),
        }
        for q in self.quantiles:
            columns[quantile_column(q)] = np.concatenate([f.quantile(q) for f in forecasts])
        return pd.DataFrame(columns)


def summary_line(counts: Counter[str]) -> str:
    """One line on what was forecast and how missing values were handled."""
    return (
        f"{counts['series']} series forecast; {counts['missing']} had missing values "
        f"({counts['imputed']} imputed, the rest masked by the model); "
        f"{counts['fallbacks']} fell back to seasonal naive"
    )


def forecast(
    data: pd.DataFrame | Dataset,
    prediction_length: int,
    model: str = DEFAULT_NAME,
    quantiles: Sequence[float] = DEFAULT_QUANTILES,
    num_samples: int = 100,
    seed: int | None = 0,
    *,
    freq: str | None = None,
    timestamp_column: str | None = None,
    target_column: str | None = None,
    item_id_column: str | None = None,
    batch_size: int = 64,
) -> pd.DataFrame:
    """Forecast ``prediction_length`` steps past the end of every series.

    ``data``: a long or wide DataFrame (columns detected as in
    :func:`lagllama.data.detect_layout`, or named with the keyword arguments) or a GluonTS
    dataset. ``seed=None`` samples from torch's global RNG (as a GluonTS predictor does).
    Returns the tidy table described in the module docstring.
    """
    make = _forecaster_factory(model, prediction_length, quantiles, num_samples, seed, batch_size)
    if isinstance(data, pd.DataFrame):
        layout = detect_layout(data.columns, timestamp_column, target_column, item_id_column)
        chunks: Iterable[SeriesChunk] = [frame_chunk(data, layout, freq, prediction_length)[0]]
    else:
        chunks = dataset_chunks(data, prediction_length)
    forecaster = None
    tables = []
    for chunk in chunks:
        forecaster = forecaster or make(chunk.freq)
        tables.append(forecaster.table(chunk))
    if not tables:
        raise ValueError("no series to forecast")
    return pd.concat(tables, ignore_index=True)


def _forecaster_factory(
    model: str,
    prediction_length: int,
    quantiles: Sequence[float],
    num_samples: int,
    seed: int | None,
    batch_size: int,
) -> Callable[[str], Forecaster]:
    """Check the arguments now; build the forecaster once the data's frequency is known."""
    if prediction_length < 1:
        raise ValueError(f"prediction length must be >= 1, got {prediction_length}")
    resolve_models(model)
    check_quantiles(quantiles)
    if num_samples < 1:
        raise ValueError(f"number of samples must be >= 1, got {num_samples}")

    def make(freq: str) -> Forecaster:
        return Forecaster(model, prediction_length, freq, quantiles, num_samples, seed, batch_size)

    return make


# ------------------------------------------------------------------ files
def _read_columns(path: Path) -> list[str]:
    if path.suffix.lower() == ".csv":
        return list(pd.read_csv(path, nrows=0).columns)
    import pyarrow.parquet as pq

    return list(pq.ParquetFile(path).schema_arrow.names)


def _row_batches(path: Path, layout: Layout, rows: int) -> Iterator[pd.DataFrame]:
    """Rows of a long file in order, ``rows`` at a time (CSV ids read as text)."""
    columns = [c for c in (layout.item_id, layout.timestamp, layout.target) if c is not None]
    if path.suffix.lower() == ".csv":
        dtype = {layout.item_id: str} if layout.item_id else None
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


def file_chunks(
    path: str | Path,
    prediction_length: int,
    freq: str | None = None,
    timestamp_column: str | None = None,
    target_column: str | None = None,
    item_id_column: str | None = None,
    chunk_rows: int = CHUNK_ROWS,
) -> Iterator[SeriesChunk]:
    """Chunks of whole series from a CSV or parquet file, long or wide, read ``chunk_rows`` rows
    at a time in long form (wide files hold one column per series and are read whole)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such file: {path}")
    if path.suffix.lower() not in (".csv", ".parquet", ".pq"):
        raise ValueError(f"unsupported file type {path.suffix!r} for {path}; use .csv or .parquet")
    check_readable(path)
    layout = detect_layout(_read_columns(path), timestamp_column, target_column, item_id_column)
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
        parts = _whole_series(_row_batches(path, layout, chunk_rows), layout.item_id)
    empty = True
    for part in parts:
        empty = False
        chunk, freq = frame_chunk(part, layout, freq, prediction_length)
        yield chunk
    if empty:
        raise ValueError(f"{path} has no rows")


@contextmanager
def atomic_table(path: str | Path) -> Iterator[Callable[[pd.DataFrame], None]]:
    """Append tables to a temporary file beside ``path``, renamed to ``path`` on success.

    On any error the temporary file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in OUTPUT_SUFFIXES:
        raise ValueError(f"output {path} must end in .csv or .parquet")
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
    """What a run wrote: the output path, its row count, the tallies, the seconds it took."""

    output: Path
    rows: int = 0
    counts: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0


def forecast_chunks(
    chunks: Iterable[SeriesChunk],
    output: str | Path,
    prediction_length: int,
    model: str = DEFAULT_NAME,
    quantiles: Sequence[float] = DEFAULT_QUANTILES,
    num_samples: int = 100,
    seed: int | None = 0,
    batch_size: int = 64,
    progress: bool = True,
) -> ForecastRun:
    """Forecast chunk after chunk and append each table to ``output`` (.csv or .parquet)."""
    make = _forecaster_factory(model, prediction_length, quantiles, num_samples, seed, batch_size)
    run = ForecastRun(Path(output))
    start = time.perf_counter()
    forecaster = None
    with (
        atomic_table(output) as write,
        tqdm(unit="series", desc="forecast", disable=not progress, smoothing=0.1) as bar,
    ):
        for chunk in chunks:
            forecaster = forecaster or make(chunk.freq)
            table = forecaster.table(chunk)
            write(table)
            run.rows += len(table)
            bar.update(len(chunk.entries))
    if forecaster is not None:
        run.counts = forecaster.counts
    run.seconds = time.perf_counter() - start
    return run


def forecast_file(
    path: str | Path,
    output: str | Path,
    prediction_length: int,
    model: str = DEFAULT_NAME,
    quantiles: Sequence[float] = DEFAULT_QUANTILES,
    num_samples: int = 100,
    seed: int | None = 0,
    *,
    freq: str | None = None,
    timestamp_column: str | None = None,
    target_column: str | None = None,
    item_id_column: str | None = None,
    batch_size: int = 64,
    chunk_rows: int = CHUNK_ROWS,
    progress: bool = True,
) -> ForecastRun:
    """Forecast every series of a CSV/parquet file into ``output``, in bounded memory."""
    chunks = file_chunks(
        path,
        prediction_length,
        freq,
        timestamp_column,
        target_column,
        item_id_column,
        chunk_rows,
    )
    return forecast_chunks(
        chunks,
        output,
        prediction_length,
        model,
        quantiles,
        num_samples,
        seed,
        batch_size,
        progress,
    )
