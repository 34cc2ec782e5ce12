"""Frequency strings: validation, lag sets and the time features the models use."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import pandas as pd
from gluonts.time_feature import (
    TimeFeature,
    day_of_month,
    day_of_week,
    day_of_year,
    get_lags_for_frequency,
    hour_of_day,
    minute_of_hour,
    month_of_year,
    week_of_year,
)
from pandas.tseries.frequencies import to_offset

#: Frequencies whose GluonTS lags Lag-Llama pools into one frequency-independent lag set.
LAG_LLAMA_FREQUENCIES = ("Q", "M", "W", "D", "H", "T", "S")


def validate_freq(freq: str) -> str:
    """Return ``freq`` unchanged if pandas understands it, else raise a ValueError naming it."""
    if not isinstance(freq, str) or not freq:
        raise ValueError(f"unknown frequency {freq!r}: expected a pandas frequency string")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            to_offset(freq)
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(
            f"unknown frequency {freq!r}: not a pandas frequency string (e.g. 'h', 'D', 'W', 'M')"
        ) from err
    return freq


def offset_alias(freq: str) -> str:
    """The offset alias of a period frequency (``"M"`` -> ``"ME"``, ``"Q-DEC"`` -> ``"QE-DEC"``),
    which pandas parses without a deprecation warning; other strings come back unchanged."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # business-day periods
            return pd.Period("2000-01-01", freq=freq).freq.freqstr
    except (ValueError, TypeError):
        return freq


def ignore_gluonts_frequency_warnings() -> None:
    """Silence pandas' deprecated-alias FutureWarning when GluonTS itself parses a frequency.

    Repository datasets carry old aliases (``"H"``, ``"M"``) in their metadata, which GluonTS
    hands to pandas; only that warning, and only from GluonTS, is filtered. Entry points call
    this (the ``lagllama`` command, the demo), never library imports.
    """
    warnings.filterwarnings(
        "ignore",
        message=r"'[\w-]+' is deprecated and will be removed in a future version",
        category=FutureWarning,
        module="gluonts",
    )


def lags_for_frequency(freq: str) -> list[int]:
    """GluonTS's lag set for ``freq`` (lags >= 1, sorted)."""
    validate_freq(freq)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        try:
            lags = get_lags_for_frequency(freq)
        except ValueError as err:
            raise ValueError(f"unknown frequency {freq!r}: GluonTS has no lags for it") from err
    return sorted(set(lags))


def lag_llama_lags() -> list[int]:
    """Lag-Llama's frequency-independent lag set: the union over Q, M, W, D, H, T and S."""
    lags: set[int] = set()
    for freq in LAG_LLAMA_FREQUENCIES:
        lags.update(lags_for_frequency(freq))
    return sorted(lags)


def resolve_lags(lags_seq: Sequence[int] | str | None, freq: str | None) -> list[int]:
    """Lags from an explicit list, the name ``"lag-llama"``, or (None) the data's frequency.

    With neither ``lags_seq`` nor ``freq`` the frequency-independent ``"lag-llama"`` set is
    used, as in the official Lag-Llama estimator (which has no ``freq`` argument).
    """
    if lags_seq is None:
        return lag_llama_lags() if freq is None else lags_for_frequency(freq)
    if isinstance(lags_seq, str):
        if lags_seq != "lag-llama":
            raise ValueError(f"unknown lag set {lags_seq!r}; use 'lag-llama' or a list of ints")
        return lag_llama_lags()
    lags = sorted({int(lag) for lag in lags_seq})
    if not lags or lags[0] < 1:
        raise ValueError(
            f"lags must be positive integers (lag 0 would leak the target): {lags_seq}"
        )
    return lags


def default_time_features() -> list[TimeFeature]:
    """A fixed, frequency-independent set of calendar features, each in [-0.5, 0.5].

    The same seven features for every frequency keep one model usable across frequencies.
    """
    return [
        minute_of_hour,
        hour_of_day,
        day_of_week,
        day_of_month,
        day_of_year,
        month_of_year,
        week_of_year,
    ]
