"""Lag-Llama model and estimator: causality, cached sampling, likelihood, bad input, I/O."""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import pandas as pd
import pytest
import scipy.stats
import torch
from gluonts.dataset.common import ListDataset
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


def tiny_model(**kwargs) -> LagLlamaModel:
    config = {"context_length": 12, "prediction_length": 6, "lags_seq": [1, 2, 7], **TINY, **kwargs}
    return LagLlamaModel(LagLlamaConfig(**config)).eval()


def window(model: LagLlamaModel, batch: int = 3, h: int = 6) -> dict[str, torch.Tensor]:
    P, F = model.config.past_length, model.config.num_time_features
    return {
        "past_target": torch.rand(batch, P) * 10 + 5,
        "past_observed_values": torch.ones(batch, P),
        "future_target": torch.rand(batch, h) * 10 + 5,
        "future_observed_values": torch.ones(batch, h),
        "past_time_feat": torch.randn(batch, P, F),
        "future_time_feat": torch.randn(batch, h, F),
    }


def test_changing_a_future_value_never_changes_earlier_outputs() -> None:
    model = tiny_model()
    batch = window(model)
    C = model.config.context_length
    base, _, _ = model.window_distribution(**batch)
    for j in (0, 3, 4):
        changed = {**batch, "future_target": batch["future_target"].clone()}
        changed["future_target"][:, j] += 100.0
        distr, _, _ = model.window_distribution(**changed)
        # token C + j predicts future value j from strictly earlier values
        torch.testing.assert_close(distr.mean[:, : C + j + 1], base.mean[:, : C + j + 1])
        assert not torch.allclose(distr.mean[:, C + j + 1 :], base.mean[:, C + j + 1 :])


