"""Deep ensembles of forecasters: every member draws its share of the sample paths and the
forecast is their mixture.

Pretrained models that differ only in seed or recipe make different errors, dataset by
dataset; a mixture of their sample paths averages those errors out at the cost of the paths
themselves (100 paths from two models cost what 100 paths from one cost, plus a second
prefill). The CRPS of a mixture is never worse than the weighted mean of its members' and is
better by the spread between them (the WQL approximates the CRPS). Measured in
``benchmarks/zero_shot.py`` (see the README's zero-shot section).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence

import numpy as np
from gluonts.dataset import Dataset
from gluonts.model.forecast import Forecast, SampleForecast
from gluonts.model.predictor import Predictor

#: Separates the members of an ensemble in a model specification, e.g. ``lagllama-small+lagllama-base``.
ENSEMBLE_SEPARATOR = "+"


def split_members(spec: str) -> list[str]:
    """The member specifications of ``a+b+...`` (one member: ``[spec]``)."""
    members = [part.strip() for part in spec.split(ENSEMBLE_SEPARATOR)]
    if any(not part for part in members):
        raise ValueError(f"empty ensemble member in {spec!r}")
    return members


def sample_shares(num_samples: int, members: int) -> list[int]:
    """Paths per member: ``num_samples`` split as evenly as possible, earlier members first."""
    if members < 1:
        raise ValueError("an ensemble needs at least one member")
    if num_samples < members:
        raise ValueError(f"{num_samples} sample paths cannot be shared by {members} members")
    base, extra = divmod(num_samples, members)
    return [base + (i < extra) for i in range(members)]


class EnsemblePredictor(Predictor):
    """Mixes the sample forecasts of ``members`` (one horizon) series by series.

    Each member should already be set to draw its share of the paths (see
    :func:`sample_shares`); the mixture holds all of them. The dataset is read once and
    handed to every member (``itertools.tee``), so it may be a stream.
    """

    def __init__(self, members: Sequence[Predictor]) -> None:
        if not members:
            raise ValueError("an ensemble needs at least one member")
        lengths = {m.prediction_length for m in members}
        if len(lengths) != 1:
            raise ValueError(f"ensemble members forecast different horizons: {sorted(lengths)}")
        super().__init__(prediction_length=lengths.pop())
        self.members = list(members)

    def predict(self, dataset: Dataset, **kwargs) -> Iterator[Forecast]:
        copies = itertools.tee(iter(dataset), len(self.members))
        streams = [m.predict(copy, **kwargs) for m, copy in zip(self.members, copies)]
        for forecasts in zip(*streams, strict=True):
            yield mix(forecasts)


def mix(forecasts: Sequence[Forecast]) -> SampleForecast:
    """One sample forecast holding the paths of ``forecasts`` (of the same series and dates)."""
    first = forecasts[0]
    for f in forecasts:
        if not isinstance(f, SampleForecast):
            raise TypeError(f"ensemble members must give sample forecasts, got {type(f).__name__}")
        if f.start_date != first.start_date or f.item_id != first.item_id:
            raise ValueError(
                f"ensemble members disagree on the series: {first.item_id!r} from "
                f"{first.start_date} vs {f.item_id!r} from {f.start_date}"
            )
    samples = np.concatenate([f.samples for f in forecasts], axis=0)
    return SampleForecast(samples, start_date=first.start_date, item_id=first.item_id)
