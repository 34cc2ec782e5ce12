"""Scalers and frequency handling."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lagllama.data.frequency import lag_llama_lags, lags_for_frequency, resolve_lags, validate_freq
from lagllama.nn.scaling import RobustScaler, make_scaler


def test_robust_scaler_is_median_and_iqr() -> None:
    data = torch.randn(3, 101) * 4 + 10
    _, loc, scale = RobustScaler()(data, torch.ones_like(data))
    arr = data.numpy()
    np.testing.assert_allclose(loc[:, 0], np.median(arr, axis=1), rtol=1e-5)
    iqr = np.quantile(arr, 0.75, axis=1) - np.quantile(arr, 0.25, axis=1)
    np.testing.assert_allclose(scale[:, 0], iqr, rtol=1e-4)


def test_robust_scaler_ignores_unobserved_values() -> None:
    data = torch.tensor([[1.0, 2.0, 3.0, 1e6]])
    observed = torch.tensor([[1.0, 1.0, 1.0, 0.0]])
    _, loc, _ = RobustScaler()(data, observed)
    assert loc.item() == 2.0


def test_robust_scaler_has_a_sane_floor_for_flat_series() -> None:
    data = torch.tensor([[5.0] * 20, [0.0] * 19 + [4.0], [0.0] * 20])
    scaled, loc, scale = RobustScaler()(data, torch.ones_like(data))
    assert scale[0].item() == pytest.approx(5e-3)  # 0.1% of the level, never 1e-10
    assert scale[1].item() == pytest.approx(0.2)  # mean absolute deviation of the spike
    assert scale[2].item() == pytest.approx(1e-3)
    assert torch.isfinite(scaled).all()


def test_scalers_without_observations_are_neutral() -> None:
    data = torch.randn(2, 10)
    for name in ("robust", "mean", "std", "none"):
        _, loc, scale = make_scaler(name)(data, torch.zeros_like(data))
        assert torch.isfinite(loc).all() and torch.isfinite(scale).all() and (scale > 0).all()
    with pytest.raises(ValueError, match="unknown scaling 'minmax'"):
        make_scaler("minmax")


def test_unknown_frequency_is_a_value_error_naming_it() -> None:
    with pytest.raises(ValueError, match="'fortnightly'"):
        validate_freq("fortnightly")
    with pytest.raises(ValueError, match="'XYZ'"):
        lags_for_frequency("XYZ")


def test_lag_sets() -> None:
    assert lags_for_frequency("h")[:3] == [1, 2, 3]
    union = lag_llama_lags()
    assert set(lags_for_frequency("D")) <= set(union) and min(union) == 1
    assert resolve_lags([3, 1, 1], None) == [1, 3]
    with pytest.raises(ValueError, match="lag 0"):
        resolve_lags([0, 1], None)
    # without freq, the official estimator's frequency-independent lag set
    assert resolve_lags(None, None) == union
