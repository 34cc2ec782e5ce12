"""Deep ensembles: each member's own paths, mixed series by series."""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
import pytest
import torch
from gluonts.dataset.common import ListDataset
from gluonts.model.forecast import QuantileForecast, SampleForecast
from gluonts.model.predictor import Predictor

from benchmarks.zero_shot import model_label, predictor_factory
from lagllama.data.tasks import BacktestTask
from lagllama.forecasting.ensembles import (
    EnsemblePredictor,
    QuantileEnsemble,
    mix,
    quantile_loss,
    sample_shares,
    select_weights,
)
from lagllama.forecasting.specs import lag_llama_predictor, split_members
from lagllama.pretrained import DEFAULT_NAME, checkpoint_path


def _data(n: int = 5) -> ListDataset:
    rng = np.random.default_rng(0)
    return ListDataset(
        [
            {"item_id": f"s{i}", "start": "2020-01", "target": 50 + rng.normal(size=30).cumsum()}
            for i in range(n)
        ],
        freq="M",
    )


def test_sample_shares_split_evenly_and_refuse_too_few_paths() -> None:
    assert sample_shares(100, 2) == [50, 50]
    assert sample_shares(100, 3) == [34, 33, 33]
    assert sum(sample_shares(7, 4)) == 7
    with pytest.raises(ValueError, match="cannot be shared"):
        sample_shares(2, 3)
    assert split_members("a + b") == ["a", "b"]
    with pytest.raises(ValueError, match="empty ensemble member"):
        split_members("a++b")


def test_ensemble_holds_exactly_each_members_paths_from_a_stream() -> None:
    data = _data()
    checkpoint = checkpoint_path(DEFAULT_NAME)
    a = lag_llama_predictor(checkpoint, 3, num_samples=6, seed=1)
    b = lag_llama_predictor(checkpoint, 3, num_samples=4, seed=2)
    mixed = list(EnsemblePredictor([a, b]).predict(iter(data)))  # a one-pass stream
    assert torch.is_grad_enabled()  # the members' no_grad blocks, interleaved, do not leak
    alone_a, alone_b = list(a.predict(data)), list(b.predict(data))
    assert len(mixed) == len(data)
    for m, x, y in zip(mixed, alone_a, alone_b):
        assert m.samples.shape == (10, 3)
        np.testing.assert_array_equal(m.samples, np.concatenate([x.samples, y.samples]))
        assert (m.item_id, m.start_date) == (x.item_id, x.start_date)
    assert not np.allclose(alone_a[0].samples[:4], alone_b[0].samples)  # members differ


def test_ensemble_refuses_mismatched_members() -> None:
    checkpoint = checkpoint_path(DEFAULT_NAME)
    with pytest.raises(ValueError, match="different horizons"):
        EnsemblePredictor([lag_llama_predictor(checkpoint, h, num_samples=2) for h in (3, 4)])
    start = pd.Period("2020-01", "M")
    one = SampleForecast(np.ones((2, 3)), start_date=start, item_id="a")
    with pytest.raises(ValueError, match="disagree on the series"):
        mix([one, SampleForecast(np.ones((2, 3)), start_date=start, item_id="b")])
    quantiles = QuantileForecast(np.ones((1, 3)), start_date=start, forecast_keys=["0.5"])
    with pytest.raises(TypeError, match="sample forecasts"):
        mix([one, quantiles])


def test_benchmark_model_specs_build_ensembles_sharing_the_paths() -> None:
    args = argparse.Namespace(num_samples=9, batch_size=4, context_length=None, seed=0)
    spec = f"{DEFAULT_NAME}+{DEFAULT_NAME}"
    predictor = predictor_factory(spec, args)(BacktestTask("x", [], 3, "M"))
    assert isinstance(predictor, EnsemblePredictor)
    assert [m.prediction_net.num_parallel_samples for m in predictor.members] == [5, 4]
    forecast = next(iter(predictor.predict(_data(1))))
    assert forecast.samples.shape == (9, 3) and np.isfinite(forecast.samples).all()
    assert model_label("runs/x/checkpoints/last.ckpt+lagllama-small") == (
        "ckpt:x/last+lagllama-small"
    )