@pytest.mark.parametrize(("distr", "h"), [("student_t", 9), ("normal", 9), ("student_t", 40)])
def test_cached_sampling_equals_full_recomputation(distr: str, h: int) -> None:
    """Same seed, same paths; h = 40 crosses a block of the continuations' own cache."""
    model = tiny_model(distr_output=distr, rope_scaling="dynamic", rope_factor=2.0)
    batch = window(model, h=h)  # longer than trained: dynamic RoPE kicks in
    inputs = {
        k: v
        for k, v in batch.items()
        if not k.startswith("future_t") and "observed_values" not in k
    }
    inputs["past_observed_values"] = batch["past_observed_values"]
    inputs["future_time_feat"] = batch["future_time_feat"]
    torch.manual_seed(1)
    cached = model.sample(**inputs, num_samples=20, prediction_length=h, use_kv_cache=True)
    torch.manual_seed(1)
    full = model.sample(**inputs, num_samples=20, prediction_length=h, use_kv_cache=False)
    assert cached.shape == (3, 20, h)
    torch.testing.assert_close(cached, full, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("use_kv_cache", [True, False])
def test_sampling_never_attends_beyond_the_trained_window(use_kv_cache: bool) -> None:
    """A horizon five times the training one keeps every decoder call within C + h_train
    tokens, and the first h_train steps are those of an unbounded window."""
    model = tiny_model()
    C, window = model.config.context_length, 12 + 6
    batch = window_batch(model, h=30)
    seen = []
    forward = model.decoder.forward

    def spy(features, cache=None, **kwargs):
        seen.append((cache.length if cache is not None else 0) + features.shape[1])
        return forward(features, cache, **kwargs)

    model.decoder.forward = spy
    torch.manual_seed(0)
    paths = model.sample(**batch, num_samples=4, prediction_length=30, use_kv_cache=use_kv_cache)
    assert max(seen) == window and torch.isfinite(paths).all()
    model.decoder.forward = forward
    wide = tiny_model(sampling_window=C + 30)
    wide.load_state_dict(model.state_dict())
    torch.manual_seed(0)
    unbounded = wide.sample(**batch, num_samples=4, prediction_length=30, use_kv_cache=use_kv_cache)
    torch.testing.assert_close(paths[..., : window - C], unbounded[..., : window - C])
    assert not torch.allclose(paths, unbounded)


def window_batch(model: LagLlamaModel, h: int) -> dict[str, torch.Tensor]:
    """Sampling inputs of :func:`window` (no future targets)."""
    batch = window(model, h=h)
    return {k: v for k, v in batch.items() if k not in ("future_target", "future_observed_values")}


def test_sampling_is_seeded_and_never_uses_dropout() -> None:
    model = tiny_model(dropout=0.5).train()
    batch = window(model)
    inputs = {
        k: batch[k]
        for k in ("past_target", "past_observed_values", "past_time_feat", "future_time_feat")
    }
    torch.manual_seed(3)
    a = model.sample(**inputs, num_samples=5)
    torch.manual_seed(3)
    b = model.eval().sample(**inputs, num_samples=5)
    torch.testing.assert_close(a, b)


def test_student_t_log_likelihood_equals_scipy() -> None:
    model = tiny_model()
    hidden = torch.randn(4, 5, model.config.n_embd)
    loc, scale = (
        torch.tensor([[2.0], [-1.0], [0.0], [30.0]]),
        torch.tensor([[0.5], [2.0], [1.0], [7.0]]),
    )
    distr = model.distribution(hidden, loc, scale)
    x = torch.randn(4, 5) * 3
    df, mu, sigma = model.args_proj(hidden)
    expected = scipy.stats.t.logpdf(
        x.numpy(),
        df.detach().numpy(),
        loc.numpy() + scale.numpy() * mu.detach().numpy(),
        scale.numpy() * sigma.detach().numpy(),
    )
    np.testing.assert_allclose(distr.log_prob(x).detach().numpy(), expected, rtol=1e-5, atol=1e-5)


def test_loss_ignores_unobserved_targets() -> None:
    model = tiny_model()
    batch = window(model)
    batch["future_observed_values"][:, -2:] = 0
    base = model.loss(**batch)
    batch["future_target"][:, -2:] = 1e9
    torch.testing.assert_close(model.loss(**batch), base)


def test_negative_binomial_needs_a_scale_only_scaler() -> None:
    with pytest.raises(ValueError, match="scaling='mean'"):
        LagLlamaConfig(distr_output="negative_binomial", scaling="robust")
    model = tiny_model(distr_output="negative_binomial", scaling="mean", num_time_features=0)
    batch = window(model)
    batch["future_target"], batch["past_target"] = (
        batch["future_target"].round(),
        batch["past_target"].round(),
    )
    assert torch.isfinite(model.loss(**batch)).all()


def test_config_rejects_unknown_keys() -> None:
    with pytest.raises(ValueError, match="unknown keys"):
        LagLlamaConfig.from_dict({"context_length": 3, "hidden_size": 4})


# ---------------------------------------------------------------- estimator
def hourly_dataset() -> ListDataset:
    t = np.arange(400)
    rng = np.random.default_rng(0)
    series = [
        10 + 5 * np.sin(2 * np.pi * t / 24) + rng.normal(0, 0.5, 400),  # seasonal
        np.full(300, 7.0),  # constant
        np.where(rng.random(350) < 0.2, np.nan, 50 + rng.normal(0, 3, 350)),  # gaps
        np.array([3.0, 4.0, 5.0]),  # very short: shorter than the lag window
        np.full(30, np.nan),  # nothing observed
    ]
    start = pd.Period("2024-01-01 00:00", freq="h")
    return ListDataset([{"start": start, "target": s} for s in series], freq="h")


@pytest.fixture(scope="module")
def trained(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[LagLlamaEstimator, PyTorchPredictor, Path]:
    root = tmp_path_factory.mktemp("lagllama")
    estimator = LagLlamaEstimator(
        prediction_length=12,
        freq="h",
        batch_size=16,
        num_batches_per_epoch=5,
        num_parallel_samples=20,
        augmentation={"freq_mix_prob": 0.5, "freq_mask_prob": 0.5, "jitter_prob": 0.5},
        trainer_kwargs={"max_epochs": 2, "default_root_dir": str(root), **QUIET, "logger": True},
        **TINY,
    )
    torch.manual_seed(0)
    predictor = estimator.train(hourly_dataset())
    checkpoints = sorted(root.rglob("*.ckpt"))
    assert checkpoints, "training must leave its checkpoint on disk"
    return estimator, predictor, checkpoints[-1]


def test_context_length_none_picks_a_default() -> None:
    estimator = LagLlamaEstimator(prediction_length=48, freq="h")
    assert estimator.context_length == 48
    assert LagLlamaEstimator(prediction_length=6, freq="M").context_length == 32


def test_official_call_without_freq_serves_mixed_frequencies(tmp_path: Path) -> None:
    """``LagLlamaEstimator(prediction_length=24, context_length=64)`` as written against the
    official estimator: frequency-independent lags, calendar features from each series."""
    from lagllama.data.frequency import lag_llama_lags

    estimator = LagLlamaEstimator(
        prediction_length=24,
        context_length=64,
        **TINY,
        batch_size=4,
        num_batches_per_epoch=1,
        num_parallel_samples=5,
        trainer_kwargs={"max_epochs": 1, "default_root_dir": str(tmp_path), **QUIET},
    )
    assert estimator.model_kwargs["lags_seq"] == lag_llama_lags()
    rng = np.random.default_rng(0)
    data = [  # a plain list: a ListDataset would cast every start to one frequency
        {"start": pd.Period("2020-01-01 00:00", "h"), "target": rng.normal(size=200)},
        {"start": pd.Period("1990-01", "M"), "target": rng.normal(size=80)},
    ]
    predictor = estimator.train(data)
    hourly, monthly = predictor.predict(data)
    assert hourly.start_date == pd.Period("2020-01-01 00:00", "h") + 200
    assert monthly.start_date == pd.Period("1990-01", "M") + 80
    assert np.isfinite(hourly.samples).all() and monthly.samples.shape == (5, 24)
    # calendar features follow each series' own frequency
    transform = estimator.create_transformation()
    feats = [e["time_feat"] for e in transform.apply(data, is_train=False)]
    hour_of_day, month_of_year = 1, 5
    assert feats[0][hour_of_day, :24].std() > 0.1 and feats[1][hour_of_day].std() == 0
    assert feats[1][month_of_year, :12].std() > 0.1


def test_unknown_frequency_raises_naming_it() -> None:
    with pytest.raises(ValueError, match="'every-other-day'"):
        LagLlamaEstimator(prediction_length=3, freq="every-other-day")


def test_forecasts_are_finite_for_constant_nan_and_short_series(trained) -> None:
    _, predictor, _ = trained
    forecasts = list(predictor.predict(hourly_dataset()))
    assert len(forecasts) == 5
    for forecast in forecasts:
        assert forecast.samples.shape == (20, 12)
        assert np.isfinite(forecast.samples).all()
    constant = forecasts[1]
    assert np.abs(np.median(constant.samples) - 7.0) < 3.0


def test_serialise_round_trip_gives_identical_forecasts(trained, tmp_path: Path) -> None:
    _, predictor, _ = trained
    predictor.serialize(tmp_path)
    loaded = PyTorchPredictor.deserialize(tmp_path)
    data = hourly_dataset()
    torch.manual_seed(7)
    a = [f.samples for f in predictor.predict(data)]
    torch.manual_seed(7)
    b = [f.samples for f in loaded.predict(data)]
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)


def test_fine_tune_reads_the_architecture_from_the_checkpoint(trained, tmp_path: Path) -> None:
    estimator, _, ckpt = trained
    tuned = LagLlamaEstimator.from_checkpoint(
        ckpt,
        prediction_length=8,
        freq="h",
        trainer_kwargs={"max_epochs": 1, "default_root_dir": str(tmp_path), **QUIET},
        num_batches_per_epoch=2,
        num_parallel_samples=10,
    )
    assert tuned.model_kwargs["n_layer"] == TINY["n_layer"]
    assert tuned.model_kwargs["lags_seq"] == estimator.model_kwargs["lags_seq"]
    zero_shot = tuned.create_zero_shot_predictor()
    state = torch.load(ckpt, weights_only=True)["state_dict"]
    torch.testing.assert_close(
        zero_shot.prediction_net.state_dict()["model.args_proj.proj.0.weight"],
        state["model.args_proj.proj.0.weight"],
    )
    forecast = next(iter(zero_shot.predict(hourly_dataset())))
    assert forecast.samples.shape == (10, 8)
    predictor = tuned.train(hourly_dataset())
    assert next(iter(predictor.predict(hourly_dataset()))).samples.shape == (10, 8)
    with pytest.raises(ValueError, match="n_layer"):
        LagLlamaEstimator.from_checkpoint(ckpt, prediction_length=8, n_layer=5)


def test_fine_tuning_on_a_longer_horizon_widens_the_inherited_window(
    trained, tmp_path: Path
) -> None:
    """Zero-shot keeps the checkpoint's window (context 32 + horizon 12); fine-tuning at
    horizon 20 trains on 52 tokens, so its predictor, and its checkpoint, sample with 52."""

    def window(predictor: PyTorchPredictor) -> int:
        return predictor.prediction_net.model.config.sampling_window

    _, _, ckpt = trained
    tuned = LagLlamaEstimator.from_checkpoint(
        ckpt,
        prediction_length=20,
        freq="h",
        trainer_kwargs={"max_epochs": 1, "default_root_dir": str(tmp_path), **QUIET},
        num_batches_per_epoch=1,
    )
    assert window(tuned.create_zero_shot_predictor()) == 32 + 12
    assert window(tuned.train(hourly_dataset())) == 32 + 20
    assert tuned.model_kwargs["sampling_window"] == 32 + 12  # the estimator is unchanged
    saved = max(tmp_path.rglob("*.ckpt"), key=lambda p: p.stat().st_mtime)
    assert LagLlamaEstimator.from_checkpoint(saved, 20).model_kwargs["sampling_window"] == 52
    explicit = LagLlamaEstimator.from_checkpoint(
        ckpt,
        20,
        sampling_window=40,
        freq="h",
        trainer_kwargs=tuned.trainer_kwargs,
        num_batches_per_epoch=1,
    )
    assert window(explicit.train(hourly_dataset())) == 40


def test_wrong_checkpoint_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": {"lr": 1.0}}, bad)
    with pytest.raises(ValueError, match="not a Lag-Llama checkpoint"):
        LagLlamaEstimator.from_checkpoint(bad, prediction_length=3)
    junk = tmp_path / "junk.ckpt"
    junk.write_text("hello")
    with pytest.raises(ValueError, match="not a readable torch checkpoint"):
        LagLlamaEstimator.from_checkpoint(junk, prediction_length=3)
    with pytest.raises(FileNotFoundError, match="missing.ckpt"):
        LagLlamaEstimator.from_checkpoint(tmp_path / "missing.ckpt", prediction_length=3)


class _MeanAsSample(torch.nn.Module):
    """Wraps a distribution so that ``sample()`` returns its mean: greedy, deterministic paths."""

    def __init__(self, distr) -> None:
        super().__init__()
        self.distr = distr

    def sample(self) -> torch.Tensor:
        return self.distr.mean


@pytest.mark.parametrize("use_kv_cache", [True, False])
def test_autoregressive_sampling_agrees_with_teacher_forcing(
    use_kv_cache: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Greedy paths fed back as the future reproduce themselves under teacher forcing.

    This pins down that lags, time features and scaling line up identically in the
    sampler and in training.
    """
    model = tiny_model(distr_output="normal", observed_lag_features=True)
    batch = window(model, h=6)
    batch["past_observed_values"][:, :9] = 0  # padded history
    original = model.distribution
    monkeypatch.setattr(model, "distribution", lambda *a, **k: _MeanAsSample(original(*a, **k)))
    inputs = {
        k: batch[k]
        for k in ("past_target", "past_observed_values", "past_time_feat", "future_time_feat")
    }
    paths = model.sample(**inputs, num_samples=2, use_kv_cache=use_kv_cache)[:, 0]
    monkeypatch.setattr(model, "distribution", original)
    teacher = {**batch, "future_target": paths}
    distr, _, _ = model.window_distribution(**teacher)
    C = model.config.context_length
    torch.testing.assert_close(distr.mean[:, C:], paths, atol=1e-4, rtol=1e-4)


def test_ema_weights_are_what_training_returns(tmp_path: Path) -> None:
    """With a decay close to 1 the average stays where it started, the weights after the first
    AdamW step (at most ``lr`` from the initialisation per weight), while the same run without
    EMA moves much further in its 10 steps. The user's callbacks survive ``train`` (GluonTS
    pops them from ``trainer_kwargs``)."""

    class Count(pl.Callback):
        def __init__(self) -> None:
            self.fits = 0

        def on_fit_start(self, *args: object) -> None:
            self.fits += 1

    def run(ema_decay: float | None, counter: Count) -> tuple[dict, dict]:
        estimator = LagLlamaEstimator(
            prediction_length=12,
            freq="h",
            batch_size=16,
            num_batches_per_epoch=10,
            lr=1e-2,
            ema_decay=ema_decay,
            trainer_kwargs={
                "max_epochs": 1,
                "default_root_dir": str(tmp_path),
                "callbacks": [counter],
                **QUIET,
            },
            **TINY,
        )
        torch.manual_seed(0)
        initial = estimator.create_lightning_module().state_dict()
        torch.manual_seed(0)
        trained = estimator.train(hourly_dataset()).prediction_net.state_dict()
        assert estimator.trainer_kwargs["callbacks"] == [counter]
        return initial, trained

    counter = Count()
    initial, averaged = run(1.0 - 1e-9, counter)
    _, plain = run(None, counter)
    assert counter.fits == 2

    def largest_move(state: dict) -> float:
        return max((state[n] - v).abs().max().item() for n, v in initial.items())

    assert largest_move(averaged) <= 1.01e-2  # one step of lr 1e-2
    assert largest_move(plain) > 3e-2
    with pytest.raises(ValueError, match="ema_decay"):
        LagLlamaEstimator(prediction_length=12, freq="h", ema_decay=1.5)


@pytest.mark.parametrize("limit", [{"max_epochs": 2}, {"max_epochs": 100, "max_steps": 10}])
def test_cosine_schedule_spans_the_run(tmp_path: Path, limit: dict, lr_trace) -> None:
    """The decay runs over max_epochs x batches per epoch (or max_steps), which Lightning
    cannot infer from GluonTS's unsized training stream."""
    estimator = LagLlamaEstimator(
        prediction_length=12,
        freq="h",
        lr=1e-3,
        batch_size=8,
        num_batches_per_epoch=5,
        trainer_kwargs={
            **limit,
            "callbacks": [lr_trace],
            "default_root_dir": str(tmp_path),
            **QUIET,
        },
        **TINY,
    )
    estimator.train(hourly_dataset())
    lrs = lr_trace.lrs
    assert len(lrs) == 10
    assert lrs[0] == pytest.approx(1e-3)
    assert all(a > b for a, b in zip(lrs, lrs[1:]))
    assert lrs[-1] == pytest.approx(1e-4 + 0.9e-3 * 0.5 * (1 + np.cos(np.pi * 9 / 10)))


def _short_run(compiled: bool, tmp_path: Path) -> list[float]:
    """Train losses of 6 steps of a tiny model from a fixed seed."""
    from lagllama.estimators.lag_llama.lightning_module import LagLlamaLightningModule

    config = {"context_length": 12, "prediction_length": 6, "lags_seq": [1, 2, 7], **TINY}
    torch.manual_seed(0)
    module = LagLlamaLightningModule(model_kwargs=config, torch_compile=compiled)
    optimizer = torch.optim.AdamW(module.parameters(), lr=1e-2)
    batch = window(module.model, batch=8)
    losses = []
    for _ in range(6):
        loss = module._loss(batch, train=False)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss))
    return losses


