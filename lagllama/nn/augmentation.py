"""Training-time augmentations, vectorised over the batch: Freq-Mask, Freq-Mix, jitter, scaling.

Freq-Mask and Freq-Mix (Chen et al., 2023, "FrAug") edit the real FFT of each window: Freq-Mask
zeroes random frequency bins; Freq-Mix replaces random bins with those of another window in the
batch. The ``protect_top_k`` dominant bins of each window (largest amplitude, DC included) are
never touched, so the main periodicities and the level survive. Windows come back through
``irfft(n=L)``, exactly their original length, odd or even.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch


@dataclass
class AugmentationConfig:
    """Probability (per window) and strength of each augmentation; all off by default."""

    freq_mask_prob: float = 0.0
    freq_mask_rate: float = 0.1
    freq_mix_prob: float = 0.0
    freq_mix_rate: float = 0.1
    protect_top_k: int = 2
    jitter_prob: float = 0.0
    jitter_sigma: float = 0.03
    scaling_prob: float = 0.0
    scaling_sigma: float = 0.1

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if name.endswith(("_prob", "_rate")) and not 0.0 <= value <= 1.0:
                raise ValueError(f"augmentation {name} must be in [0, 1], got {value}")

    @property
    def active(self) -> bool:
        return any(
            p > 0
            for p in (self.freq_mask_prob, self.freq_mix_prob, self.jitter_prob, self.scaling_prob)
        )


def dominant_bins(spectrum: torch.Tensor, k: int) -> torch.Tensor:
    """Boolean mask of the ``k`` largest-amplitude bins of each row of a complex spectrum."""
    mask = torch.zeros(spectrum.shape, dtype=torch.bool, device=spectrum.device)
    if k > 0:
        top = spectrum.abs().topk(min(k, spectrum.shape[-1]), dim=-1).indices
        mask.scatter_(-1, top, True)
    return mask


def freq_mask(
    x: torch.Tensor, rate: float, protect_top_k: int = 2, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Zero a fraction ``rate`` of the unprotected frequency bins of each row of ``x`` (B, L)."""
    spectrum = torch.fft.rfft(x, dim=-1)
    drop = torch.rand(spectrum.shape, generator=generator, device=x.device) < rate
    drop &= ~dominant_bins(spectrum, protect_top_k)
    spectrum = spectrum.masked_fill(drop, 0)
    return torch.fft.irfft(spectrum, n=x.shape[-1], dim=-1).to(x.dtype)


def freq_mix(
    x: torch.Tensor, rate: float, protect_top_k: int = 2, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Swap a fraction ``rate`` of each row's unprotected bins with those of a random other row."""
    partner = torch.randperm(x.shape[0], generator=generator, device=x.device)
    spectrum = torch.fft.rfft(x, dim=-1)
    other = spectrum[partner]
    swap = torch.rand(spectrum.shape, generator=generator, device=x.device) < rate
    swap &= ~dominant_bins(spectrum, protect_top_k)
    mixed = torch.where(swap, other, spectrum)
    return torch.fft.irfft(mixed, n=x.shape[-1], dim=-1).to(x.dtype)


def _chosen(batch: int, prob: float, generator: torch.Generator | None, device) -> torch.Tensor:
    return torch.rand(batch, 1, generator=generator, device=device) < prob


def augment(
    x: torch.Tensor,
    config: AugmentationConfig,
    eligible: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Apply each augmentation to a random subset of the rows of ``x`` (B, L).

    ``eligible`` (B,) limits augmentation to some rows, e.g. windows without padding or gaps,
    whose spectrum would otherwise be polluted by the filler values.
    """
    B = x.shape[0]
    ok = torch.ones(B, 1, dtype=torch.bool, device=x.device)
    if eligible is not None:
        ok = eligible.reshape(B, 1).bool()
    if config.freq_mask_prob > 0:
        rows = ok & _chosen(B, config.freq_mask_prob, generator, x.device)
        x = torch.where(
            rows, freq_mask(x, config.freq_mask_rate, config.protect_top_k, generator), x
        )
    if config.freq_mix_prob > 0 and B > 1:
        rows = ok & _chosen(B, config.freq_mix_prob, generator, x.device)
        x = torch.where(rows, freq_mix(x, config.freq_mix_rate, config.protect_top_k, generator), x)
    if config.jitter_prob > 0:
        rows = ok & _chosen(B, config.jitter_prob, generator, x.device)
        std = x.std(dim=-1, keepdim=True).nan_to_num(0.0)
        noise = (
            torch.randn(x.shape, generator=generator, device=x.device) * config.jitter_sigma * std
        )
        x = torch.where(rows, x + noise, x)
    if config.scaling_prob > 0:
        rows = ok & _chosen(B, config.scaling_prob, generator, x.device)
        factor = torch.exp(
            torch.randn(B, 1, generator=generator, device=x.device) * config.scaling_sigma
        )
        x = torch.where(rows, x * factor, x)
    return x