# ------------------------------------------------------------ hybrid: quantile averaging
def test_quantile_loss_equals_gluonts_weighted_quantile_loss() -> None:
    from gluonts.ev.metrics import MeanWeightedSumQuantileLoss
    from gluonts.model.evaluation import evaluate_forecasts

    from lagllama.data.tasks import dataset_task
    from lagllama.evaluation.backtest import WQL_QUANTILES

    rng = np.random.default_rng(3)
    data = list(_data(4))
    task = dataset_task("x", data, 5)
    truth = np.stack([np.asarray(e["target"])[-5:] for e in data])
    quantiles = truth[:, None, :] + rng.normal(size=(4, 9, 5)).cumsum(axis=1)
    forecasts = [
        QuantileForecast(
            q, start_date=e["start"] + 25, forecast_keys=[str(x) for x in WQL_QUANTILES]
        )
        for q, e in zip(np.sort(quantiles, axis=1), data)
    ]
    expected = evaluate_forecasts(
        forecasts,
        test_data=task.test_data(),
        metrics=[MeanWeightedSumQuantileLoss(quantile_levels=WQL_QUANTILES)],
    ).iloc[0, 0]
    assert quantile_loss(np.sort(quantiles, axis=1), truth, WQL_QUANTILES) == pytest.approx(
        expected, rel=1e-6
    )


def test_select_weights_prefers_the_member_right_on_the_validation_window() -> None:
    rng = np.random.default_rng(0)
    target = rng.normal(size=(20, 6)) + 10
    levels = (0.1, 0.5, 0.9)
    good = np.repeat(target[:, None, :], 3, axis=1) + np.array([-1, 0, 1])[None, :, None]
    bad = good + 5
    assert select_weights([bad, good], target, levels).tolist() == [0.0, 1.0]
    # two members wrong in opposite directions: the average beats either, so both are kept
    low, high = good - 3, good + 3
    weights = select_weights([low, high], target, levels, rounds=20)
    assert weights.sum() == pytest.approx(1.0) and 0.3 <= weights[0] <= 0.7


class _Constant(Predictor):
    """Forecasts ``value`` at every quantile (no sample paths), like a point baseline."""

    def __init__(self, value: float, keys: tuple[str, ...] = ("0.1", "0.5", "0.9")) -> None:
        super().__init__(prediction_length=3)
        self.value, self.keys = value, [*keys, "mean"]

    def predict(self, dataset, **kwargs):
        for entry in dataset:
            start = pd.Period(entry["start"]) + len(entry["target"])
            yield QuantileForecast(
                np.full((len(self.keys), self.prediction_length), self.value),
                start_date=start,
                forecast_keys=self.keys,
                item_id=entry.get("item_id"),
            )


def test_quantile_ensemble_fits_weights_on_the_window_before_the_forecast() -> None:
    start = pd.Period("2020-01", "M")
    # the last 3 points (the validation window) are 10: member "ten" is right there
    data = [{"start": start, "item_id": f"s{i}", "target": np.full(12, 10.0)} for i in range(3)]
    ensemble = QuantileEnsemble([_Constant(0.0), _Constant(10.0)], ["zero", "ten"], (0.1, 0.5, 0.9))
    forecasts = list(ensemble.predict(data))
    assert ensemble.last_weights.tolist() == [0.0, 1.0]
    assert forecasts[0].start_date == start + 12 and forecasts[0].item_id == "s0"
    np.testing.assert_allclose(forecasts[0].quantile(0.5), 10.0)
    fixed = QuantileEnsemble(
        [_Constant(0.0), _Constant(10.0)], ["zero", "ten"], (0.5,), weights=[1, 3]
    )
    np.testing.assert_allclose(next(iter(fixed.predict(data))).mean, 7.5)
    short = [{"start": start, "target": np.ones(4)}]  # no room for a validation window
    list(ensemble.predict(short))
    assert ensemble.last_weights.tolist() == [0.5, 0.5]
    with pytest.raises(ValueError, match="no quantile 0.1"):
        list(QuantileEnsemble([_Constant(1.0, keys=("0.5",))], ["x"], (0.1, 0.5)).predict(data))
    with pytest.raises(ValueError, match="one non-negative weight per member"):
        QuantileEnsemble([_Constant(0.0)], ["x"], (0.5,), weights=[1, 2])


class _FailsOnFlat(_Constant):
    """A statistical member that cannot fit a constant series (gives ``None`` for it)."""

    def predict(self, dataset, **kwargs):
        for entry, forecast in zip(dataset, super().predict(dataset)):
            yield None if np.ptp(entry["target"]) == 0 else forecast


