"""``lagllama forecast --engine ray``: the forecast job on Ray (``pip install 'lagllama[ray]'``).

The driver streams the input once (validating it exactly as the single-process path does) and
writes whole series, one row each, as parquet parts into a staging folder beside the output;
a series' rows could otherwise straddle two of Ray's read partitions. The parts are the
partitions: Ray Data streams their paths, one block each, through ``map_batches`` with a pool
of actors that each load the model once and read, forecast and return one part per call, and
writes the forecast table as a folder of parquet files, renamed to the output at the end.
Each series' seed comes from its id, so the forecasts equal the single-process ones whichever
actor runs a series. On a cluster the output folder must be on storage that every node can
reach (a shared file system), and every node needs this package installed.
"""

from __future__ import annotations

import os
import shutil
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lagllama.data.series_chunks import SeriesChunk
from lagllama.forecasting.api import ID, Forecaster
from lagllama.forecasting.covariates import KNOWN, PAST
from lagllama.forecasting.ensembles import validation_sample
from lagllama.forecasting.files import ForecastRun
from lagllama.forecasting.options import ForecastOptions
from lagllama.forecasting.specs import parse_model

#: Columns of the staged series table (one row per series), and of the list of parts.
START, TARGET, FUTURE, PATH = "start_ordinal", "target", "future", "path"
#: Covariate fields staged as one list of rows per series.
COVARIATE_FIELDS = (KNOWN, PAST)


