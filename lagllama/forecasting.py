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
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
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

from lagllama.covariates import (
    KNOWN,
    PAST,
    Covariates,
    InContextRegression,
    covariate_fields,
    find_covariates,
    future_groups,
)
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
NO_COVARIATES = Covariates()


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
    df: pd.DataFrame,
    layout: Layout,
    freq: str | None,
    prediction_length: int,
    future: Mapping[str, pd.DataFrame] | None = None,
    covariates: Covariates = NO_COVARIATES,
) -> tuple[SeriesChunk, str]:
    """The series of ``df`` (long or wide) as a chunk, and the input frequency (inferred once).

    ``future``: the future table's rows by series id (:func:`lagllama.covariates.future_groups`),
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
            rows = None
            if covariates.known:
                rows = (future or {}).get(str(item_id))
                if rows is None:
                    raise ValueError(
                        f"the future table has no rows for series {str(item_id)!r}; it needs "
                        f"{prediction_length} rows from {ahead[0]} to {ahead[-1]}"
                    )
            entry.update(
                covariate_fields(
                    item_id, parts[item_id], grid, rows, ahead, layout.timestamp, covariates
                )
            )
        entries.append(entry)
        future_index.append(ahead)
    dtype = df[layout.item_id].dtype if layout.item_id else None
    ids = pd.Series([item_id for item_id, _, _ in series], dtype=dtype)
    return SeriesChunk(ids, entries, future_index), freq


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
        self.regression = InContextRegression(self.predictor)
        self.counts: Counter[str] = Counter()

    def predict(self, entries: list[dict]) -> list[Forecast]:
        """GluonTS forecasts of ``entries``, in order; known-future covariates by in-context
        regression (:mod:`lagllama.covariates`), none: the model's own forecasts."""
        with_covariates = any(KNOWN in e for e in entries)
        if with_covariates:
            self.regression.counts.clear()
            forecasts = list(self.regression.predict(entries))
            self.counts.update(self.regression.counts)
        else:
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
    """One line on what was forecast and how missing values and covariates were handled."""
    line = (
        f"{counts['series']} series forecast; {counts['missing']} had missing values "
        f"({counts['imputed']} imputed, the rest masked by the model); "
        f"{counts['fallbacks']} fell back to seasonal naive"
    )
    unregressed = counts["not_regressed_constant"] + counts["not_regressed_too_few_points"]
    if counts["regressed"] or unregressed:
        line += (
            f"; covariates by in-context regression on {counts['regressed']} series "
            f"({counts['constant_covariates']} constant covariate(s) dropped within a series; "
            f"{counts['not_regressed_constant']} series with no varying covariate and "
            f"{counts['not_regressed_too_few_points']} with fewer points than covariates + 2 "
            "forecast without them)"
        )
    return line


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
    future_df: pd.DataFrame | None = None,
    covariates: Sequence[str] | None = None,
    past_covariates: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Forecast ``prediction_length`` steps past the end of every series.

    ``data``: a long or wide DataFrame (columns detected as in
    :func:`lagllama.data.detect_layout`, or named with the keyword arguments) or a GluonTS
    dataset (with ``feat_dynamic_real`` covering history and future, if any). ``future_df``:
    id, time and the known-future covariates at every forecast step (conventions in
    :mod:`lagllama.covariates`). ``seed=None`` samples from torch's global RNG (as a GluonTS
    predictor does). Returns the tidy table described in the module docstring.
    """
    make = _forecaster_factory(model, prediction_length, quantiles, num_samples, seed, batch_size)
    if isinstance(data, pd.DataFrame):
        layout = detect_layout(data.columns, timestamp_column, target_column, item_id_column)
        spec = find_covariates(
            data, _layout_columns(layout), future_df, covariates, past_covariates
        )
        future = future_groups(future_df, layout.item_id) if spec.known else None
        chunk, _ = frame_chunk(data, layout, freq, prediction_length, future, spec)
        chunks: Iterable[SeriesChunk] = [chunk]
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


def _layout_columns(layout: Layout) -> list[str]:
    return [c for c in (layout.item_id, layout.timestamp, layout.target) if c is not None]


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
    return find_covariates(history, _layout_columns(layout), future, covariates, past_covariates)


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
    path: Path, layout: Layout, rows: int, every_column: bool = False
) -> Iterator[pd.DataFrame]:
    """Rows of a long file in order, ``rows`` at a time (CSV ids read as text); the layout's
    columns, or ``every_column`` (covariates)."""
    columns = None if every_column else _layout_columns(layout)
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
    future_file: str | Path | None = None,
    covariates: Sequence[str] | None = None,
    past_covariates: Sequence[str] | None = None,
) -> Iterator[SeriesChunk]:
    """Chunks of whole series from a CSV or parquet file, long or wide, read ``chunk_rows`` rows
    at a time in long form (wide files hold one column per series and are read whole).

    ``future_file`` (read whole: h rows a series) holds the known-future covariates; the
    history's other columns are covariates (:mod:`lagllama.covariates`)."""
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
    future = future_groups(future_df, layout.item_id) if spec.known else None
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
        batches = _row_batches(path, layout, chunk_rows, every_column=bool(spec))
        parts = _whole_series(batches, layout.item_id)
    empty = True
    for part in parts:
        empty = False
        if spec:  # categorical levels from this chunk's rows
            spec = _covariates(part, layout, future_df, covariates, past_covariates)
        chunk, freq = frame_chunk(part, layout, freq, prediction_length, future, spec)
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
    future_file: str | Path | None = None,
    covariates: Sequence[str] | None = None,
    past_covariates: Sequence[str] | None = None,
) -> ForecastRun:
    """Forecast every series of a CSV/parquet file into ``output``, in bounded memory;
    ``future_file`` holds known-future covariates (see :func:`file_chunks`)."""
    chunks = file_chunks(
        path,
        prediction_length,
        freq,
        timestamp_column,
        target_column,
        item_id_column,
        chunk_rows,
        future_file,
        covariates,
        past_covariates,
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
