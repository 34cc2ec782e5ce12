"""Load forecasting data: Monash/GluonTS datasets by name, `.tsf` files, CSV/parquet/DataFrames.

Everything is returned as GluonTS datasets (entries with ``start`` as a ``pd.Period``,
``target`` as a float array with NaN for missing values, ``item_id`` as a string), so any
GluonTS predictor and :mod:`lagllama.evaluation` can consume it directly.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd
from gluonts.dataset import Dataset
from gluonts.dataset.common import ListDataset, TrainDatasets
from gluonts.dataset.repository import dataset_names, get_dataset
from gluonts.dataset.repository._tsf_reader import TSFReader, frequency_converter
from gluonts.dataset.repository.datasets import default_dataset_path

from lagllama.settings import DATA_DIR_ENV

#: Files GluonTS writes for a materialised dataset; all must exist to load offline.
DATASET_FILES = ("metadata.json", "train/data.json.gz", "test/data.json.gz")
#: Start used for series without timestamps (e.g. `.tsf` files without ``start_timestamp``).
DEFAULT_START = "2000-01-01"


def known_datasets() -> list[str]:
    """Names accepted by :func:`load_dataset` (GluonTS's repository, incl. Monash datasets)."""
    return sorted(dataset_names)


def resolve_data_dir(data_dir: str | Path | None = None) -> Path:
    """The data folder: the argument, else ``$LAGLLAMA_DATA_DIR``, else GluonTS's default."""
    if data_dir is not None:
        return Path(data_dir).expanduser()
    env = os.environ.get(DATA_DIR_ENV)
    return Path(env).expanduser() if env else default_dataset_path


def is_available(name: str, data_dir: str | Path | None = None) -> bool:
    """Whether dataset ``name`` is fully materialised in the data folder (loadable offline)."""
    folder = resolve_data_dir(data_dir) / name
    return all((folder / f).exists() for f in DATASET_FILES)


def _missing_message(name: str, folder: Path, reason: str) -> str:
    return (
        f"dataset {name!r} is not in {folder} and could not be downloaded ({reason}); "
        f"put the folder {folder / name} (with {', '.join(DATASET_FILES)}) there, "
        f"or point --data-dir / ${DATA_DIR_ENV} at a folder that has it"
    )


def load_dataset(
    name: str, data_dir: str | Path | None = None, download: bool = True
) -> TrainDatasets:
    """Load a repository dataset by name from the data folder, downloading it if allowed.

    Raises ``ValueError`` for unknown names and ``FileNotFoundError`` naming the folder to
    fill when the dataset is absent and cannot be downloaded (offline or ``download=False``).
    """
    if name not in dataset_names:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(known_datasets())}")
    folder = resolve_data_dir(data_dir)
    if is_available(name, folder):
        return get_dataset(name, path=folder)
    if not download:
        raise FileNotFoundError(_missing_message(name, folder, "downloads disabled"))
    target = folder / name
    if target.exists() and not any(target.iterdir()):
        target.rmdir()  # an empty leftover folder would make GluonTS skip the download
    existed = target.exists()
    try:
        return get_dataset(name, path=folder, regenerate=existed)
    except Exception as err:  # network, zip or permission errors from the GluonTS recipes
        if not existed and target.exists():
            shutil.rmtree(target, ignore_errors=True)  # don't leave a half-written dataset
        raise FileNotFoundError(
            _missing_message(name, folder, f"{type(err).__name__}: {err}")
        ) from err


def dataset_freq(dataset: Dataset) -> str:
    """The pandas frequency of a GluonTS dataset, read from its first entry's ``start``."""
    entry = next(iter(dataset), None)
    if entry is None:
        raise ValueError("dataset is empty")
    return entry["start"].freqstr


def read_tsf(path: str | Path) -> ListDataset:
    """Read a Monash ``.tsf`` file with GluonTS's reader into a ListDataset (``?`` -> NaN)."""
    meta, records = TSFReader(Path(path)).read()
    if not getattr(meta, "frequency", None):
        raise ValueError(f"{path}: no @frequency line, cannot tell the series frequency")
    freq = frequency_converter(meta.frequency)
    entries = [
        {
            "item_id": str(rec.get("series_name", i)),
            "start": pd.Timestamp(rec.get("start_timestamp", DEFAULT_START)),
            "target": rec["target"],
        }
        for i, rec in enumerate(records)
    ]
    return ListDataset(entries, freq=freq)


def _check_columns(df: pd.DataFrame, columns: dict[str, str]) -> None:
    for role, column in columns.items():
        if column not in df.columns:
            raise ValueError(f"{role} column {column!r} not found; columns are {list(df.columns)}")


def _numeric(values: pd.Series, column: str) -> np.ndarray:
    """Floats of ``values``; missing stays NaN, text raises a ValueError naming the column."""
    numbers = pd.to_numeric(values, errors="coerce")
    bad = numbers.isna() & values.notna()
    if bad.any():
        example = values[bad].iloc[0]
        raise ValueError(
            f"target column {column!r} contains non-numeric text, e.g. {example!r} "
            f"({int(bad.sum())} value(s))"
        )
    return numbers.to_numpy(dtype=float)


def _timestamps(values: pd.Series, column: str) -> pd.DatetimeIndex:
    try:
        return pd.DatetimeIndex(pd.to_datetime(values))
    except (ValueError, TypeError) as err:
        raise ValueError(f"time column {column!r} has values that are not dates: {err}") from err


