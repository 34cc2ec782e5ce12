"""Informer (ProbSparse attention, distilling) and Time-MoE (sparse MoE, Huber) options."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from gluonts.dataset.common import ListDataset

from lagllama.estimators.lag_llama import LagLlamaEstimator
from lagllama.estimators.lag_llama.config import LagLlamaConfig
from lagllama.estimators.lag_llama.module import LagLlamaModel
from lagllama.nn.decoder import Decoder
from lagllama.nn.moe import SparseMoE, load_balancing_loss
from lagllama.nn.probsparse import (
    ProbSparseSelfAttention,
    prefix_active,
    probsparse_attention,
    sparsity_measure,
)

QUIET = {
    "accelerator": "cpu",
    "enable_progress_bar": False,
    "enable_model_summary": False,
}


def qkv(L: int = 40, B: int = 2, H: int = 3, D: int = 8) -> tuple[torch.Tensor, ...]:
    return tuple(torch.randn(3, B, H, L, D).unbind(0))


# ------------------------------------------------------------------ ProbSparse
@pytest.mark.parametrize("training", [False, True])
def test_probsparse_equals_full_causal_attention_when_every_query_is_active(training) -> None:
    q, k, v = qkv()
    full = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    # u_t = ceil(c ln(t+1)) >= t + 1 for all t <= 40 when c = 1000
    out = probsparse_attention(q, k, v, factor=1000.0, training=training)
    torch.testing.assert_close(out, full, atol=1e-5, rtol=1e-5)


def test_probsparse_is_sparse_and_lazy_queries_get_the_cumulative_mean() -> None:
    q, k, v = qkv(L=64)
    pos = torch.arange(64)
    active = prefix_active(sparsity_measure(q, k, pos, 2.0, False), pos, 2.0)
    assert 0 < active.float().mean() < 0.7
    out = probsparse_attention(q, k, v, factor=2.0)
    full = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    cummean = v.cumsum(2) / torch.arange(1, 65)[:, None]
    torch.testing.assert_close(out[active], full[active], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out[~active], cummean[~active], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("training", [False, True])
def test_probsparse_output_at_t_ignores_inputs_after_t(training) -> None:
    attn = ProbSparseSelfAttention(24, 3, factor=2.0).train(training)
    x = torch.randn(2, 48, 24)
    cos, sin = torch.ones(48, 8), torch.zeros(48, 8)
    for t in (3, 17, 30, 46):
        changed = x.clone()
        changed[:, t + 1 :] = torch.randn_like(changed[:, t + 1 :]) * 10
        torch.manual_seed(5)  # same key samples in training mode
        a = attn(x, cos, sin)
        torch.manual_seed(5)
        b = attn(changed, cos, sin)
        torch.testing.assert_close(a[:, : t + 1], b[:, : t + 1])
        assert not torch.allclose(a[:, t + 1 :], b[:, t + 1 :])


def test_probsparse_decode_step_is_exact_attention() -> None:
    attn = ProbSparseSelfAttention(24, 3, factor=1.0)
    q, k, v = qkv(L=30, H=3)
    exact = F.scaled_dot_product_attention(q[:, :, -1:], k, v)
    torch.testing.assert_close(attn.attend(q[:, :, -1:], k, v), exact)


# ------------------------------------------------------------------ distilling
@pytest.mark.parametrize("attention", ["full", "probsparse"])
def test_distilling_decoder_never_leaks_the_future(attention: str) -> None:
    dec = Decoder(
        5, 3, 2, 8, 64, attention=attention, probsparse_factor=2.0, distil_prefix=20
    ).eval()
    x = torch.randn(2, 32, 5)
    base = dec(x)
    assert base.shape == (2, 32, 16)
    for t in (0, 6, 13, 19, 20, 25):
        changed = x.clone()
        changed[:, t + 1 :] += torch.randn_like(changed[:, t + 1 :]) * 5
        out = dec(changed)
        torch.testing.assert_close(out[:, : t + 1], base[:, : t + 1])
        assert not torch.allclose(out[:, t + 1 :], base[:, t + 1 :])
    with pytest.raises(ValueError, match="KV cache"):
        dec(x, cache=dec.new_cache(2, 32, x))


def test_distilling_halves_the_context_between_blocks() -> None:
    dec = Decoder(5, 3, 2, 8, 64, distil_prefix=16)
    lengths = []
    for layer in dec.distil:
        layer.register_forward_hook(lambda m, i, o: lengths.append(o[0].shape[1]))
    dec(torch.randn(1, 20, 5))  # 16 context + 4 future tokens
    assert lengths == [8 + 4, 4 + 4]


# ------------------------------------------------------------------------ MoE
def hand_moe(top_k: int) -> tuple[SparseMoE, torch.Tensor]:
    """Router = identity on 3-d inputs, so router probabilities are softmax(x) = p."""
    moe = SparseMoE(3, num_experts=3, top_k=top_k, hidden=4)
    with torch.no_grad():
        moe.router.weight.copy_(torch.eye(3))
    p = torch.tensor([[0.5, 0.3, 0.2], [0.2, 0.5, 0.3], [0.6, 0.1, 0.3], [0.1, 0.2, 0.7]])
    return moe, p.log()


def test_routing_picks_exactly_k_experts_and_aux_loss_matches_hand_computation() -> None:
    moe, x = hand_moe(top_k=2)
    moe(x)
    index = moe.last_top_index
    assert index.shape == (4, 2)
    assert all(len(set(row.tolist())) == 2 for row in index)
    assert [set(r.tolist()) for r in index] == [{0, 1}, {1, 2}, {0, 2}, {1, 2}]
    # f = counts / N = [2, 3, 3] / 4; P = column means of p = [0.35, 0.275, 0.375]
    # aux = E * sum f_i P_i = 3 * (0.5*0.35 + 0.75*0.275 + 0.75*0.375) = 1.9875
    assert moe.aux_loss.item() == pytest.approx(1.9875, abs=1e-6)
    moe1, x1 = hand_moe(top_k=1)
    moe1(x1)
    # top-1: experts [0, 1, 0, 2] -> f = [0.5, 0.25, 0.25]; 3*(0.175+0.06875+0.09375)
    assert moe1.aux_loss.item() == pytest.approx(1.0125, abs=1e-6)
    probs = x1.softmax(-1)
    assert load_balancing_loss(probs, probs.topk(1).indices).item() == pytest.approx(1.0125)


def test_moe_output_is_weighted_top_k_experts_plus_gated_shared_expert() -> None:
    moe, x = hand_moe(top_k=2)
    with torch.no_grad():
        moe.shared_gate.weight.copy_(torch.tensor([[1.0, -2.0, 0.5]]))
    out = moe(x)
    probs = x.softmax(-1)
    expected = torch.zeros_like(x)
    for n in range(4):
        w, idx = probs[n].topk(2)
        for weight, e in zip(w, idx):
            expected[n] += weight * moe.experts[int(e)](x[n])
    gate = torch.sigmoid(x @ moe.shared_gate.weight.T)
    torch.testing.assert_close(out, expected + gate * moe.shared(x), atol=1e-6, rtol=1e-5)
    assert not torch.allclose(out, expected + moe.shared(x))  # the gate matters
    with torch.no_grad():
        moe.shared_gate.weight.fill_(-1e4 / 3)  # gate ~ 0: only routed experts remain
    torch.testing.assert_close(moe(x.abs() + 1), _routed(moe, x.abs() + 1), atol=1e-6, rtol=0)


def _routed(moe: SparseMoE, x: torch.Tensor) -> torch.Tensor:
    _, w, idx = moe.route(x)
    return torch.stack(
        [sum(w[n, j] * moe.experts[int(idx[n, j])](x[n]) for j in range(2)) for n in range(len(x))]
    )


def test_moe_model_loss_includes_weighted_aux_loss() -> None:
    cfg = dict(context_length=12, prediction_length=4, lags_seq=[1, 2], n_layer=2, n_head=2)
    cfg.update(n_embd_per_head=4, num_time_features=0, ffn="moe", num_experts=4)
    model = LagLlamaModel(LagLlamaConfig(**cfg, aux_loss_weight=0.0))
    weighted = LagLlamaModel(LagLlamaConfig(**cfg, aux_loss_weight=0.5))
    weighted.load_state_dict(model.state_dict())
    batch = {
        "past_target": torch.rand(3, 14) + 1,
        "past_observed_values": torch.ones(3, 14),
        "future_target": torch.rand(3, 4) + 1,
        "future_observed_values": torch.ones(3, 4),
    }
    base = model.loss(**batch)
    aux = model.decoder.aux_loss()
    torch.testing.assert_close(weighted.loss(**batch), base + 0.5 * aux)
    total, active = model.num_parameters()
    assert active < total


# ------------------------------------------------------------------ estimator
def dataset() -> ListDataset:
    t = np.arange(240)
    rng = np.random.default_rng(0)
    series = [10 + 5 * np.sin(2 * np.pi * t / 24) + rng.normal(0, 0.5, 240) for _ in range(3)]
    start = pd.Period("2024-01-01 00:00", freq="h")
    return ListDataset([{"start": start, "target": s} for s in series], freq="h")


@pytest.mark.parametrize(
    "options",
    [
        {"ffn": "moe", "num_experts": 4, "experts_top_k": 2, "loss": "huber"},
        {"attention": "probsparse", "probsparse_factor": 2.0, "distil": True},
    ],
    ids=["moe-huber", "probsparse-distil"],
)
def test_options_train_checkpoint_load_and_predict(options: dict, tmp_path: Path) -> None:
    estimator = LagLlamaEstimator(
        prediction_length=6,
        freq="h",
        context_length=24,
        lags_seq=[1, 2, 24],
        n_layer=2,
        n_head=2,
        n_embd_per_head=8,
        batch_size=8,
        num_batches_per_epoch=3,
        num_parallel_samples=10,
        trainer_kwargs={"max_epochs": 1, "default_root_dir": str(tmp_path), **QUIET},
        **options,
    )
    predictor = estimator.train(dataset())
    forecast = next(iter(predictor.predict(dataset())))
    assert forecast.samples.shape == (10, 6) and np.isfinite(forecast.samples).all()
    ckpt = sorted(tmp_path.rglob("*.ckpt"))[-1]
    saved = torch.load(ckpt, weights_only=True)["hyper_parameters"]["model_kwargs"]
    assert {k: saved[k] for k in options} == options
    loaded = LagLlamaEstimator.from_checkpoint(
        ckpt, prediction_length=6, freq="h", num_parallel_samples=10
    )
    assert {k: loaded.model_kwargs[k] for k in options} == options
    zero_shot = loaded.create_zero_shot_predictor()
    torch.manual_seed(1)
    a = next(iter(zero_shot.predict(dataset()))).samples
    torch.manual_seed(1)
    b = next(iter(predictor.predict(dataset()))).samples
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    key = next(iter(options))
    with pytest.raises(ValueError, match=key):
        LagLlamaEstimator.from_checkpoint(ckpt, prediction_length=6, **{key: "swiglu-x"})


def test_huber_option_trains_the_location() -> None:
    cfg = LagLlamaConfig(
        context_length=16,
        prediction_length=4,
        lags_seq=[1, 2],
        n_layer=1,
        n_head=2,
        n_embd_per_head=8,
        num_time_features=0,
        loss="huber",
    )
    model = LagLlamaModel(cfg)
    t = torch.arange(22.0)
    series = 10 + 3 * torch.sin(2 * math.pi * (t[None, :] + torch.arange(16)[:, None]) / 6)
    batch = {
        "past_target": series[:, :18],
        "past_observed_values": torch.ones(16, 18),
        "future_target": series[:, 18:],
        "future_observed_values": torch.ones(16, 4),
    }
    optim = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(60):
        loss = model.loss(**batch).mean()
        optim.zero_grad()
        loss.backward()
        optim.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 0.5
    paths = model.sample(batch["past_target"], batch["past_observed_values"], num_samples=5)
    assert paths.shape == (16, 5, 4) and torch.isfinite(paths).all()


def test_old_checkpoints_without_the_new_fields_still_load(tmp_path: Path) -> None:
    cfg = LagLlamaConfig(context_length=8, prediction_length=2, lags_seq=[1], n_layer=1)
    old = {k: v for k, v in cfg.to_dict().items() if k not in ("attention", "ffn", "loss")}
    from lagllama.estimators.lag_llama.lightning_module import LagLlamaLightningModule

    module = LagLlamaLightningModule(model_kwargs=cfg.to_dict())
    ckpt = tmp_path / "old.ckpt"
    torch.save({"state_dict": module.state_dict(), "hyper_parameters": {"model_kwargs": old}}, ckpt)
    est = LagLlamaEstimator.from_checkpoint(ckpt, prediction_length=2)
    assert est.model_kwargs["attention"] == "full" and est.model_kwargs["ffn"] == "swiglu"
    est.create_lightning_module()
