"""Freq-Mask, Freq-Mix, jitter and scaling augmentations."""

from __future__ import annotations

import pytest
import torch

from lagllama.nn.augmentation import AugmentationConfig, augment, dominant_bins, freq_mask, freq_mix


@pytest.mark.parametrize("length", [31, 64])
def test_freq_mask_at_rate_zero_is_identity(length: int) -> None:
    x = torch.randn(5, length)
    torch.testing.assert_close(freq_mask(x, rate=0.0, protect_top_k=0), x, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("length", [31, 64])
def test_freq_mix_keeps_shape_dtype_and_protected_bins(length: int) -> None:
    t = torch.arange(length, dtype=torch.float32)
    x = torch.stack([torch.sin(2 * torch.pi * t * (k + 1) / length) * (k + 2) for k in range(6)])
    x = x + 0.1 * torch.randn_like(x)
    out = freq_mix(x, rate=1.0, protect_top_k=2)
    assert out.shape == x.shape and out.dtype == x.dtype
    spectrum_in, spectrum_out = torch.fft.rfft(x), torch.fft.rfft(out)
    protected = dominant_bins(spectrum_in, 2)
    assert protected.sum(-1).eq(2).all()
    torch.testing.assert_close(
        spectrum_out[protected], spectrum_in[protected], atol=1e-3, rtol=1e-4
    )
    assert not torch.allclose(out, x)  # rate 1: every other bin comes from a partner


def test_freq_mask_keeps_dominant_bins_and_length() -> None:
    x = torch.randn(4, 33) + torch.sin(torch.arange(33.0))[None] * 5
    out = freq_mask(x, rate=1.0, protect_top_k=1)
    assert out.shape == (4, 33)
    kept = dominant_bins(torch.fft.rfft(x), 1)
    spectrum = torch.fft.rfft(out)
    torch.testing.assert_close(spectrum[kept], torch.fft.rfft(x)[kept], atol=1e-3, rtol=1e-4)
    assert torch.allclose(spectrum[~kept], torch.zeros(()).to(spectrum.dtype), atol=1e-3)


def test_augment_respects_probabilities_and_eligibility() -> None:
    x = torch.randn(64, 40)
    assert torch.equal(augment(x, AugmentationConfig()), x)
    config = AugmentationConfig(
        jitter_prob=1.0, scaling_prob=1.0, freq_mask_prob=1.0, freq_mix_prob=1.0
    )
    eligible = torch.arange(64) % 2 == 0
    out = augment(x, config, eligible=eligible)
    assert torch.equal(out[~eligible], x[~eligible])
    assert not torch.allclose(out[eligible], x[eligible])
    assert torch.isfinite(out).all()


def test_augmentation_config_validates_probabilities() -> None:
    with pytest.raises(ValueError, match="freq_mix_prob"):
        AugmentationConfig(freq_mix_prob=1.5)
