"""Fan charts: band ordering for sample and quantile forecasts, valid image files."""

from __future__ import annotations

from pathlib import Path

import matplotlib.image
import numpy as np
import pandas as pd
import pytest
from gluonts.model.forecast import QuantileForecast, SampleForecast
from matplotlib.collections import PolyCollection

from lagllama.plotting import band_quantiles, plot_forecast, plot_grid, save_figure

H = 12
START = pd.Period("2022-01", "M")  # 60 months after the series starts


def _series() -> pd.Series:
    index = pd.period_range("2017-01", periods=60 + H, freq="M")
    return pd.Series(np.sin(np.arange(len(index)) / 2) * 10 + 50, index=index)


def _sample_forecast() -> SampleForecast:
    rng = np.random.default_rng(0)
    samples = 50 + rng.normal(0, 1, (200, 1)) * np.linspace(1, 5, H) + np.arange(H)
    return SampleForecast(samples=samples, start_date=START, item_id="sampled")


def _quantile_forecast() -> QuantileForecast:
    levels = band_quantiles()
    spread = np.linspace(1, 4, H)
    arrays = np.stack([50 + (q - 0.5) * 10 * spread for q in levels])
    return QuantileForecast(
        arrays, start_date=START, forecast_keys=[str(q) for q in levels], item_id="quantiles"
    )


@pytest.mark.parametrize("make", [_sample_forecast, _quantile_forecast])
def test_bands_are_ordered(make) -> None:
    ax, drawn = plot_forecast(make(), _series())
    assert sorted(drawn) == [0.025, 0.1, 0.25, 0.5, 0.75, 0.9, 0.975]
    levels = sorted(drawn)
    for lo, hi in zip(levels, levels[1:]):
        assert np.all(drawn[lo] <= drawn[hi]), (lo, hi)
    assert np.all(drawn[0.025] < drawn[0.975])

    bands = [c for c in ax.collections if isinstance(c, PolyCollection)]
    assert len(bands) == 3  # 95%, 80%, 50%, drawn widest first
    heights = [np.ptp(b.get_paths()[0].vertices[:, 1]) for b in bands]
    assert heights[0] >= heights[1] >= heights[2] > 0
    top = bands[0].get_paths()[0].vertices[:, 1]
    assert top.max() == pytest.approx(drawn[0.975].max())
    assert top.min() == pytest.approx(drawn[0.025].min())

    lines = {line.get_label(): line for line in ax.get_lines()}
    assert set(lines) == {"history", "actual", "median"}
    assert len(lines["actual"].get_ydata()) == H
    assert len(lines["history"].get_ydata()) == 4 * H  # default history: 4 horizons
    assert ax.get_title() == make().item_id


def test_quantile_forecast_without_band_quantiles_fails_loudly() -> None:
    forecast = QuantileForecast(
        np.ones((1, H)), start_date=START, forecast_keys=["0.5"], item_id="median-only"
    )
    with pytest.raises(ValueError, match=r"no finite values for quantile\(s\) \[0.025, 0.1"):
        plot_forecast(forecast)


@pytest.mark.parametrize(
    "suffix, magic", [(".png", b"\x89PNG"), (".svg", b"<?xml"), (".pdf", b"%PDF")]
)
def test_grid_saves_valid_images(tmp_path: Path, suffix: str, magic: bytes) -> None:
    forecasts = [_sample_forecast(), _quantile_forecast(), _sample_forecast()]
    fig = plot_grid(forecasts, [_series()] * 3, ncols=2, title="grid")
    assert sum(ax.get_visible() for ax in fig.axes) == 3 and len(fig.axes) == 4
    path = save_figure(fig, tmp_path / "sub" / f"fan{suffix}")
    assert path.read_bytes()[: len(magic)] == magic
    if suffix == ".png":
        image = matplotlib.image.imread(path)
        assert image.ndim == 3 and image.shape[0] > 300 and image.shape[1] > 500


def test_bad_inputs() -> None:
    with pytest.raises(ValueError, match="no forecasts"):
        plot_grid([])
    fig = plot_grid([_sample_forecast()])
    with pytest.raises(ValueError, match="unsupported image type '.jpg'"):
        save_figure(fig, "fan.jpg")
