"""Anomaly tables of a user's series: one row per point with its score, flag and predictive band.

Tables are read as ``lagllama forecast`` reads them (long, wide or Nixtla columns; the same
errors for irregular or duplicate timestamps), and GluonTS datasets are taken as they are.
Each series is put on its regular grid, so a gap in its timestamps comes back as a row with
a missing value. Columns: ``item_id``, ``timestamp``, ``value``, ``score`` (in [0, 1], NaN
where the value is missing), ``flag`` (score >= threshold) and the one-step predictive
median and 80% band ``0.5``, ``0.1``, ``0.9``.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from gluonts.dataset import Dataset
from tqdm.auto import tqdm

from lagllama.data.series_chunks import SeriesChunk, dataset_chunks, frame_chunk
from lagllama.data.tables import detect_layout, period_timestamps
from lagllama.detection.calibration import (
    DEFAULT_CALIBRATION,
    DEFAULT_THRESHOLD,
    Calibration,
    anomaly_scores,
    check_threshold,
    flags,
)
from lagllama.detection.predictive import (
    QUANTILES,
    LagLlamaOneStep,
    OneStep,
    SeasonalNaiveOneStep,
)
from lagllama.forecasting.api import ID, TIME, quantile_column
from lagllama.forecasting.files import atomic_table, check_output

VALUE, SCORE, FLAG = "value", "score", "flag"

OneStepModel = LagLlamaOneStep | SeasonalNaiveOneStep


def one_step_model(model: str | None = None, batch_size: int = 64) -> OneStepModel:
    """The one-step model of a specification: a Lag-Llama model (name or checkpoint; the
    default ``lagllama`` stands for its best single member, ``lagllama-fast``) or
    ``seasonal-naive``."""
    from lagllama.evaluation.baselines import BASELINE
    from lagllama.forecasting.specs import DEFAULT_MODEL, parse_model
    from lagllama.pretrained import DEFAULT_NAME

    spec = parse_model(model)
    members = parse_model(DEFAULT_NAME).members if spec.name == DEFAULT_MODEL else spec.members
    if len(members) != 1:
        raise ValueError(f"detection takes one model, not the ensemble {spec.name}")
    (member,) = members
    if not member.is_baseline:
        return LagLlamaOneStep(member.checkpoint, batch_size=batch_size)
    if member.name != BASELINE:
        raise ValueError(
            f"the baseline detector is {BASELINE}; {member.name} has no one-step model"
        )
    return SeasonalNaiveOneStep()


@dataclass(frozen=True)
class Detection:
    """One series' one-step predictions and its anomaly scores."""

    predictions: OneStep
    scores: np.ndarray


class Detector:
    """A one-step model, loaded once, with the calibration and threshold that turn its
    predictions into scores and flags."""

    def __init__(
        self,
        model: str | None = None,
        threshold: float = DEFAULT_THRESHOLD,
        calibration: Calibration = DEFAULT_CALIBRATION,
        batch_size: int = 64,
    ) -> None:
        self.threshold = check_threshold(threshold)  # before the model loads
        self.one_step = one_step_model(model, batch_size)
        self.calibration = calibration

    def detect(self, entries: list[dict]) -> list[Detection]:
        """Predictions and scores of GluonTS entries, in order."""
        predictions = self.one_step.predict(entries)
        return [
            Detection(p, anomaly_scores(p, e["target"], self.calibration))
            for p, e in zip(predictions, entries)
        ]

    def table(self, chunk: SeriesChunk) -> pd.DataFrame:
        """The anomaly table of a chunk: one row per point of every series."""
        detections = self.detect(chunk.entries)
        lengths = [len(e["target"]) for e in chunk.entries]
        scores = np.concatenate([d.scores for d in detections])
        columns = {
            ID: chunk.ids.repeat(lengths).reset_index(drop=True),
            TIME: pd.DatetimeIndex(
                np.concatenate(
                    [
                        period_timestamps(e["start"], n).as_unit("us").to_numpy()
                        for e, n in zip(chunk.entries, lengths)
                    ]
                )
            ),
            VALUE: np.concatenate([e["target"] for e in chunk.entries]).astype(float),
            SCORE: scores,
            FLAG: flags(scores, self.threshold),
        }
        for q, name in zip(QUANTILES, ("median", "low", "high")):
            columns[quantile_column(q)] = np.concatenate(
                [getattr(d.predictions, name) for d in detections]
            )
        return pd.DataFrame(columns)


def detect(
    data: pd.DataFrame | Dataset,
    model: str | None = None,
    threshold: float = DEFAULT_THRESHOLD,
    *,
    freq: str | None = None,
    timestamp_column: str | None = None,
    target_column: str | None = None,
    item_id_column: str | None = None,
    batch_size: int = 64,
    calibration: Calibration = DEFAULT_CALIBRATION,
) -> pd.DataFrame:
    """Score every point of every series for anomalies, online (each from its past only).

    ``data``: a long or wide DataFrame (columns as :func:`lagllama.forecast` reads them) or a
    GluonTS dataset. ``model``: a Lag-Llama model (name or checkpoint, default
    ``lagllama-fast``) or ``seasonal-naive``. Returns the table of the module docstring.
    """
    detector = Detector(model, threshold, calibration, batch_size)
    if isinstance(data, pd.DataFrame):
        layout = detect_layout(data.columns, timestamp_column, target_column, item_id_column)
        chunks: Iterable[SeriesChunk] = [frame_chunk(data, layout, freq, 1)[0]]
    else:
        chunks = dataset_chunks(data, 1)
    return pd.concat([detector.table(c) for c in chunks], ignore_index=True)


@dataclass
class DetectionRun:
    """What a run wrote, with the tables of its first ``keep`` series (for charts);
    ``unscored``: series too short for the calibration to give any score."""

    output: Path
    rows: int = 0
    series: int = 0
    unscored: int = 0
    flagged: int = 0
    seconds: float = 0.0
    first: list[pd.DataFrame] = field(default_factory=list)


def detect_chunks(
    source: Callable[[], Iterable[SeriesChunk]],
    output: str | Path,
    detector: Detector,
    progress: bool = True,
    keep: int = 0,
) -> DetectionRun:
    """Score the chunks ``source()`` yields and append each table to ``output`` (.csv or
    .parquet, written atomically: no file on error). The first chunk is read (the file
    exists and its first rows parse) before the progress bar starts."""
    run = DetectionRun(check_output(output))
    start = time.perf_counter()
    chunks = iter(source())
    first = next(chunks, None)
    if first is None:
        raise ValueError("no series to score")
    with (
        atomic_table(output) as write,
        tqdm(unit="series", desc="detect", disable=not progress, smoothing=0.1) as bar,
    ):
        for chunk in itertools.chain([first], chunks):
            table = detector.table(chunk)
            write(table)
            run.rows += len(table)
            run.series += len(chunk.entries)
            run.unscored += sum(
                len(e["target"]) <= detector.calibration.learning for e in chunk.entries
            )
            run.flagged += int(table[FLAG].sum())
            if len(run.first) < keep:
                groups = [g for _, g in table.groupby(ID, sort=False)]
                run.first += groups[: keep - len(run.first)]
            bar.update(len(chunk.entries))
    run.seconds = time.perf_counter() - start
    return run