def require_ray() -> Any:
    """The ``ray`` module, or an error saying how to install it."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as err:
        raise ValueError("--engine ray needs Ray: pip install 'lagllama[ray]'") from err
    return ray


def chunk_frame(chunk: SeriesChunk) -> pd.DataFrame:
    """A chunk as a table with one row per series (ids keep their dtype; covariates, if any,
    as one list of rows per series)."""
    frame = pd.DataFrame(
        {
            ID: chunk.ids,
            START: [e["start"].ordinal for e in chunk.entries],
            TARGET: [e["target"] for e in chunk.entries],
            FUTURE: [f.to_numpy() for f in chunk.future],
        }
    )
    for name in COVARIATE_FIELDS:
        if any(name in e for e in chunk.entries):
            frame[name] = [list(np.asarray(e[name])) for e in chunk.entries]
    return frame


def frame_to_chunk(frame: pd.DataFrame, freq: str) -> SeriesChunk:
    """The inverse of :func:`chunk_frame` for period frequency ``freq``."""
    entries = [
        {
            "item_id": str(item_id),
            "start": pd.Period(ordinal=int(start), freq=freq),
            "target": np.asarray(target, dtype=np.float32),
        }
        for item_id, start, target in zip(frame[ID], frame[START], frame[TARGET])
    ]
    for name in COVARIATE_FIELDS:
        if name in frame.columns:
            for entry, rows in zip(entries, frame[name]):
                entry[name] = np.stack([np.asarray(r, dtype=np.float32) for r in rows])
    future = [pd.DatetimeIndex(f) for f in frame[FUTURE]]
    return SeriesChunk(frame[ID].reset_index(drop=True), entries, future)


class RayForecaster:
    """A Ray Data actor: loads the model once, then forecasts staged parts given by path."""

    def __init__(
        self,
        freq: str,
        options: ForecastOptions,
        weights: list[float] | None = None,
        threads: int = 1,
    ) -> None:
        import torch

        torch.set_num_threads(threads)
        self.freq = freq
        self.forecaster = Forecaster(options, freq, weights)

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        parts = [pd.read_parquet(path) for path in batch[PATH]]
        chunks = [frame_to_chunk(part, self.freq) for part in parts]
        return pd.concat([self.forecaster.table(c) for c in chunks], ignore_index=True)


def _stage(
    chunks: Iterable[SeriesChunk], folder: Path, part_series: int
) -> tuple[str, Counter[str], list[dict]]:
    """Write chunks as parquet parts of at most ``part_series`` series (small parts keep every
    actor busy until the end); the period frequency, the series tallies and the validation
    sample of a hybrid (:func:`validation_sample`, taken on the way)."""
    counts: Counter[str] = Counter()
    freq = None
    entries: list[dict] = []

    def stream() -> Iterator[dict]:
        nonlocal freq
        for chunk in chunks:
            freq = freq or chunk.freq
            frame = chunk_frame(chunk)
            for start in range(0, len(frame), part_series):
                part = folder / f"part-{counts['parts']:06d}.parquet"
                frame.iloc[start : start + part_series].to_parquet(part, index=False)
                counts["parts"] += 1
            counts["series"] += len(chunk.entries)
            counts["missing"] += sum(bool(np.isnan(e["target"]).any()) for e in chunk.entries)
            counts["with_covariates"] += sum(KNOWN in e for e in chunk.entries)
            counts.update(chunk.counts)
            yield from chunk.entries

    entries = validation_sample(stream())
    if freq is None:
        raise ValueError("no series to forecast")
    return freq, counts, entries


def forecast_ray(
    source: Callable[[], Iterable[SeriesChunk]],
    output: str | Path,
    options: ForecastOptions,
    address: str | None = None,
    workers: int | None = None,
    progress: bool = True,
) -> ForecastRun:
    """Forecast the chunks ``source()`` yields on Ray into the parquet folder ``output``.

    The driver reads the input once, staging it and keeping a hybrid's validation sample, and
    fits the weights before any actor starts, so every actor uses the same weights.
    ``address``: an existing cluster (``HOST:6379``); without it, the Ray instance already
    started in this process, else a new local one (shut down at the end). ``workers``:
    actors, one torch thread each (default: one per CPU of the cluster).
    """
    output = Path(output)
    if output.suffix.lower() not in (".parquet", ".pq"):
        raise ValueError(f"--engine ray writes parquet: name the output NAME.parquet, not {output}")
    spec = parse_model(options.model)
    ray = require_ray()
    output.parent.mkdir(parents=True, exist_ok=True)
    staging = output.with_name(f".{output.name}.{os.getpid()}.input")
    written = output.with_name(f".{output.name}.{os.getpid()}.tmp")
    started = not ray.is_initialized()
    start = time.perf_counter()
    weights = None
    try:
        staging.mkdir()
        freq, counts, sample = _stage(source(), staging, part_series=4 * options.batch_size)
        del counts["parts"]
        if spec.is_hybrid:
            driver = Forecaster(options, freq)
            driver.fit([SeriesChunk(pd.Series([e["item_id"] for e in sample]), sample, [])])
            weights = driver.weights
        if started:
            ray.init(address=address, include_dashboard=False, log_to_driver=False)
        ray.data.DataContext.get_current().enable_progress_bars = progress
        cpus = float(ray.cluster_resources().get("CPU", 1))
        size = workers or max(1, int(cpus))
        # actors that took every CPU would starve Ray Data's read and write tasks: leave one
        actor_cpus = min(1.0, max(cpus - 1.0, cpus / 2) / size)
        # one block per part, so the parts spread over the actors as they stream through
        paths = [{PATH: str(path)} for path in sorted(staging.glob("*.parquet"))]
        parts = ray.data.from_items(paths, override_num_blocks=len(paths))
        parts.map_batches(
            RayForecaster,
            fn_constructor_kwargs={
                "freq": freq,
                "options": options,
                "weights": None if weights is None else list(weights.values()),
            },
            batch_size=1,
            batch_format="pandas",
            compute=ray.data.ActorPoolStrategy(size=size),
            num_cpus=actor_cpus,
        ).write_parquet(str(written))
        if output.is_dir():
            shutil.rmtree(output)
        elif output.exists():
            output.unlink()
        os.replace(written, output)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(written, ignore_errors=True)
        if started and ray.is_initialized():
            ray.shutdown()
    rows = counts["series"] * options.prediction_length
    return ForecastRun(output, rows, counts, time.perf_counter() - start, weights)
