"""Ensembles of forecasters.

Lag-Llama members only (``a+b``): every member draws its share of the sample paths and the
forecast is their mixture. A statistical baseline among the members (``a+auto-theta``): it has
no sample paths, so the forecast is a weighted average of the members' quantiles
(:class:`QuantileEnsemble`), with weights chosen on a validation window of the very data it
forecasts (the last h points before the forecast start) by greedy ensemble selection, as
AutoGluon does.

Pretrained models that differ only in seed or recipe make different errors, dataset by
dataset; a mixture of their sample paths averages those errors out at the cost of the paths
themselves (100 paths from two models cost what 100 paths from one cost, plus a second
prefill). The CRPS of a mixture is never worse than the weighted mean of its members' and is
better by the spread between them (the WQL approximates the CRPS). Measured in
``benchmarks/zero_shot.py`` (see the README's zero-shot section).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Sequence

import numpy as np
from gluonts.dataset import Dataset
from gluonts.model.forecast import Forecast, QuantileForecast, SampleForecast
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


def common_horizon(members: Sequence[Predictor]) -> int:
    """The prediction length all ``members`` share; an error when there are none or they differ."""
    if not members:
        raise ValueError("an ensemble needs at least one member")
    lengths = {m.prediction_length for m in members}
    if len(lengths) != 1:
        raise ValueError(f"ensemble members forecast different horizons: {sorted(lengths)}")
    return lengths.pop()


class EnsemblePredictor(Predictor):
    """Mixes the sample forecasts of ``members`` (one horizon) series by series.

    Each member should already be set to draw its share of the paths (see
    :func:`sample_shares`); the mixture holds all of them. The dataset is read once and
    handed to every member (``itertools.tee``), so it may be a stream.
    """

    def __init__(self, members: Sequence[Predictor]) -> None:
        super().__init__(prediction_length=common_horizon(members))
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


def quantile_loss(quantiles: np.ndarray, target: np.ndarray, levels: Sequence[float]) -> float:
    """GluonTS's mean weighted quantile loss of ``quantiles`` (series, levels, h) against
    ``target`` (series, h), NaN targets left out: sum of quantile losses over sum of |y|."""
    observed = np.isfinite(target)
    y = np.where(observed, target, 0.0)[:, None, :]
    q = np.asarray(levels)[None, :, None]
    err = y - quantiles
    loss = 2 * np.where(observed[:, None, :], np.maximum(q * err, (q - 1) * err), 0.0)
    denominator = max(float(np.abs(y).sum()), 1e-12)
    return float(loss.sum(axis=(0, 2)).mean() / denominator)


def select_weights(
    member_quantiles: Sequence[np.ndarray],
    target: np.ndarray,
    levels: Sequence[float],
    rounds: int = 25,
) -> np.ndarray:
    """Greedy ensemble selection with replacement (Caruana et al., 2004; AutoGluon's
    ``EnsembleSelection``): start from the best member, then ``rounds - 1`` times add the
    member that lowers the weighted quantile loss of the average most; weights are the
    counts over ``rounds``."""
    counts = np.zeros(len(member_quantiles))
    total = np.zeros_like(member_quantiles[0])
    for step in range(rounds):
        losses = [quantile_loss((total + m) / (step + 1), target, levels) for m in member_quantiles]
        best = int(np.argmin(losses))
        counts[best] += 1
        total = total + member_quantiles[best]
    return counts / rounds


class QuantileEnsemble(Predictor):
    """Weighted average of the members' quantiles (statistical baselines among them).

    Weights are fixed (``weights``) or, by default, fitted anew on every ``predict`` call:
    each series that is long enough is cut ``prediction_length`` points short, the members
    forecast that validation window, and :func:`select_weights` picks the mixture with the
    lowest weighted quantile loss there. With no series long enough, members weigh equally.
    The forecast holds ``levels`` and ``mean`` (the weighted mean of the members' means).
    """

    def __init__(
        self,
        members: Sequence[Predictor],
        levels: Sequence[float],
        weights: Sequence[float] | None = None,
        min_history: int = 3,
    ) -> None:
        super().__init__(prediction_length=common_horizon(members))
        if weights is not None and (len(weights) != len(members) or min(weights) < 0):
            raise ValueError(f"need one non-negative weight per member, got {list(weights)}")
        self.members = list(members)
        self.levels = tuple(sorted(set(levels)))
        self.weights = None if weights is None else np.asarray(weights, float) / sum(weights)
        self.min_history = min_history
        #: Weights used by the last ``predict`` call.
        self.last_weights: np.ndarray | None = None

    def _quantiles(self, member: Predictor, entries: list[dict]) -> tuple[np.ndarray, list]:
        forecasts = list(member.predict(entries))
        stacked = np.stack([[f.quantile(q) for q in self.levels] for f in forecasts])
        missing = np.isnan(stacked).all(axis=(0, 2))
        if missing.any():
            level = self.levels[int(np.flatnonzero(missing)[0])]
            raise ValueError(f"ensemble member {type(member).__name__} gives no quantile {level}")
        return stacked, forecasts

    def fit(self, entries: Sequence[dict]) -> np.ndarray:
        """Weights chosen on the validation window before each series' forecast start."""
        from lagllama.evaluation import WQL_QUANTILES

        h = self.prediction_length
        long = [e for e in entries if len(e["target"]) >= h + self.min_history]
        if not long:
            return np.full(len(self.members), 1.0 / len(self.members))
        cut = [{**e, "target": np.asarray(e["target"])[:-h]} for e in long]
        target = np.stack([np.asarray(e["target"], float)[-h:] for e in long])
        rows = [self.levels.index(q) for q in WQL_QUANTILES if q in self.levels]
        members = [self._quantiles(m, cut)[0][:, rows] for m in self.members]
        return select_weights(members, target, [self.levels[r] for r in rows])

    def predict(self, dataset: Dataset, **kwargs) -> Iterator[Forecast]:
        entries = list(dataset)
        weights = self.weights if self.weights is not None else self.fit(entries)
        self.last_weights = weights
        quantiles, means = 0.0, 0.0
        first = None
        for weight, member in zip(weights, self.members):
            q, forecasts = self._quantiles(member, entries)
            first = first or forecasts
            quantiles = quantiles + weight * q
            means = means + weight * np.stack([f.mean for f in forecasts])
        keys = [str(q) for q in self.levels] + ["mean"]
        for i, f in enumerate(first):
            values = np.concatenate([quantiles[i], means[i][None]])
            yield QuantileForecast(
                values, start_date=f.start_date, forecast_keys=keys, item_id=f.item_id
            )


def member_predictors(
    members: Sequence[str],
    lag_llama: Callable[[str, int], Predictor],
    baseline: Callable[[str], Predictor],
    num_samples: int,
    levels: Sequence[float],
) -> Predictor:
    """The predictor of ``members`` (one model, or an ensemble: ``split_members("a+b")``).

    ``lag_llama(name, paths)`` builds a Lag-Llama member, ``baseline(name)`` a statistical
    one (``lagllama.evaluation.BASELINES``). Lag-Llama members only: :class:`EnsemblePredictor` sharing ``num_samples`` paths; with a
    baseline among them: :class:`QuantileEnsemble` with fitted weights, each Lag-Llama member
    drawing all ``num_samples`` paths."""
    from lagllama.evaluation import BASELINES

    if not members:
        raise ValueError("an ensemble needs at least one member")
    if len(members) == 1:
        (name,) = members
        return baseline(name) if name in BASELINES else lag_llama(name, num_samples)
    if not any(m in BASELINES for m in members):
        shares = sample_shares(num_samples, len(members))
        return EnsemblePredictor([lag_llama(m, n) for m, n in zip(members, shares)])
    built = [baseline(m) if m in BASELINES else lag_llama(m, num_samples) for m in members]
    return QuantileEnsemble(built, levels)
