"""Charts of a detection table: the series, its one-step 80% band and median, and the flags."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from lagllama.detection.api import FLAG, SCORE, VALUE
from lagllama.forecasting.api import ID, TIME
from lagllama.plotting import save_figure


def plot_detection(table: pd.DataFrame, title: str | None = None) -> Figure:
    """One series (rows of one ``item_id``): values, band and median above, scores below."""
    fig = Figure(figsize=(10, 4.5), layout="constrained")
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=(3, 1))
    _draw_series(top, table)
    bottom.plot(table[TIME], table[SCORE], color="tab:gray", lw=0.8)
    bottom.set_ylim(-0.02, 1.02)
    bottom.set_ylabel("score")
    bottom.tick_params(axis="x", labelrotation=30, labelsize=8)
    top.set_title(title if title is not None else str(table[ID].iloc[0]))
    top.legend(fontsize=8, loc="upper left")
    return fig


def _draw_series(ax: Axes, table: pd.DataFrame) -> None:
    x = table[TIME]
    ax.fill_between(
        x, table["0.1"], table["0.9"], color="tab:blue", alpha=0.25, lw=0, label="80% band"
    )
    ax.plot(x, table["0.5"], color="tab:blue", lw=0.8, label="one-step median")
    ax.plot(x, table[VALUE], color="black", lw=0.8, label="value")
    flagged = table[table[FLAG]]
    ax.scatter(flagged[TIME], flagged[VALUE], color="tab:red", s=18, zorder=3, label="flag")


def save_detection_plots(tables: Sequence[pd.DataFrame], folder: Path, label: str) -> list[Path]:
    """One PNG per series' table in ``folder``, named by position and id."""
    paths = []
    for i, table in enumerate(tables):
        item_id = str(table[ID].iloc[0])
        name = re.sub(r"[^\w.-]+", "_", item_id)
        fig = plot_detection(table, title=f"{label}: {item_id}")
        paths.append(save_figure(fig, folder / f"{i + 1:02d}_{name}.png"))
    return paths