def test_compiled_training_matches_eager_within_a_percent(tmp_path: Path) -> None:
    eager, compiled = _short_run(False, tmp_path), _short_run(True, tmp_path)
    assert eager[-1] < eager[0]  # it trains
    np.testing.assert_allclose(compiled, eager, rtol=0.01)


def test_compile_failure_falls_back_to_eager(monkeypatch, tmp_path: Path) -> None:
    def broken(fn):
        def run(*args):
            raise RuntimeError("no C++ compiler")

        return run

    monkeypatch.setattr(torch, "compile", broken)
    with pytest.warns(UserWarning, match="no C\\+\\+ compiler.*eagerly"):
        losses = _short_run(True, tmp_path)
    assert losses == _short_run(False, tmp_path)


class _Losses(pl.Callback):
    def __init__(self) -> None:
        self.losses: list[float] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.losses.append(float(outputs["loss"]))


def _lightning_run(precision: str, tmp_path: Path) -> list[float]:
    """Train losses of 8 Lightning steps of a tiny model at ``precision``, fixed seeds."""
    record = _Losses()
    estimator = LagLlamaEstimator(
        prediction_length=12,
        freq="h",
        batch_size=16,
        num_batches_per_epoch=8,
        lr=3e-3,
        trainer_kwargs={
            "max_epochs": 1,
            "precision": precision,
            "default_root_dir": str(tmp_path / precision),
            "callbacks": [record],
            **QUIET,
        },
        **TINY,
    )
    pl.seed_everything(0, verbose=False)
    estimator.train(hourly_dataset())
    return record.losses


