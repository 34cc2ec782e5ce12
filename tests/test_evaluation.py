"""Backtesting: metrics against hand computations, fallbacks, aggregation, reports."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from gluonts.dataset.common import ListDataset
from gluonts.model.seasonal_naive import SeasonalNaivePredictor

from lagllama.data.tasks import BacktestTask, dataset_task, repository_task
from lagllama.evaluation.backtest import backtest, baseline, relative_scores, run_model
from lagllama.evaluation.baselines import FallbackPredictor, impute

PATTERN = np.array([3.0, 5, 9, 4])  # one year of quarterly data (seasonality 4)


def _task(targets: list[np.ndarray], h: int = 7, windows: int = 1) -> BacktestTask:
    ds = ListDataset(
        [{"item_id": f"s{i}", "start": "2001-01-01", "target": t} for i, t in enumerate(targets)],
        freq="Q",
    )
    return dataset_task("synthetic", ds, prediction_length=h, windows=windows)


def test_seasonal_naive_is_perfect_on_a_periodic_series() -> None:
    task = _task([np.tile(PATTERN, 8), np.tile(PATTERN * 10, 6)], h=8)
    assert task.season_length == 4
    row = run_model("seasonal-naive", baseline("seasonal-naive"), task)
    assert row["WQL"] == 0 and row["sMAPE"] == 0 and row["RMSE"] == 0
    assert row["num_series"] == 2 and row["fallbacks"] == 0


def test_wql_and_mase_match_hand_computation() -> None:
    # y_t = t: seasonal naive is off by exactly one season (4) at every step, and so is the
    # in-sample seasonal error, hence MASE = 1, RMSE = 4; every label exceeds every quantile,
    # so quantile loss is 2*q*4 per point and WQL = mean_q(2q) * 4 * h / sum(labels).
    n, h = 36, 4
    task = _task([np.arange(n + h, dtype=float)], h=h)
    row = run_model("seasonal-naive", baseline("seasonal-naive"), task)
    labels = np.arange(n, n + h)
    assert row["MASE"] == pytest.approx(1.0)
    assert row["RMSE"] == pytest.approx(4.0)
    assert row["WQL"] == pytest.approx(4 * h / labels.sum())
    assert row["coverage_80"] == 0 and row["coverage_95"] == 0


def test_windows_and_plugged_in_predictor() -> None:
    task = _task([np.arange(60, dtype=float)], h=5, windows=3)
    assert len(task.test_data()) == 3
    assert [len(e["target"]) for e in task.train_data()] == [45]
    predictor = SeasonalNaivePredictor(prediction_length=5, season_length=4)
    report = backtest([task], {"custom": predictor}, baselines=["seasonal-naive"])
    scores = report.results.set_index("model")
    assert scores.loc["custom", "WQL"] == pytest.approx(scores.loc["seasonal-naive", "WQL"])
    assert scores.loc["custom", "windows"] == 3


def test_statsforecast_failure_on_nan_falls_back_and_is_counted() -> None:
    clean = np.tile(PATTERN, 10) + np.linspace(0, 3, 40)
    gappy = clean.copy()
    gappy[[5, 20]] = np.nan
    task = _task([clean, gappy, gappy * 2])

    raw = baseline("auto-ets", impute_missing=False)(task)
    row = run_model("auto-ets", raw, task)
    assert row["fallbacks"] == 2 and row["imputed"] == 0
    assert [f.split(":")[0] for f in raw.failures] == ["s1", "s2"]

    imputed = baseline("auto-ets")(task)
    row = run_model("auto-ets", imputed, task)
    assert row["fallbacks"] == 0 and row["imputed"] == 2


def test_fallback_forecast_is_seasonal_naive() -> None:
    class Broken(SeasonalNaivePredictor):
        def predict_item(self, item):
            raise RuntimeError("no model able to be fitted")

    task = _task([np.tile(PATTERN, 5)], h=4)
    wrapped = FallbackPredictor(Broken(4, 4), SeasonalNaivePredictor(4, 4))
    (forecast,) = wrapped.predict(task.test_data().input)
    np.testing.assert_allclose(forecast.quantile(0.5), PATTERN)
    assert wrapped.num_fallbacks == 1


def test_impute() -> None:
    np.testing.assert_allclose(impute(np.array([np.nan, 1, np.nan, 3, np.nan])), [1, 1, 2, 3, 3])
    np.testing.assert_allclose(impute(np.array([np.nan, np.nan])), [0, 0])


def test_relative_scores_geometric_mean() -> None:
    results = pd.DataFrame(
        {
            "dataset": ["d1", "d2", "d1", "d2", "d1", "d2"],
            "model": ["seasonal-naive"] * 2 + ["m"] * 2 + ["k"] * 2,
            "WQL": [1.0, 2.0, 0.5, 4.0, 0.25, 1.0],
            "MASE": [2.0, 1.0, 1.0, 1.0, 0.0, 4.0],
        }
    )
    agg = relative_scores(results, metrics=["WQL", "MASE"]).set_index("model")
    assert agg.loc["seasonal-naive", "WQL"] == 1
    assert agg.loc["m", "WQL"] == pytest.approx(1.0)  # sqrt(0.5 * 2)
    assert agg.loc["k", "WQL"] == pytest.approx(math.sqrt(0.25 * 0.5))
    assert agg.loc["m", "MASE"] == pytest.approx(math.sqrt(0.5))
    assert agg.loc["k", "MASE"] == pytest.approx(4.0)  # a zero ratio has no log: left out
    with pytest.raises(ValueError, match="baseline 'naive'"):
        relative_scores(results, baseline_model="naive")


def test_report_files(tmp_path: Path) -> None:
    gappy = np.tile(PATTERN, 6)
    gappy[3] = np.nan
    report = backtest([_task([gappy])], baselines=["auto-theta"], impute_missing=False)
    paths = report.save(tmp_path)
    table = pd.read_csv(paths["csv"])
    assert list(table["model"]) == ["seasonal-naive", "auto-theta"] * 2
    assert table["dataset"].iloc[-1].startswith("aggregate")
    assert table["fallbacks"].iloc[1] == 1
    doc = json.loads(paths["json"].read_text())
    assert doc["config"]["models"] == ["seasonal-naive", "auto-theta"]
    assert "gluonts" in doc["versions"] and doc["results"][0]["s_per_series"] >= 0
    markdown = paths["markdown"].read_text()
    assert (
        "auto-theta on synthetic: 1 of 1 forecasts fell back to seasonal naive; 0 inputs"
        in markdown
    )


def test_unknown_baseline() -> None:
    with pytest.raises(ValueError, match="unknown baseline 'prophet'"):
        baseline("prophet")


def test_m1_quarterly_seasonal_naive_reproduces_chronos(shared_datasets: Path) -> None:
    task = repository_task("m1_quarterly", shared_datasets, download=False)
    row = run_model("seasonal-naive", baseline("seasonal-naive"), task)
    assert round(row["WQL"], 3) == 0.150
    assert round(row["MASE"], 3) == 2.078
