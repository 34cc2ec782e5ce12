"""Small real datasets that ship inside statsmodels, for offline demos and smoke tests.

Each comes back as a GluonTS ``ListDataset`` with a forecast horizon suited to its frequency:
US quarterly macro series, monthly El Nino sea-surface temperatures, weekly Mauna Loa CO2
and yearly sunspot numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from gluonts.dataset.common import ListDataset


@dataclass(frozen=True)
class SampleDataset:
    """A named real dataset with its frequency and forecast horizon."""

    name: str
    dataset: ListDataset
    freq: str
    prediction_length: int


def _entries(frame: pd.DataFrame, freq: str) -> ListDataset:
    """One entry per column of a period-indexed frame."""
    start = frame.index[0]
    return ListDataset(
        [
            {"start": start, "target": frame[col].to_numpy(dtype=np.float32), "item_id": col}
            for col in frame.columns
        ],
        freq=freq,
    )


def load_sample_datasets() -> list[SampleDataset]:
    """The statsmodels datasets as GluonTS datasets (needs the ``data`` extra: statsmodels)."""
    try:
        from statsmodels import datasets
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("the demo data needs statsmodels: pip install 'lagllama[data]'") from err

    macro = datasets.macrodata.load_pandas().data
    macro.index = pd.period_range("1959Q1", periods=len(macro), freq="Q")
    macro = macro[["realgdp", "realcons", "cpi", "unemp", "m1"]]

    elnino = datasets.elnino.load_pandas().data.set_index("YEAR")
    temps = elnino.to_numpy().ravel()
    elnino = pd.DataFrame(
        {"elnino_sst": temps},
        index=pd.period_range(f"{int(elnino.index[0])}-01", periods=len(temps), freq="M"),
    )

    co2 = datasets.co2.load_pandas().data
    co2.index = pd.PeriodIndex(co2.index, freq="W-SAT")
    co2 = co2.rename(columns={"co2": "mauna_loa_co2"})

    sun = datasets.sunspots.load_pandas().data
    sun = pd.DataFrame(
        {"sunspots": sun["SUNACTIVITY"].to_numpy()},
        index=pd.period_range(str(int(sun["YEAR"].iloc[0])), periods=len(sun), freq="Y"),
    )
    # GluonTS parses the dataset frequency as an offset: give the aliases pandas >= 2.2 keeps
    return [
        SampleDataset("us_macro_quarterly", _entries(macro, "QE"), "Q", 8),
        SampleDataset("elnino_monthly", _entries(elnino, "ME"), "M", 12),
        SampleDataset("co2_weekly", _entries(co2, "W-SAT"), "W-SAT", 13),
        SampleDataset("sunspots_yearly", _entries(sun, "YE"), "Y", 6),
    ]
