"""Backtest tasks: a dataset, its forecast horizon and rolling windows, and its splits.

A task says what a model may train on (each series without its test windows) and what it is
scored on (the last windows), so every model of a backtest sees the same data. Series too
short for the windows are left out and named. Scoring is :mod:`lagllama.evaluation.backtest`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gluonts.dataset import Dataset
from gluonts.dataset.split import TestData, split
from gluonts.time_feature import get_seasonality

from lagllama.data.datasets import dataset_freq, load_dataset
from lagllama.data.frequency import offset_alias


@dataclass(frozen=True)
class BacktestTask:
    """One dataset to backtest: full series whose last ``windows * prediction_length``
    points are forecast in rolling windows of ``prediction_length``."""

    name: str
    dataset: Dataset
    prediction_length: int
    freq: str
    windows: int = 1
    #: Ids of series left out because they are shorter than the backtest window plus one point.
    skipped: tuple[str, ...] = ()

    @property
    def season_length(self) -> int:
        """Seasonal period used by seasonal naive, MASE and MSIS."""
        return get_seasonality(offset_alias(self.freq))

    def train_data(self) -> Dataset:
        """Each series without its test windows: what a model may be trained on."""
        train, _ = split(self.dataset, offset=-self.prediction_length * self.windows)
        return train

    def test_data(self) -> TestData:
        """Rolling-origin windows over the end of each series (GluonTS ``split``)."""
        h = self.prediction_length
        _, template = split(self.dataset, offset=-h * self.windows)
        return template.generate_instances(prediction_length=h, windows=self.windows, distance=h)


def drop_short(name: str, dataset: Dataset, min_length: int) -> tuple[Dataset, tuple[str, ...]]:
    """``dataset`` without series shorter than ``min_length``, and the ids left out.

    A backtest needs every series to cover its windows plus one point of history; GluonTS
    would otherwise stop the whole run on the first short series.
    """
    short = tuple(
        str(entry.get("item_id", i))
        for i, entry in enumerate(dataset)
        if len(entry["target"]) < min_length
    )
    if not short:
        return dataset, ()
    kept = [entry for entry in dataset if len(entry["target"]) >= min_length]
    if not kept:
        raise ValueError(
            f"every series of {name} is shorter than {min_length} points (prediction length x "
            "windows + 1); use a shorter --prediction-length or fewer --windows"
        )
    return kept, short


def _task(
    name: str, dataset: Dataset, prediction_length: int, freq: str, windows: int
) -> BacktestTask:
    kept, skipped = drop_short(name, dataset, prediction_length * windows + 1)
    return BacktestTask(name, kept, prediction_length, freq, windows, skipped)


def repository_task(
    name: str, data_dir: str | Path | None = None, windows: int = 1, download: bool = True
) -> BacktestTask:
    """A task for a GluonTS/Monash dataset: its ``test`` split holds the full series."""
    ds = load_dataset(name, data_dir=data_dir, download=download)
    return _task(name, ds.test, ds.metadata.prediction_length, ds.metadata.freq, windows)


def dataset_task(
    name: str, dataset: Dataset, prediction_length: int, windows: int = 1
) -> BacktestTask:
    """A task for a user's dataset (e.g. from :func:`lagllama.data.datasets.read_file`); series too
    short for the windows are left out and listed in ``skipped``."""
    if prediction_length < 1:
        raise ValueError(f"prediction_length must be >= 1, got {prediction_length}")
    return _task(name, dataset, prediction_length, dataset_freq(dataset), windows)