def test_bf16_mixed_training_matches_float32_within_a_percent(tmp_path: Path) -> None:
    reference = _lightning_run("32-true", tmp_path)
    mixed = _lightning_run("bf16-mixed", tmp_path)
    assert len(reference) == 8 and reference[-1] < reference[0]  # it trains
    assert mixed != reference  # bf16 autocast really ran
    np.testing.assert_allclose(mixed, reference, rtol=0.01)


def test_autocast_keeps_inputs_head_and_cpu_attention_in_float32() -> None:
    model = tiny_model().train()
    batch = window(model)
    seen: dict[str, torch.dtype] = {}
    model.decoder.embed.register_forward_hook(lambda m, i, o: seen.update(embed=o.dtype))
    block = model.decoder.blocks[0]
    block.attn.qkv.register_forward_hook(lambda m, i, o: seen.update(qkv=o.dtype))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        args = model.head_args(model.window_hidden(**batch)["hidden"])
        loss = model.loss(**batch)
    assert seen == {"embed": torch.float32, "qkv": torch.bfloat16}  # blocks do run in bf16
    assert all(a.dtype == torch.float32 for a in args) and loss.dtype == torch.float32
    q, k, v = (torch.randn(2, 2, 5, 8).to(torch.bfloat16) for _ in range(3))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = block.attn.attend(q, k, v)
    expected = torch.nn.functional.scaled_dot_product_attention(
        q.float(), k.float(), v.float(), is_causal=True
    )
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out, expected.to(torch.bfloat16), atol=0, rtol=0)


