"""The options that travel together from an entry point to the predictor."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from lagllama.evaluation.baselines import FORECAST_QUANTILES
from lagllama.nn.precision import SAMPLING_PRECISIONS

DEFAULT_QUANTILES = (0.1, 0.5, 0.9)


def check_quantiles(quantiles: Iterable[float]) -> tuple[float, ...]:
    """``quantiles`` sorted and unique, or a ValueError naming the bad level."""
    levels = tuple(sorted({float(q) for q in quantiles}))
    if not levels:
        raise ValueError("give at least one quantile, e.g. 0.1,0.5,0.9")
    bad = [q for q in levels if not 0.0 < q < 1.0]
    if bad:
        raise ValueError(f"quantile {bad[0]:g} is outside (0, 1)")
    return levels


@dataclass(frozen=True)
class ForecastOptions:
    """How to forecast: the model specification (:mod:`lagllama.forecasting.specs`), the horizon,
    the quantiles reported, sample paths, sampling seed (``None``: torch's global generator),
    predictor batch size, sampling precision and an inference context (``None``: the model's).
    Checked when made, so a bad value fails before any data is read."""

    prediction_length: int
    model: str | None = None
    quantiles: tuple[float, ...] = DEFAULT_QUANTILES
    num_samples: int = 100
    seed: int | None = 0
    batch_size: int = 64
    sampling_precision: str = "32"
    context_length: int | None = None
    #: Quantiles every model computes: those reported plus those of the WQL and MSIS.
    levels: tuple[float, ...] = field(init=False)

    def __post_init__(self) -> None:
        if self.prediction_length < 1:
            raise ValueError(f"prediction length must be >= 1, got {self.prediction_length}")
        if self.num_samples < 1:
            raise ValueError(f"number of samples must be >= 1, got {self.num_samples}")
        if self.batch_size < 1:
            raise ValueError(f"batch size must be >= 1, got {self.batch_size}")
        if self.sampling_precision not in SAMPLING_PRECISIONS:
            raise ValueError(
                f"sampling precision must be one of {', '.join(SAMPLING_PRECISIONS)}, "
                f"got {self.sampling_precision!r}"
            )
        if self.context_length is not None and self.context_length < 1:
            raise ValueError(f"context length must be >= 1, got {self.context_length}")
        quantiles = check_quantiles(self.quantiles)
        object.__setattr__(self, "quantiles", quantiles)
        object.__setattr__(self, "levels", tuple(sorted({*FORECAST_QUANTILES, *quantiles})))
