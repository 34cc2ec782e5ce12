"""Load forecasting data: Monash/GluonTS datasets by name, `.tsf` files, CSV/parquet/DataFrames.

Everything is returned as GluonTS datasets (entries with ``start`` as a ``pd.Period``,
``target`` as a float array with NaN for missing values, ``item_id`` as a string), so any
GluonTS predictor and :mod:`lagllama.evaluation.backtest` can consume it directly. Tables (column
detection, parsing, the way back to DataFrames) are :mod:`lagllama.data.tables`.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pandas as pd
from gluonts.dataset import Dataset
from gluonts.dataset.common import ListDataset, TrainDatasets
from gluonts.dataset.repository import dataset_names, get_dataset
from gluonts.dataset.repository._tsf_reader import TSFReader, frequency_converter
from gluonts.dataset.repository.datasets import default_dataset_path

from lagllama.data.tables import (
    from_dataframe,
    to_dataframe,
)
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


def check_readable(path: Path) -> None:
    """Raise a ValueError naming ``path`` when it is empty (no header, no rows)."""
    if path.stat().st_size == 0:
        raise ValueError(f"{path} is empty")


def read_csv(path: str | Path, **kwargs) -> ListDataset:
    """Read a long or wide CSV file; keyword arguments as in :func:`from_dataframe`."""
    check_readable(Path(path))
    return from_dataframe(pd.read_csv(path), **kwargs)


def read_parquet(path: str | Path, **kwargs) -> ListDataset:
    """Read a long or wide parquet file; keyword arguments as in :func:`from_dataframe`."""
    check_readable(Path(path))
    return from_dataframe(pd.read_parquet(path), **kwargs)


def read_file(path: str | Path, **kwargs) -> ListDataset:
    """Read ``.tsf``, ``.csv`` or ``.parquet`` by extension (CSV/parquet kwargs as above)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such file: {path}")
    suffix = path.suffix.lower()
    if suffix == ".tsf":
        if kwargs.get("covariates") or kwargs.get("past_covariates"):
            raise ValueError(f"{path}: a .tsf file holds no covariate columns")
        return read_tsf(path)
    if suffix == ".csv":
        return read_csv(path, **kwargs)
    if suffix in (".parquet", ".pq"):
        return read_parquet(path, **kwargs)
    raise ValueError(f"unsupported file type {suffix!r} for {path}; use .tsf, .csv or .parquet")


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