def test_shared_prefix_cache_attends_in_float32_under_autocast() -> None:
    from lagllama.nn.kv_cache import KVCache

    torch.manual_seed(0)
    n_head, head_dim, repeats = 2, 8, 3
    prefix = KVCache(1, 2, n_head, 10, head_dim)
    prefix.update(0, *(torch.randn(2, n_head, 4, head_dim) for _ in range(2)))
    prefix.advance(4)
    q, k, v = (torch.randn(2 * repeats, n_head, 1, head_dim).to(torch.bfloat16) for _ in range(3))
    expected = prefix.expand(repeats).attention(0, q.float(), k.float(), v.float(), None)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = prefix.expand(repeats).attention(0, q, k, v, None)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out, expected.to(torch.bfloat16), atol=0, rtol=0)


def test_bf16_sampling_stays_close_to_float32_and_rejects_unknown_precisions() -> None:
    """Same seeds, same noise: bf16 autocast moves the paths only by the decoder's rounding."""
    torch.manual_seed(0)
    model = tiny_model()
    batch = window(model, batch=4)
    inputs = [batch[k] for k in ("past_target", "past_observed_values")]
    inputs += [batch["past_time_feat"], batch["future_time_feat"]]
    seeds = torch.arange(4)
    fp32 = model.sample(*inputs, num_samples=50, seeds=seeds)
    again = model.sample(*inputs, num_samples=50, seeds=seeds, precision="32")
    bf16 = model.sample(*inputs, num_samples=50, seeds=seeds, precision="bf16")
    torch.testing.assert_close(again, fp32, rtol=0, atol=0)
    assert bf16.dtype == torch.float32 and torch.isfinite(bf16).all()
    assert not torch.equal(bf16, fp32)  # the option takes effect
    # values are ~5-15: a path moves by rounding, not by a different forecast
    assert (bf16 - fp32).abs().median() < 0.05 * fp32.abs().median()
    torch.testing.assert_close(
        bf16.median(dim=1).values, fp32.median(dim=1).values, rtol=0.05, atol=0.1
    )
    with pytest.raises(ValueError, match="sampling_precision 'fp8'"):
        model.sample(*inputs, num_samples=5, precision="fp8")


def test_sampling_precision_reaches_the_predictor(trained, tmp_path: Path) -> None:
    _, _, checkpoint = trained
    estimator = LagLlamaEstimator.from_checkpoint(
        checkpoint, prediction_length=12, freq="h", sampling_precision="bf16"
    )
    predictor = estimator.create_zero_shot_predictor()
    assert predictor.prediction_net.sampling_precision == "bf16"
    forecast = next(iter(predictor.predict(hourly_dataset())))
    assert np.isfinite(forecast.samples).all()
    with pytest.raises(ValueError, match="sampling_precision 'half'"):
        LagLlamaEstimator(prediction_length=12, freq="h", sampling_precision="half", **TINY)


def test_bf16_sampling_warns_on_a_cpu_without_bf16_instructions(monkeypatch) -> None:
    import lagllama.nn.precision as precision

    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: False)
    model = tiny_model()
    batch = window(model, batch=2)
    inputs = [batch[k] for k in ("past_target", "past_observed_values")]
    inputs += [batch["past_time_feat"], batch["future_time_feat"]]
    with pytest.warns(RuntimeWarning, match="without bf16 instructions"):
        model.sample(*inputs, num_samples=3, precision="bf16")
