"""Anomaly detection: no look-ahead, missing values, constant and short streams, the CLI and
the baseline, on the shipped small model (lagllama-fast) and seasonal naive."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import lagllama
from lagllama.cli import main
from lagllama.detection import Calibration, Detector
from lagllama.detection.calibration import RED, YELLOW, anomaly_scores

MODELS = ("lagllama-fast", "seasonal-naive")
#: Short windows, so that a few hundred points exercise every part of the calibration.
QUICK = Calibration(warmup=8, min_samples=20, history=120)
COLUMNS = ["item_id", "timestamp", "value", "score", "flag", "0.5", "0.1", "0.9"]


@pytest.fixture(scope="module", params=MODELS)
def detector(request: pytest.FixtureRequest) -> Detector:
    return Detector(request.param, calibration=QUICK)


def entry(values: np.ndarray, freq: str = "h") -> dict:
    return {"start": pd.Period("2024-01-01", freq=freq), "target": values.astype(np.float32)}


def daily_wave(length: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(length)
    return 10 + 2 * np.sin(2 * np.pi * t / 24) + 0.2 * rng.standard_normal(length)


def outputs(detector: Detector, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per point: the prediction (median, band) as rows, and what the value adds (log tail,
    score)."""
    (result,) = detector.detect([entry(values)])
    p = result.predictions
    return np.vstack([p.median, p.low, p.high]), np.vstack([p.log_tail, result.scores])


def test_changing_the_future_never_changes_the_past(detector: Detector) -> None:
    rng = np.random.default_rng(1)
    values = daily_wave(300)
    predicted, scored = outputs(detector, values)
    assert np.isfinite(predicted[:, 100:]).all() and np.isfinite(scored[:, 200:]).all()
    assert (scored[1, 200:] > 0).any()
    same = {"rtol": 1e-6, "atol": 1e-9}
    # a few random cut points, across the ramp of short blocks and several whole blocks
    for t in sorted(rng.choice(np.arange(2, 298), size=4, replace=False)):
        changed = values.copy()
        changed[t + 1 :] = rng.normal(50.0, 30.0, len(values) - t - 1)
        after_predicted, after_scored = outputs(detector, changed)
        # the prediction of t + 1 reads values up to t only; its score reads x[t + 1] too
        np.testing.assert_allclose(after_predicted[:, : t + 2], predicted[:, : t + 2], **same)
        np.testing.assert_allclose(after_scored[:, : t + 1], scored[:, : t + 1], **same)
        assert not np.allclose(after_predicted[:, t + 2 :], predicted[:, t + 2 :])
        # and a stream that stops at t is scored as the long one was, up to t
        prefix_predicted, prefix_scored = outputs(detector, values[: t + 1])
        np.testing.assert_allclose(prefix_predicted, predicted[:, : t + 1], **same)
        np.testing.assert_allclose(prefix_scored, scored[:, : t + 1], **same)


def test_a_spike_is_flagged(detector: Detector) -> None:
    values = daily_wave(300)
    values[250] += 6.0
    (result,) = detector.detect([entry(values)])
    flagged = np.flatnonzero(result.scores >= RED)
    assert 250 in flagged
    assert len(flagged) <= 3


def test_missing_values_have_no_score_and_no_flag() -> None:
    values = daily_wave(260)
    missing = [5, 100, 101, 102, 230]
    values[missing] = np.nan
    frame = pd.DataFrame(
        {"timestamp": pd.date_range("2024-01-01", periods=260, freq="h"), "y": values}
    )
    for model in MODELS:
        table = lagllama.detect(frame, model=model, threshold=0.0, calibration=QUICK)
        assert list(table.columns) == COLUMNS and len(table) == 260
        assert table["score"].isna().to_numpy()[missing].all()
        assert not table["flag"].to_numpy()[missing].any()  # even at threshold 0
        scored = table.drop(index=missing)
        assert scored["score"].notna().all() and (scored["score"].iloc[150:] > 0).any()


@pytest.mark.parametrize("surprise", ["errors", "tail"])
def test_a_constant_stream_raises_no_flag(surprise: str) -> None:
    frame = pd.DataFrame(
        {"timestamp": pd.date_range("2024-01-01", periods=600, freq="5min"), "value": 7.0}
    )
    for model in MODELS:
        table = lagllama.detect(frame, model=model, calibration=Calibration(surprise=surprise))
        assert not table["flag"].any()
        assert table["score"].max() < YELLOW


def test_streams_shorter_than_the_context_are_scored() -> None:
    rows = [
        pd.DataFrame(
            {
                "unique_id": name,
                "ds": pd.date_range("2024-01-01", periods=n, freq="D"),
                "y": daily_wave(n),
            }
        )
        for name, n in (("one", 1), ("two", 2), ("twenty", 20))
    ]
    for model in MODELS:
        table = lagllama.detect(pd.concat(rows), model=model, calibration=QUICK)
        assert table.groupby("item_id", sort=False).size().to_dict() == {
            "one": 1,
            "two": 2,
            "twenty": 20,
        }
        assert table["score"].notna().all() and table["score"].between(0, 1).all()
        assert np.isnan(table["0.5"].iloc[0])  # the first point has no past


