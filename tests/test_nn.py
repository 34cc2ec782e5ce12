"""Property tests of the decoder's building blocks: RoPE, attention, KV cache, causality."""

from __future__ import annotations

import pytest
import torch

from lagllama.nn.attention import causal_mask
from lagllama.nn.decoder import Decoder
from lagllama.nn.mlp import swiglu_hidden_size
from lagllama.nn.rmsnorm import RMSNorm
from lagllama.nn.rope import RotaryEmbedding, apply_rotary


def test_rmsnorm_gives_unit_rms() -> None:
    x = torch.randn(4, 7, 32) * 5 + 3
    y = RMSNorm(32)(x)
    torch.testing.assert_close(y.pow(2).mean(-1), torch.ones(4, 7), atol=1e-3, rtol=1e-3)


@pytest.mark.parametrize("scaling", [None, "linear", "dynamic"])
def test_rope_scores_depend_only_on_relative_position(scaling: str | None) -> None:
    rope = RotaryEmbedding(16, max_position=64, scaling=scaling, factor=2.0)
    q, k = torch.randn(16), torch.randn(16)

    def score(m: int, n: int) -> torch.Tensor:
        cos, sin = rope(torch.tensor([m, n]), seq_len=200)
        qm = apply_rotary(q[None], cos[:1], sin[:1])
        kn = apply_rotary(k[None], cos[1:], sin[1:])
        return (qm * kn).sum()

    for shift in (1, 17, 120):
        torch.testing.assert_close(score(5, 2), score(5 + shift, 2 + shift), atol=1e-4, rtol=1e-4)
    assert not torch.allclose(score(5, 2), score(5, 4), atol=1e-3)


def test_rope_rotation_preserves_norm() -> None:
    rope = RotaryEmbedding(8, max_position=10)
    x = torch.randn(3, 12, 8)
    cos, sin = rope(torch.arange(12))
    torch.testing.assert_close(apply_rotary(x, cos, sin).norm(dim=-1), x.norm(dim=-1))


def test_dynamic_rope_leaves_trained_lengths_untouched() -> None:
    plain = RotaryEmbedding(8, max_position=32)
    dynamic = RotaryEmbedding(8, max_position=32, scaling="dynamic", factor=4.0)
    torch.testing.assert_close(plain.inv_freq(32), dynamic.inv_freq(32))
    assert (dynamic.inv_freq(128) < plain.inv_freq(128))[1:].all()


def test_rope_rejects_bad_settings() -> None:
    with pytest.raises(ValueError, match="even"):
        RotaryEmbedding(7, 10)
    with pytest.raises(ValueError, match="unknown rope scaling"):
        RotaryEmbedding(8, 10, scaling="yarn")


def test_causal_mask_for_a_chunk_after_a_prefix() -> None:
    mask = causal_mask(2, 4, torch.device("cpu"))
    assert mask.tolist() == [[True, True, True, False], [True, True, True, True]]


def test_swiglu_hidden_size_matches_llama_rule() -> None:
    assert swiglu_hidden_size(144) == 512
    assert swiglu_hidden_size(4096) == 11008


def _decoder(**kwargs) -> Decoder:
    return Decoder(
        in_features=6, n_layer=3, n_head=2, n_embd_per_head=8, max_position=16, **kwargs
    ).eval()


def test_decoder_is_causal() -> None:
    decoder = _decoder()
    x = torch.randn(2, 12, 6)
    base = decoder(x)
    for t in (0, 5, 11):
        changed = x.clone()
        changed[:, t] += 10.0
        out = decoder(changed)
        torch.testing.assert_close(out[:, :t], base[:, :t], atol=1e-6, rtol=0)
        assert not torch.allclose(out[:, t], base[:, t])


@pytest.mark.parametrize("scaling", [None, "linear", "dynamic"])
def test_kv_cache_equals_full_recomputation(scaling: str | None) -> None:
    decoder = _decoder(rope_scaling=scaling, rope_factor=2.0)
    x = torch.randn(3, 40, 6)  # longer than max_position: dynamic scaling is active
    full = decoder(x)
    cache = decoder.new_cache(3, 40, x)
    chunks = [decoder(x[:, :10], cache), decoder(x[:, 10:13], cache)]
    chunks += [decoder(x[:, t : t + 1], cache) for t in range(13, 40)]
    torch.testing.assert_close(torch.cat(chunks, dim=1), full, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("steps", [5, 40])  # one block of own positions, and two
def test_shared_prefix_continuations_equal_full_recomputation(steps: int) -> None:
    """Many continuations of each prefix, sharing its cache: each row's decode steps equal
    recomputing that row's whole sequence (prefix copied) from scratch."""
    decoder = _decoder()
    B, S, prefix_len = 3, 4, 7
    prefix = torch.randn(B, prefix_len, 6)
    cache = decoder.new_cache(B, prefix_len + steps, prefix)
    decoder(prefix, cache)
    shared = cache.expand(S)
    tokens = torch.randn(B * S, steps, 6)  # every continuation goes its own way
    outputs = [decoder(tokens[:, t : t + 1], shared) for t in range(steps)]
    rows = torch.cat((prefix.repeat_interleave(S, 0), tokens), dim=1)
    full = decoder(rows, seq_len=prefix_len + steps)[:, prefix_len:]
    torch.testing.assert_close(torch.cat(outputs, dim=1), full, atol=1e-5, rtol=1e-5)
    blocks, own_rows, _, block = shared.keys.shape[1:5]  # own positions only: prefix not copied
    assert own_rows == B * S and blocks == -(-steps // block)
    with pytest.raises(ValueError, match="overflow"):
        decoder(tokens[:, :1], shared)
    with pytest.raises(ValueError, match="one token at a time"):
        decoder(tokens[:, :2], cache.expand(S))


def test_kv_cache_overflow_is_an_error() -> None:
    decoder = _decoder()
    x = torch.randn(1, 5, 6)
    cache = decoder.new_cache(1, 4, x)
    with pytest.raises(ValueError, match="overflow"):
        decoder(x, cache)


def test_attention_dropout_off_in_eval_on_in_train() -> None:
    decoder = Decoder(6, 2, 2, 8, 16, dropout=0.5)
    x = torch.randn(2, 8, 6)
    decoder.eval()
    torch.testing.assert_close(decoder(x), decoder(x))
    decoder.train()
    assert not torch.allclose(decoder(x), decoder(x))
