"""Trained covariates of ``LagLlamaEstimator``: causality, cached sampling, zero-init
fine-tuning, learning an effect, serialisation and bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from gluonts.torch.model.predictor import PyTorchPredictor

from lagllama.estimators.lag_llama import LagLlamaEstimator
from lagllama.estimators.lag_llama.config import LagLlamaConfig
from lagllama.estimators.lag_llama.module import LagLlamaModel

TINY = {"n_layer": 2, "n_head": 2, "n_embd_per_head": 8}
QUIET = {
    "accelerator": "cpu",
    "enable_progress_bar": False,
    "logger": False,
    "enable_model_summary": False,
}
COVARIATES = {
    "num_feat_dynamic_real": 2,
    "num_past_feat_dynamic_real": 1,
    "num_feat_static_real": 1,
    "num_feat_static_cat": 1,
    "cardinality": [3],
}


def covariate_model() -> LagLlamaModel:
    config = LagLlamaConfig(
        context_length=12, prediction_length=6, lags_seq=[1, 2, 7], **TINY, **COVARIATES
    )
    model = LagLlamaModel(config).eval()
    torch.nn.init.normal_(model.covariate_proj.weight)  # a trained model's, not the zero init
    return model


def inputs(model: LagLlamaModel, batch: int = 3, h: int = 6) -> dict:
    P, F = model.config.past_length, model.config.num_time_features
    return {
        "past_target": torch.rand(batch, P) * 10 + 5,
        "past_observed_values": torch.ones(batch, P),
        "past_time_feat": torch.randn(batch, P, F),
        "future_time_feat": torch.randn(batch, h, F),
        "covariates": {
            "past_feat_dynamic_real": torch.randn(batch, P, 2),
            "future_feat_dynamic_real": torch.randn(batch, h, 2),
            "past_past_feat_dynamic_real": torch.randn(batch, P, 1),
            "feat_static_real": torch.randn(batch, 1),
            "feat_static_cat": torch.tensor([0, 1, 2])[:batch, None],
        },
    }


def window_means(model: LagLlamaModel, x: dict, future_target: torch.Tensor) -> torch.Tensor:
    distr, _, _ = model.window_distribution(
        x["past_target"],
        x["past_observed_values"],
        future_target,
        torch.ones_like(future_target),
        x["past_time_feat"],
        x["future_time_feat"],
        x["covariates"],
    )
    return distr.mean


def test_a_known_covariate_at_step_t_reaches_only_tokens_from_t() -> None:
    model = covariate_model()
    x = inputs(model)
    future = torch.rand(3, 6) * 10 + 5
    base = window_means(model, x, future)
    C = model.config.context_length
    for j in (0, 4):
        changed = {**x, "covariates": dict(x["covariates"])}
        values = x["covariates"]["future_feat_dynamic_real"].clone()
        values[:, j] += 3.0
        changed["covariates"]["future_feat_dynamic_real"] = values
        means = window_means(model, changed, future)
        torch.testing.assert_close(means[:, : C + j], base[:, : C + j])
        assert not torch.allclose(means[:, C + j], base[:, C + j])


def test_a_past_only_covariate_is_read_one_step_late_and_never_in_the_future() -> None:
    model = covariate_model()
    x = inputs(model)
    P, h = model.config.past_length, 6
    series = model.covariate_series(x["past_observed_values"], h, x["covariates"])
    assert series.shape == (3, P + h, model.config.num_covariate_features)
    past = x["covariates"]["past_past_feat_dynamic_real"][..., 0]
    standardised = (past - past.mean(1, keepdim=True)) / past.std(1, correction=0, keepdim=True)
    value, known = series[..., 2], series[..., 3]  # after the 2 known-future columns
    torch.testing.assert_close(value[:, 1 : P + 1], standardised.clamp(-5, 5))
    assert (known[:, 1 : P + 1] == 1).all()
    assert (value[:, P + 1 :] == 0).all() and (known[:, P + 1 :] == 0).all()


def test_cached_sampling_with_covariates_equals_recomputation() -> None:
    model = covariate_model()
    x = inputs(model, h=6)
    torch.manual_seed(1)
    cached = model.sample(**x, num_samples=10, use_kv_cache=True)
    torch.manual_seed(1)
    full = model.sample(**x, num_samples=10, use_kv_cache=False)
    torch.testing.assert_close(cached, full, atol=1e-4, rtol=1e-4)
    # and the covariates matter
    x["covariates"]["future_feat_dynamic_real"] = -x["covariates"]["future_feat_dynamic_real"]
    torch.manual_seed(1)
    assert not torch.allclose(model.sample(**x, num_samples=10), cached)


def data_with_covariates(n: int = 6, length: int = 240, h: int = 0, seed: int = 0) -> list[dict]:
    """Series whose level jumps by 4 when a random known covariate is on; ``h`` extra steps
    of covariates for forecasting."""
    rng = np.random.default_rng(seed)
    entries = []
    for i in range(n):
        on = (rng.random(length + h) < 0.3).astype(np.float32)
        noise = rng.normal(0, 0.3, length + h).astype(np.float32)
        entries.append(
            {
                "start": pd.Period("2024-01-01 00:00", "h"),
                "item_id": f"s{i}",
                "target": (10 + 4 * on + noise)[:length],
                "feat_dynamic_real": np.stack([on, rng.normal(size=length + h)]).astype(np.float32),
                "past_feat_dynamic_real": rng.normal(size=(1, length)).astype(np.float32),
                "feat_static_real": np.array([i / n], dtype=np.float32),
                "feat_static_cat": np.array([i % 3]),
            }
        )
    return entries


def estimator(tmp_path: Path, **kwargs) -> LagLlamaEstimator:
    return LagLlamaEstimator(
        prediction_length=6,
        context_length=24,
        freq="h",
        lags_seq=[1, 2, 24],
        batch_size=32,
        num_batches_per_epoch=20,
        num_parallel_samples=50,
        trainer_kwargs={"max_epochs": 6, "default_root_dir": str(tmp_path), **QUIET},
        **TINY,
        **kwargs,
    )


def test_trained_covariates_learn_a_real_effect(tmp_path: Path) -> None:
    train = data_with_covariates(length=240)
    test = data_with_covariates(length=240, h=6, seed=1)
    truth = np.stack([10 + 4 * e["feat_dynamic_real"][0, -6:] for e in test])
    errors = {}
    for name, kwargs in {"with": COVARIATES, "without": {}}.items():
        torch.manual_seed(0)
        predictor = estimator(tmp_path / name, **kwargs).train(train)
        forecasts = list(predictor.predict(test))
        errors[name] = np.abs(np.stack([f.median for f in forecasts]) - truth).mean()
    assert errors["with"] < 0.6 * errors["without"], errors


@pytest.fixture(scope="module")
def plain_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("plain")
    torch.manual_seed(0)
    plain = [{k: e[k] for k in ("start", "item_id", "target")} for e in data_with_covariates()]
    est = estimator(root)
    est.trainer_kwargs["max_epochs"] = 1
    est.train(plain)
    return sorted(root.rglob("*.ckpt"))[-1]


def test_fine_tuning_with_new_covariates_starts_as_the_checkpoint(
    plain_checkpoint: Path, tmp_path: Path
) -> None:
    test = data_with_covariates(h=6, seed=1)
    common = {"freq": "h", "num_parallel_samples": 20, "num_batches_per_epoch": 10}
    plain = LagLlamaEstimator.from_checkpoint(plain_checkpoint, 6, **common)
    with_cov = LagLlamaEstimator.from_checkpoint(plain_checkpoint, 6, **common, **COVARIATES)
    predictors = plain.create_zero_shot_predictor(), with_cov.create_zero_shot_predictor()
    torch.manual_seed(5)
    a = [f.samples for f in predictors[0].predict(test)]
    torch.manual_seed(5)
    b = [f.samples for f in predictors[1].predict(test)]
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    with_cov.trainer_kwargs = {"max_epochs": 1, "default_root_dir": str(tmp_path), **QUIET}
    predictor = with_cov.train(data_with_covariates())
    weight = predictor.prediction_net.model.covariate_proj.weight
    assert weight.abs().sum() > 0  # training moved the new weights
    # serialisation keeps the covariates
    (tmp_path / "saved").mkdir()
    predictor.serialize(tmp_path / "saved")
    loaded = PyTorchPredictor.deserialize(tmp_path / "saved")
    torch.manual_seed(9)
    c = [f.samples for f in predictor.predict(test)]
    torch.manual_seed(9)
    d = [f.samples for f in loaded.predict(test)]
    for x, y in zip(c, d, strict=True):
        np.testing.assert_array_equal(x, y)
    # a checkpoint trained with covariates fixes them
    ckpt = sorted(tmp_path.rglob("*.ckpt"))[-1]
    again = LagLlamaEstimator.from_checkpoint(ckpt, 6, freq="h")
    assert again.model_kwargs["num_feat_dynamic_real"] == 2
    with pytest.raises(ValueError, match="trained with covariates"):
        LagLlamaEstimator.from_checkpoint(ckpt, 6, num_feat_dynamic_real=3)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda e: e.pop("feat_dynamic_real"), "series s0 has no feat_dynamic_real"),
        (
            lambda e: e.update(feat_dynamic_real=e["feat_dynamic_real"][:, :-3]),
            r"series s0: feat_dynamic_real must have shape \(2, >= 246\)",
        ),
        (
            lambda e: e["feat_dynamic_real"].__setitem__((1, 243), np.inf),
            r"series s0: feat_dynamic_real\[1\] is not finite at step 243",
        ),
        (lambda e: e.update(feat_static_cat=np.array([7])), "outside the cardinality 3"),
        (lambda e: e.update(feat_static_real=np.zeros(2)), "feat_static_real must hold 1"),
    ],
)
def test_bad_covariates_are_clear_errors(edit, message: str) -> None:
    est = LagLlamaEstimator(prediction_length=6, freq="h", lags_seq=[1, 24], **TINY, **COVARIATES)
    predictor = est.create_predictor(est.create_transformation(), est.create_lightning_module())
    data = data_with_covariates(n=2, h=6)
    edit(data[0])
    with pytest.raises(ValueError, match=message):
        list(predictor.predict(data))
