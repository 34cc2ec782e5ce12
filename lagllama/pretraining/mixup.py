"""TSMixup (Ansari et al., 2024, Chronos): convex combinations of real series.

A mixed series is ``sum_i w_i * x_i / mean|x_i|`` over ``k`` segments of equal length cut
from real series of one frequency, with Dirichlet weights ``w``. It multiplies the variety
of a small real corpus without inventing dynamics, and ``k = 1`` is a plain rescaled copy.
Mixing only series of the same frequency keeps calendar features and seasonal lags honest.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np


class TSMixup:
    """Draws mixed entries from ``corpus`` ({source: entries}), grouped by frequency.

    ``max_components`` bounds ``k`` (uniform in 1..max), ``alpha`` is the Dirichlet
    concentration, segment lengths are uniform in ``length_range`` (capped by the shortest
    component). Frequencies are picked in proportion to how many series they hold.
    """

    def __init__(
        self,
        corpus: Mapping[str, list[dict]],
        max_components: int = 3,
        alpha: float = 1.5,
        length_range: tuple[int, int] = (32, 1200),
        min_length: int = 16,
    ) -> None:
        if max_components < 1 or alpha <= 0:
            raise ValueError("TSMixup needs max_components >= 1 and alpha > 0")
        groups: dict[str, list[dict]] = {}
        for entries in corpus.values():
            for entry in entries:
                if len(entry["target"]) >= min_length:
                    groups.setdefault(entry["start"].freqstr, []).append(entry)
        if not groups:
            raise ValueError(f"TSMixup found no series of at least {min_length} points")
        self.freqs = sorted(groups)
        self.groups = [groups[f] for f in self.freqs]
        sizes = np.array([len(g) for g in self.groups], dtype=float)
        self.freq_p = sizes / sizes.sum()
        self.max_components = max_components
        self.alpha = alpha
        self.length_range = length_range

    def __call__(self, rng: np.random.Generator) -> dict:
        group = self.groups[rng.choice(len(self.groups), p=self.freq_p)]
        k = int(rng.integers(1, self.max_components + 1))
        parts = [group[i] for i in rng.choice(len(group), size=k)]
        shortest = min(len(p["target"]) for p in parts)
        lo, hi = self.length_range
        length = min(shortest, int(rng.integers(lo, hi + 1)))
        weights = rng.dirichlet(np.full(k, self.alpha))
        mixed = np.zeros(length, dtype=np.float64)
        first = None
        for weight, part in zip(weights, parts):
            offset = int(rng.integers(0, len(part["target"]) - length + 1))
            segment = part["target"][offset : offset + length].astype(np.float64)
            level = np.nanmean(np.abs(segment)) if np.isfinite(segment).any() else 0.0
            mixed += weight * segment / (level if level > 0 else 1.0)
            if first is None:
                first = part["start"] + offset
        return {
            "start": first,
            "target": mixed.astype(np.float32),
            "item_id": "tsmixup:" + "+".join(p["item_id"] for p in parts),
        }
