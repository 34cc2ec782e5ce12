"""Ensembles of forecasters.

Lag-Llama members only (``a+b``): every member draws its share of the sample paths and the
forecast is their mixture. A statistical baseline among the members (``a+auto-theta``): it has
no sample paths, so the forecast is a weighted average of the members' quantiles
(:class:`QuantileEnsemble`), with weights chosen by greedy ensemble selection, as AutoGluon
does, on rolling validation windows of the very data it forecasts (the last h, 2h and 3h
points before the forecast start), pooled over up to :data:`VALIDATION_SERIES` series of the
whole input chosen by a hash of their id (:func:`validation_sample`).

Pretrained models that differ only in seed or recipe make different errors, dataset by
dataset; a mixture of their sample paths averages those errors out at the cost of the paths
themselves (100 paths from two models cost what 100 paths from one cost, plus a second
prefill). The CRPS of a mixture is never worse than the weighted mean of its members' and is
better by the spread between them (the WQL approximates the CRPS). Measured in
``benchmarks/zero_shot.py`` (see the README's zero-shot section).

A hybrid weighs the Lag-Llama members' mixture as one member. Weighing each member's own paths
besides it (so that a member bad on a dataset can be left out) was tried on the dev benchmark
(``benchmarks/dev_broad.py``, default members, 15 dataset-seed rows, Intel Xeon, 2026-12-08):
WQL +1.5% and MASE +2.2% against the mixture as one member, exchange_rate's MASE +17%. Weights
fitted on a few windows of few series pick the member that was lucky there, and each member's
quantiles rest on half the paths.
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence

import numpy as np
import pandas as pd
from gluonts.dataset import Dataset
from gluonts.model.forecast import Forecast, QuantileForecast, SampleForecast
from gluonts.model.predictor import Predictor

#: Rolling validation windows per series, and series per input, a hybrid's weights are fitted on.
VALIDATION_WINDOWS = 3
VALIDATION_SERIES = 500
#: Sample paths of a Lag-Llama member on the validation windows: half of the forecast's 100,
#: so three windows cost 1.5 forecasts, not 3 (sampling is most of a hybrid's time).
VALIDATION_PATHS = 50


def _id_hash(item_id: object) -> int:
    return int.from_bytes(hashlib.sha256(f"validation\x1f{item_id}".encode()).digest()[:8], "big")


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
        import torch

        # Each member's generator holds GluonTS's ``torch.no_grad()`` open between forecasts;
        # interleaved, they restore each other's state and would leave gradients disabled
        # for the caller (a later training step fails), so the caller's mode is put back.
        grad = torch.is_grad_enabled()
        try:
            copies = itertools.tee(iter(dataset), len(self.members))
            streams = [m.predict(copy, **kwargs) for m, copy in zip(self.members, copies)]
            for forecasts in zip(*streams, strict=True):
                yield mix(forecasts)
        finally:
            torch.set_grad_enabled(grad)


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

    Weights are fixed (``weights``; an entry point fits them once over its whole input with
    :meth:`fit`, so they do not depend on chunks or workers) or else fitted on the entries
    of each ``predict`` call, by ``validators`` (the members, or cheaper copies of them
    drawing fewer sample paths; default: the members themselves). A series shorter than one
    validation window plus ``min_history`` points is forecast with equal weights; a member
    that fails on a series (a statsforecast fit on a constant or too-short series gives
    ``None``) drops out of that series, the others' weights renormalised. ``counts`` tallies
    both, per ``predict`` call. The forecast holds ``levels`` and ``mean`` (the weighted
    mean of the members' means).
    """

    def __init__(
        self,
        members: Sequence[Predictor],
        names: Sequence[str],
        levels: Sequence[float],
        weights: Sequence[float] | None = None,
        min_history: int = 3,
        windows: int = VALIDATION_WINDOWS,
        validators: Sequence[Predictor] | None = None,
    ) -> None:
        super().__init__(prediction_length=common_horizon(members))
        if len(names) != len(members):
            raise ValueError(f"need one name per member, got {list(names)}")
        if validators is not None and len(validators) != len(members):
            raise ValueError(f"need one validator per member, got {len(validators)}")
        self.members = list(members)
        self.validators = self.members if validators is None else list(validators)
        self.names = list(names)
        self.levels = tuple(sorted(set(levels)))
        self.weights = None if weights is None else self._checked(weights)
        self.min_history = min_history
        self.windows = windows
        #: Weights used by the last ``predict`` call, and its tallies.
        self.last_weights: np.ndarray | None = None
        self.counts: Counter[str] = Counter()

    def _checked(self, weights: Sequence[float]) -> np.ndarray:
        values = np.asarray(weights, float)
        if len(values) != len(self.members) or values.min() < 0 or values.sum() <= 0:
            raise ValueError(f"need one non-negative weight per member, got {list(weights)}")
        return values / values.sum()

    def _quantiles(self, member: Predictor, entries: list[dict]) -> list[np.ndarray | None]:
        """Each entry's (levels, h) quantiles and mean as one array, or ``None`` where the
        member failed on it."""
        rows = []
        for forecast in member.predict(entries):
            if forecast is None:
                rows.append(None)
                continue
            values = np.stack([*(forecast.quantile(q) for q in self.levels), forecast.mean])
            if np.isnan(values[:-1]).all(axis=1).any():
                level = self.levels[int(np.flatnonzero(np.isnan(values[:-1]).all(axis=1))[0])]
                raise ValueError(
                    f"ensemble member {type(member).__name__} gives no quantile {level}"
                )
            rows.append(values)
        return rows

    def fit(self, entries: Sequence[dict]) -> np.ndarray:
        """Weights by greedy selection on up to ``windows`` rolling validation windows of
        each series long enough (its last h, 2h, ... points cut off), pooled; equal weights
        when no series is long enough. Windows where a member failed are left out."""
        from lagllama.evaluation.baselines import WQL_QUANTILES

        h = self.prediction_length
        cut, target = [], []
        for k in range(1, self.windows + 1):
            for e in entries:
                values = np.asarray(e["target"])
                if len(values) >= k * h + self.min_history:
                    cut.append({**e, "target": values[: len(values) - k * h]})
                    target.append(values[len(values) - k * h : len(values) - (k - 1) * h])
        if not cut:
            return np.full(len(self.members), 1.0 / len(self.members))
        forecasts = [self._quantiles(m, cut) for m in self.validators]
        usable = [i for i in range(len(cut)) if all(f[i] is not None for f in forecasts)]
        if not usable:
            return np.full(len(self.members), 1.0 / len(self.members))
        rows = [self.levels.index(q) for q in WQL_QUANTILES if q in self.levels]
        members = [np.stack([f[i][rows] for i in usable]) for f in forecasts]
        truth = np.stack([np.asarray(target[i], float) for i in usable])
        return select_weights(members, truth, [self.levels[r] for r in rows])

    def predict(self, dataset: Dataset, **kwargs) -> Iterator[Forecast]:
        entries = list(dataset)
        weights = self.weights if self.weights is not None else self.fit(entries)
        self.last_weights = weights
        self.counts = Counter()
        forecasts = [self._quantiles(m, entries) for m in self.members]
        keys = [str(q) for q in self.levels] + ["mean"]
        h = self.prediction_length
        for i, entry in enumerate(entries):
            available = [j for j, f in enumerate(forecasts) if f[i] is not None]
            for j in set(range(len(self.members))) - set(available):
                self.counts[f"dropped:{self.names[j]}"] += 1
            w = np.zeros(len(self.members))
            if len(entry["target"]) < h + self.min_history:
                self.counts["equal_weights"] += 1
                w[available] = 1.0
            else:
                w[available] = weights[available]
                if w.sum() == 0:
                    w[available] = 1.0
            w = w / w.sum()
            values = sum(w[j] * forecasts[j][i] for j in available)
            yield QuantileForecast(
                values,
                start_date=forecast_start(entry),
                forecast_keys=keys,
                item_id=entry.get("item_id"),
            )


def forecast_start(entry: dict) -> pd.Period:
    """The first forecast period of a GluonTS entry: the one after its last observation."""
    return entry["start"] + len(entry["target"])


def validation_sample(entries: Iterable[dict], size: int = VALIDATION_SERIES) -> list[dict]:
    """The ``size`` entries with the smallest hash of their id (ties by order), in a bounded
    heap: the same series whatever the order, chunking or partitioning of the input, on which
    a hybrid's weights are fitted once for a whole input."""
    heap: list[tuple[int, int, dict]] = []
    for n, entry in enumerate(entries):
        key = -_id_hash(entry.get("item_id"))
        if len(heap) < size:
            heapq.heappush(heap, (key, -n, entry))
        elif key > heap[0][0]:
            heapq.heapreplace(heap, (key, -n, entry))
    return [entry for _, _, entry in sorted(heap, key=lambda t: (-t[0], -t[1]))]
