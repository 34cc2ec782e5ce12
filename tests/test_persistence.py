"""The persistence diagnostic (benchmarks/persistence.py) on forecasts whose answer is known."""

import numpy as np

from benchmarks.persistence import persistence


def _walks(n: int = 30, length: int = 300, h: int = 20, seed: int = 0):
    rng = np.random.default_rng(seed)
    series = rng.normal(size=(n, length + h)).cumsum(axis=1)
    inputs = [{"target": s[:length]} for s in series]
    labels = [{"target": s[length:]} for s in series]
    return inputs, labels, h


def test_naive_forecast_has_no_drift_and_ratio_one():
    inputs, labels, h = _walks()
    medians = [np.full(h, e["target"][-1]) for e in inputs]
    r = persistence(inputs, labels, medians)
    assert r["series"] == len(inputs)
    assert r["mean_abs_drift"] == 0.0
    assert np.isclose(r["mae_over_naive"], 1.0)


def test_trend_follower_and_reverter_have_opposite_signs():
    inputs, labels, h = _walks()
    ramp = np.arange(1, h + 1) / h
    trend = [(e["target"][-1] - e["target"][-64]) for e in inputs]
    follow = [e["target"][-1] + t * ramp for e, t in zip(inputs, trend)]
    revert = [e["target"][-1] - t * ramp for e, t in zip(inputs, trend)]
    assert persistence(inputs, labels, follow)["corr_drift_trend"] > 0.99
    assert persistence(inputs, labels, revert)["corr_drift_trend"] < -0.99


def test_flat_histories_are_skipped():
    inputs, labels, h = _walks(n=5)
    inputs[0] = {"target": np.ones(300)}
    r = persistence(inputs, labels, [np.full(h, e["target"][-1]) for e in inputs])
    assert r["series"] == 4
