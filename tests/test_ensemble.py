"""Deep ensembles: each member's own paths, mixed series by series."""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
import pytest
from gluonts.dataset.common import ListDataset
from gluonts.model.forecast import QuantileForecast, SampleForecast

from benchmarks.zero_shot import model_label, predictor_factory
from lagllama.ensemble import EnsemblePredictor, mix, sample_shares, split_members
from lagllama.evaluation import BacktestTask
from lagllama.forecasting import lag_llama_predictor
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