def _long_csv(path: Path) -> Path:
    frames = []
    for i, item in enumerate(["a", "b"]):
        values = daily_wave(240, seed=i)
        values[200] += 8.0
        stamps = pd.date_range("2024-01-01", periods=240, freq="h")
        frames.append(pd.DataFrame({"item_id": item, "timestamp": stamps, "target": values}))
    pd.concat(frames).to_csv(path, index=False)
    return path


def test_cli_writes_one_row_per_point_and_charts(tmp_path: Path, capsys) -> None:
    data = _long_csv(tmp_path / "in.csv")
    out = tmp_path / "out.csv"
    status = main(
        ["detect", "--file", str(data), "--output", str(out), "--plot", str(tmp_path / "charts")]
        + ["--quiet"]
    )
    assert status == 0
    table = pd.read_csv(out)
    assert list(table.columns) == COLUMNS and len(table) == 480
    assert table["item_id"].unique().tolist() == ["a", "b"]
    assert sorted(p.name for p in (tmp_path / "charts").iterdir()) == ["01_a.png", "02_b.png"]
    assert "wrote 480 rows of 2 series" in capsys.readouterr().out


def test_cli_baseline_and_threshold(tmp_path: Path) -> None:
    data = _long_csv(tmp_path / "in.csv")
    out = tmp_path / "out.parquet"
    args = ["detect", "--file", str(data), "--output", str(out), "--model", "seasonal-naive"]
    assert main([*args, "--threshold", "1.0", "--quiet"]) == 0
    strict = pd.read_parquet(out)
    assert main([*args, "--threshold", "0.0", "--quiet"]) == 0
    assert strict["flag"].sum() <= pd.read_parquet(out)["flag"].sum() == 480


def test_cli_irregular_timestamps_fail_as_forecast_does(tmp_path: Path, capsys) -> None:
    stamps = pd.to_datetime(["2024-01-01", "2024-01-02", "2024-01-04", "2024-01-07"])
    path = tmp_path / "irregular.csv"
    pd.DataFrame({"timestamp": stamps, "value": [1.0, 2.0, 3.0, 4.0]}).to_csv(path, index=False)
    errors = []
    for command in (["detect"], ["forecast", "--prediction-length", "2"]):
        status = main([*command, "--file", str(path), "--output", str(tmp_path / "o.csv")])
        assert status == 2
        errors.append(capsys.readouterr().err)
    assert errors[0] == errors[1] and "irregular timestamps" in errors[0]
    assert not (tmp_path / "o.csv").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--threshold", "1.5"], "threshold must be in [0, 1]"),
        (["--spatial-tolerance", "-1"], "spatial_tolerance must be >= 0"),
        (["--model", "auto-ets"], "the baseline detector is seasonal-naive"),
        (["--model", "lagllama-fast+lagllama-large"], "detection takes one model"),
    ],
)
def test_cli_bad_options(tmp_path: Path, capsys, args: list[str], message: str) -> None:
    data = _long_csv(tmp_path / "in.csv")
    status = main(["detect", "--file", str(data), "--output", str(tmp_path / "o.csv"), *args])
    assert status == 2 and message in capsys.readouterr().err


def test_a_new_extreme_scores_one_unless_the_spatial_rule_is_off() -> None:
    """HTM's spatial rule: a value beyond the range seen so far by more than 5% of it scores
    1 after the learning period, whatever the forecaster expected; within 5% it does not."""
    from lagllama.detection.calibration import beyond_range

    values = daily_wave(300)
    low, high = values[:250].min(), values[:250].max()
    values[250] = high + 0.2 * (high - low)  # far beyond the range
    values[270] = values[250] + 0.01 * (values[250] - low)  # a new maximum, within 5%
    beyond = beyond_range(values, 0.05)
    assert beyond[250] and not beyond[270]
    assert not beyond[251:270].any()  # the range now includes the spike
    # causal: what comes after t never changes whether t is beyond the range
    changed = values.copy()
    changed[261:] = 100.0
    np.testing.assert_array_equal(beyond_range(changed, 0.05)[:261], beyond[:261])
    prediction = Detector("seasonal-naive", calibration=QUICK).detect([entry(values)])[0]
    scores = anomaly_scores(prediction.predictions, values, QUICK)
    assert scores[250] == 1.0
    early = daily_wave(300)
    early[10] = 100.0  # beyond the range, but during the learning period: no score yet
    assert beyond_range(early, 0.05)[10]
    assert anomaly_scores(prediction.predictions, early, QUICK)[10] == 0.0
    off = anomaly_scores(prediction.predictions, values, replace(QUICK, spatial_tolerance=None))
    assert (off <= scores + 1e-12)[~np.isnan(scores)].all()
    with pytest.raises(ValueError, match="spatial_tolerance"):
        Calibration(spatial_tolerance=-0.1)
