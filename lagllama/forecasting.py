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
naive), or an ensemble of them joined by ``+`` (:mod:`lagllama.ensemble`). With a ``seed``,
each series draws its sample paths from its own generator, seeded from the seed and a hash of
its id, so its forecast depends only on its data, the model and the seed: not on the batch,
the chunk, or the Ray worker that ran it.

This module holds the models, :class:`Forecaster` and :func:`forecast`. Series are cut into
chunks by :mod:`lagllama.series_chunks`; files of any size are read and written by
:mod:`lagllama.forecast_files` (:func:`forecast_file`, :func:`forecast_chunks`), whose names
stay importable from here.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from gluonts.core.component import validated
from gluonts.dataset import Dataset
from gluonts.model import Forecast, Predictor
from gluonts.transform import MapTransformation

from lagllama.covariates import KNOWN, InContextRegression, find_covariates, future_groups
from lagllama.ensemble import ENSEMBLE_SEPARATOR, member_predictors, split_members
from lagllama.evaluation import BASELINES, FORECAST_QUANTILES, baseline
from lagllama.pretrained import DEFAULT_NAME, available_models
from lagllama.series_chunks import SeriesChunk, _layout_columns, dataset_chunks, frame_chunk
from lagllama.tables import detect_layout
from lagllama.tasks import BacktestTask

DEFAULT_QUANTILES = (0.1, 0.5, 0.9)
ID, TIME, MEAN = "item_id", "timestamp", "mean"
#: Input field holding each series' sampling seed (read by ``LagLlamaLightningModule.forward``).
SEED_FIELD = "sample_seed"
#: Names of :mod:`lagllama.forecast_files` importable from here, looked up on first use
#: (that module imports this one).
_FILE_NAMES = (
    "CHUNK_ROWS",
    "OUTPUT_SUFFIXES",
    "ForecastRun",
    "atomic_table",
    "file_chunks",
    "forecast_chunks",
    "forecast_file",
)


def __getattr__(name: str) -> Any:
    if name in _FILE_NAMES:
        from lagllama import forecast_files

        return getattr(forecast_files, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
    :func:`lagllama.tables.detect_layout`, or named with the keyword arguments) or a GluonTS
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