def _infer_freq(indexes: Iterable[pd.DatetimeIndex], column: str) -> str:
    for index in indexes:
        if len(index) >= 3 and (freq := pd.infer_freq(index)) is not None:
            return freq
    raise ValueError(
        f"cannot infer the frequency from time column {column!r} (irregular or fewer than "
        "3 timestamps per series); pass freq explicitly, e.g. freq='D'"
    )


def _check_freq(freq: str) -> None:
    try:
        pd.tseries.frequencies.to_offset(freq)
    except ValueError as err:
        raise ValueError(f"unknown frequency {freq!r}: {err}") from err


def _series_entry(
    item_id: str, index: pd.DatetimeIndex, values: np.ndarray, freq: str, column: str
) -> dict:
    """One GluonTS entry on a regular grid: gaps between timestamps become NaN."""
    dup = index.duplicated()
    if dup.any():
        raise ValueError(
            f"duplicate timestamps for item {item_id!r} in time column {column!r}: {index[dup][0]}"
        )
    series = pd.Series(values, index=index).sort_index()
    grid = pd.date_range(series.index[0], series.index[-1], freq=freq)
    if not series.index.isin(grid).all():
        off = series.index[~series.index.isin(grid)][0]
        raise ValueError(f"timestamp {off} of item {item_id!r} is not on the {freq!r} grid")
    regular = series.reindex(grid)
    return {
        "item_id": str(item_id),
        "start": grid[:1].to_period()[0],
        "target": regular.to_numpy(dtype=np.float32),
    }


def from_dataframe(
    df: pd.DataFrame,
    timestamp_column: str = "timestamp",
    target_column: str | None = None,
    item_id_column: str | None = None,
    freq: str | None = None,
) -> ListDataset:
    """Convert a long or wide DataFrame into a GluonTS dataset.

    Long form: ``item_id_column`` (optional for one series), ``timestamp_column`` and
    ``target_column``. Wide form (``target_column`` and ``item_id_column`` both None): the
    timestamp column plus one numeric column per series. The frequency is inferred with
    ``pd.infer_freq`` unless given; missing values and gaps on the grid become NaN.
    """
    if freq is not None:
        _check_freq(freq)
    _check_columns(df, {"time": timestamp_column})
    if item_id_column is not None or target_column is not None:
        target_column = target_column or "target"
        columns = {"target": target_column}
        if item_id_column is not None:
            columns["item id"] = item_id_column
        _check_columns(df, columns)
        groups = df.groupby(item_id_column, sort=False) if item_id_column else [("0", df)]
        series = [
            (
                str(item_id),
                _timestamps(part[timestamp_column], timestamp_column),
                _numeric(part[target_column], target_column),
            )
            for item_id, part in groups
        ]
    else:
        index = _timestamps(df[timestamp_column], timestamp_column)
        value_columns = [c for c in df.columns if c != timestamp_column]
        if not value_columns:
            raise ValueError(f"wide data needs series columns besides {timestamp_column!r}")
        series = [(str(c), index, _numeric(df[c], str(c))) for c in value_columns]
    if freq is None:
        freq = _infer_freq((idx.sort_values() for _, idx, _ in series), timestamp_column)
    entries = [_series_entry(i, idx, v, freq, timestamp_column) for i, idx, v in series]
    return ListDataset(entries, freq=entries[0]["start"].freqstr if entries else freq)


def read_csv(path: str | Path, **kwargs) -> ListDataset:
    """Read a long or wide CSV file; keyword arguments as in :func:`from_dataframe`."""
    return from_dataframe(pd.read_csv(path), **kwargs)


def read_parquet(path: str | Path, **kwargs) -> ListDataset:
    """Read a long or wide parquet file; keyword arguments as in :func:`from_dataframe`."""
    return from_dataframe(pd.read_parquet(path), **kwargs)


def read_file(path: str | Path, **kwargs) -> ListDataset:
    """Read ``.tsf``, ``.csv`` or ``.parquet`` by extension (CSV/parquet kwargs as above)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such file: {path}")
    suffix = path.suffix.lower()
    if suffix == ".tsf":
        return read_tsf(path)
    if suffix == ".csv":
        return read_csv(path, **kwargs)
    if suffix in (".parquet", ".pq"):
        return read_parquet(path, **kwargs)
    raise ValueError(f"unsupported file type {suffix!r} for {path}; use .tsf, .csv or .parquet")


def _period_timestamps(start: pd.Period, length: int) -> pd.DatetimeIndex:
    """Timestamps that read back to the same periods (weeks are labelled by their last day)."""
    periods = pd.period_range(start, periods=length, freq=start.freq)
    if isinstance(start.freq, pd.offsets.Week):
        return periods.to_timestamp(how="end").normalize()
    return periods.to_timestamp(how="start")


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
        index = _period_timestamps(entry["start"], len(target))
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


def write_csv(dataset: Dataset, path: str | Path, layout: str = "long") -> Path:
    """Write a dataset to CSV (readable back with :func:`read_csv`)."""
    path = Path(path)
    to_dataframe(dataset, layout=layout).to_csv(path, index=False)
    return path


def write_parquet(dataset: Dataset, path: str | Path, layout: str = "long") -> Path:
    """Write a dataset to parquet (readable back with :func:`read_parquet`)."""
    path = Path(path)
    to_dataframe(dataset, layout=layout).to_parquet(path, index=False)
    return path