def test_quantile_ensemble_uses_rolling_windows_drops_failing_members_and_equal_weights() -> None:
    start = pd.Period("2020-01", "M")
    rng = np.random.default_rng(0)
    # 3 rolling windows of 3 points: 10 in the first two windows before the end, 0 in the last
    target = np.concatenate([rng.normal(size=6), np.full(6, 10.0), np.zeros(3)])
    data = [{"start": start, "item_id": f"s{i}", "target": target} for i in range(4)]
    ensemble = QuantileEnsemble([_Constant(0.0), _Constant(10.0)], ["zero", "ten"], (0.5,))
    assert ensemble.fit(data).tolist() == [0.0, 1.0]  # two windows of three say "ten"
    ensemble.windows = 1
    assert ensemble.fit(data).tolist() == [1.0, 0.0]  # the last window alone says "zero"
    hybrid = QuantileEnsemble([_Constant(4.0), _FailsOnFlat(10.0)], ["ll", "theta"], (0.5,))
    hybrid.weights = np.array([0.25, 0.75])
    flat = {"start": start, "item_id": "flat", "target": np.full(20, 3.0)}
    short = {"start": start, "item_id": "short", "target": np.arange(4.0)}
    both = {"start": start, "item_id": "ok", "target": np.arange(20.0)}
    out = {f.item_id: f.quantile(0.5)[0] for f in hybrid.predict([flat, short, both])}
    assert out == pytest.approx({"flat": 4.0, "short": 7.0, "ok": 0.25 * 4 + 0.75 * 10})
    assert hybrid.counts == {"dropped:theta": 1, "equal_weights": 1}


def test_validation_sample_does_not_depend_on_order_or_chunking() -> None:
    from lagllama.forecasting.ensembles import validation_sample

    entries = [{"item_id": f"s{i}", "target": np.zeros(3)} for i in range(50)]
    ids = [e["item_id"] for e in validation_sample(entries, size=7)]
    assert len(ids) == 7 == len(set(ids))
    assert [e["item_id"] for e in validation_sample(reversed(entries), size=7)] == ids
    assert len(validation_sample(entries[:5], size=7)) == 5


def test_hybrid_specs_in_the_benchmark_and_the_forecast_api() -> None:
    from lagllama.forecasting.api import forecast

    args = argparse.Namespace(num_samples=8, batch_size=4, context_length=None, seed=0)
    predictor = predictor_factory(f"{DEFAULT_NAME}+seasonal-naive", args)(
        BacktestTask("x", [], 3, "M")
    )
    assert isinstance(predictor, QuantileEnsemble)
    assert predictor.members[0].prediction_net.num_parallel_samples == 8  # all the paths
    args.num_samples = 100
    mixed = predictor_factory(f"{DEFAULT_NAME}+{DEFAULT_NAME}+auto-theta", args)(
        BacktestTask("x", [], 3, "M")
    )
    # the Lag-Llama members are one member, their mixture; validation draws fewer paths
    assert mixed.names == [f"{DEFAULT_NAME}+{DEFAULT_NAME}", "auto-theta"]
    assert [m.prediction_net.num_parallel_samples for m in mixed.members[0].members] == [50, 50]
    validator = mixed.validators[0]
    assert [m.prediction_net.num_parallel_samples for m in validator.members] == [25, 25]
    assert mixed.validators[1] is mixed.members[1]
    frame = pd.DataFrame(
        {
            "item_id": np.repeat(["a", "b"], 30),
            "timestamp": np.tile(pd.date_range("2020-01-01", periods=30, freq="MS"), 2),
            "target": np.random.default_rng(0).normal(size=60).cumsum() + 50,
        }
    )
    table = forecast(frame, 3, model=f"{DEFAULT_NAME}+auto-theta", num_samples=8)
    assert len(table) == 6 and np.isfinite(table[["mean", "0.1", "0.5", "0.9"]]).all().all()
    assert (table["0.1"] <= table["0.5"]).all() and (table["0.5"] <= table["0.9"]).all()
    with pytest.raises(ValueError, match="at least one Lag-Llama member"):
        forecast(frame, 3, model="auto-theta+seasonal-naive")


def test_statistical_members_of_a_hybrid_see_the_last_points_only() -> None:
    from lagllama.evaluation.baselines import FallbackPredictor

    seen = []

    class _Recorder(_Constant):
        def predict(self, dataset, **kwargs):
            for entry in dataset:
                seen.append(len(entry["target"]))
                yield from super().predict([entry])

    start = pd.Period("2020-01", "M")
    entry = {"start": start, "item_id": "a", "target": np.arange(50.0)}
    (forecast,) = FallbackPredictor(_Recorder(1.0), None, max_history=20).predict([entry])
    assert seen == [20] and forecast.start_date == start + 50
