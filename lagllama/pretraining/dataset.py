"""An endless, weighted mixture of training windows as a GluonTS dataset.

Each item is a GluonTS entry cut from one series so that its last ``prediction_length``
points are the window's future: ``LagLlamaEstimator``'s usual transformation
(``AddObservedValuesIndicator``, ``AddTimeFeatures`` from the entry's own ``start``
frequency) and an ``InstanceSplitter`` with ``ValidationSplitSampler(min_future=h)`` then
turn it into exactly one training window. Windows near the end of a series are padded with
NaN (unobserved, masked in the loss), and history shorter than the lag window is padded by
the splitter, so short series are used too; ``short_history_prob`` also cuts the history of
long series to a few points, so the model learns the heavily padded case (e.g. yearly data).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

import numpy as np

#: Makes one new GluonTS entry from a random generator (synthetic series, TSMixup).
EntryMaker = Callable[[np.random.Generator], dict]


def _rank() -> int:
    try:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            return dist.get_rank()
    except Exception:  # pragma: no cover - no torch.distributed
        pass
    return 0


def entry_freq(entry: dict) -> str:
    """The series' pandas frequency without its anchor: ``"Q"`` for ``Q-DEC``, ``"W"`` for
    ``W-SUN`` (so a ``freq_weights`` key ``"Q"`` matches every quarterly series)."""
    return entry["start"].freqstr.split("-")[0]


class PretrainingMixture:
    """Endless iterable of training entries drawn from ``corpus`` ({source: entries}).

    A source is picked with probability ``source_weights[source]`` (default: equal); within a
    source a series is picked with probability proportional to
    ``freq_weights.get(freq, 1)`` (keys are unanchored pandas aliases: ``"h"``, ``"D"``, ``"W"``,
    ``"M"``, ``"Q"``, ``"Y"``; see :func:`entry_freq`).
    Iteration is seeded by ``(seed, distributed rank, offset)``, so every DDP process draws
    different windows and a resumed run (``offset`` = steps done) does not replay old ones.

    ``makers`` are sources without a pool, whose every entry is made on demand (TSMixup).
    ``refresh`` maps a pooled source to ``(maker, p)``: each draw from it is, with
    probability ``p``, a newly made entry that also replaces a random member of the pool,
    so a run sees far more distinct series than the pool holds (slow synthetic generators).
    """

    def __init__(
        self,
        corpus: Mapping[str, list[dict]],
        past_length: int,
        prediction_length: int,
        source_weights: Mapping[str, float] | None = None,
        freq_weights: Mapping[str, float] | None = None,
        min_past: int = 8,
        short_history_prob: float = 0.2,
        short_history_range: tuple[int, int] = (8, 64),
        seed: int = 0,
        offset: int = 0,
        makers: Mapping[str, EntryMaker] | None = None,
        refresh: Mapping[str, tuple[EntryMaker, float]] | None = None,
    ) -> None:
        self.makers = dict(makers or {})
        self.sources = [name for name, entries in corpus.items() if entries]
        self.sources += [name for name in self.makers if name not in self.sources]
        if not self.sources:
            raise ValueError("empty pretraining corpus")
        unknown = sorted(set(source_weights or {}) - set(self.sources))
        if unknown:
            raise ValueError(f"weights given for sources not in the corpus: {unknown}")
        self.refresh = dict(refresh or {})
        unknown = sorted(set(self.refresh) - set(corpus))
        if unknown:
            raise ValueError(f"refresh given for sources without a pool: {unknown}")
        # copies: refreshing replaces pool members, never the caller's lists
        self.corpus = {name: list(corpus.get(name, [])) for name in self.sources}
        weights = np.array([(source_weights or {}).get(n, 1.0) for n in self.sources], float)
        if (weights < 0).any() or weights.sum() <= 0:
            raise ValueError(f"source weights must be >= 0 and not all 0: {source_weights}")
        self.source_p = weights / weights.sum()
        self.series_cdf = []
        for name in self.sources:
            if name in self.makers:
                self.series_cdf.append(None)
                continue
            w = np.array(
                [(freq_weights or {}).get(entry_freq(e), 1.0) for e in self.corpus[name]], float
            )
            if w.sum() <= 0:
                w = np.ones_like(w)
            # the cumulative form of rng.choice(p=...), computed once: O(log n) per draw
            cdf = w.cumsum()
            self.series_cdf.append(cdf / cdf[-1])
        self.past_length = past_length
        self.prediction_length = prediction_length
        self.min_past = min_past
        self.short_history_prob = short_history_prob
        self.short_history_range = short_history_range
        self.seed = seed
        self.offset = offset

    def window(self, entry: dict, rng: np.random.Generator) -> dict:
        """A random training window of ``entry``: history then exactly ``h`` future points."""
        target = entry["target"]
        L, h = len(target), self.prediction_length
        lo = min(self.min_past, L - 1)
        split = int(rng.integers(max(lo, 1), L)) if L > 1 else 1
        first = max(0, split - self.past_length)
        if rng.random() < self.short_history_prob:
            a, b = self.short_history_range
            first = max(first, split - int(rng.integers(a, b + 1)))
        window = target[first : split + h]
        if len(window) < split - first + h:
            pad = np.full(split - first + h - len(window), np.nan, dtype=np.float32)
            window = np.concatenate([window, pad])
        return {
            "start": entry["start"] + first,
            "target": window,
            "item_id": entry["item_id"],
        }

    def draw(self, rng: np.random.Generator) -> dict:
        """One entry: pick a source, then a series of it (made anew where configured)."""
        s = rng.choice(len(self.sources), p=self.source_p)
        name = self.sources[s]
        if name in self.makers:
            return self.makers[name](rng)
        entries = self.corpus[name]
        if name in self.refresh:
            maker, p = self.refresh[name]
            if rng.random() < p:
                entry = maker(rng)
                entries[int(rng.integers(len(entries)))] = entry
                return entry
        # the same draw as rng.choice(len(entries), p=...), without its O(n) cumsum
        return entries[int(self.series_cdf[s].searchsorted(rng.random(), side="right"))]

    def __iter__(self) -> Iterator[dict]:
        rng = np.random.default_rng([self.seed, _rank(), self.offset])
        while True:
            yield self.window(self.draw(rng), rng)
