"""Prompt-as-Prefix: batched input statistics and prompt text for Time-LLM.

Statistics are computed as batched tensors (autocorrelation through the FFT) and moved
to the CPU with a single ``.tolist()`` per batch; the prompts are then formatted in
Python and tokenised once per batch by the caller.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

DEFAULT_DESCRIPTION = "A univariate time series."


@dataclass
class PromptStatistics:
    """Per-series statistics of a batch of inputs, each a tensor with batch dimension first."""

    min: torch.Tensor  # (B,)
    max: torch.Tensor  # (B,)
    median: torch.Tensor  # (B,)
    trend: torch.Tensor  # (B,) sum of first differences (= last - first observed)
    lags: torch.Tensor  # (B, k) int64, most autocorrelated lags, never 0


def autocorrelation(x: torch.Tensor, observed: torch.Tensor | None = None) -> torch.Tensor:
    """Linear (zero-padded) autocorrelation of mean-removed series along the last dim.

    Returns ``(..., L)`` un-normalised sums ``sum_t xc[t] * xc[t + lag]`` for lags ``0..L-1``.
    """
    length = x.shape[-1]
    if observed is None:
        observed = torch.ones_like(x)
    count = observed.sum(-1, keepdim=True).clamp_min(1.0)
    mean = (x * observed).sum(-1, keepdim=True) / count
    xc = (x - mean) * observed
    n_fft = 1 << (2 * length - 1).bit_length()
    spec = torch.fft.rfft(xc.float(), n=n_fft, dim=-1)
    acf = torch.fft.irfft(spec * spec.conj(), n=n_fft, dim=-1)[..., :length]
    return acf.to(x.dtype)


def top_k_lags(x: torch.Tensor, k: int, observed: torch.Tensor | None = None) -> torch.Tensor:
    """The ``k`` lags (>= 1) with the largest autocorrelation, shape ``(B, k)``; lag 0 excluded."""
    acf = autocorrelation(x, observed)[..., 1:]  # drop lag 0
    k = max(0, min(k, acf.shape[-1]))
    return torch.topk(acf, k, dim=-1).indices + 1


def compute_prompt_statistics(
    x: torch.Tensor, observed: torch.Tensor | None = None, top_k: int = 5
) -> PromptStatistics:
    """Batched statistics of ``x`` with shape ``(B, L)``; unobserved values are ignored."""
    if observed is None:
        observed = torch.ones_like(x)
    mask = observed > 0
    inf = torch.tensor(float("inf"), dtype=x.dtype, device=x.device)
    x_min = torch.where(mask, x, inf).amin(-1)
    x_max = torch.where(mask, x, -inf).amax(-1)
    median = torch.nanquantile(torch.where(mask, x, torch.nan).float(), 0.5, dim=-1).to(x.dtype)
    # trend of the observed values: last observed minus first observed
    pos = torch.arange(x.shape[-1], device=x.device).expand_as(x)
    first = torch.where(mask, pos, x.shape[-1]).amin(-1).clamp_max(x.shape[-1] - 1)
    last = torch.where(mask, pos, -1).amax(-1).clamp_min(0)
    trend = x.gather(-1, last[:, None])[:, 0] - x.gather(-1, first[:, None])[:, 0]
    lags = top_k_lags(x, top_k, observed.to(x.dtype))
    return PromptStatistics(min=x_min, max=x_max, median=median, trend=trend, lags=lags)


def format_prompts(
    stats: PromptStatistics,
    description: str,
    context_length: int,
    prediction_length: int,
) -> list[str]:
    """Prompt strings of a batch; one device-to-host transfer for the whole batch."""
    k = stats.lags.shape[-1]
    table = torch.cat(
        [
            torch.stack([stats.min, stats.max, stats.median, stats.trend], dim=-1).float(),
            stats.lags.float(),
        ],
        dim=-1,
    ).tolist()
    prompts = []
    for row in table:
        lo, hi, med, trend = row[:4]
        lags = [int(v) for v in row[4:]]
        prompts.append(
            f"Dataset description: {description} "
            f"Task description: forecast the next {prediction_length} steps given the previous "
            f"{context_length} steps information; "
            f"Input statistics: min value {lo:.3f}, max value {hi:.3f}, median value {med:.3f}, "
            f"the trend of input is {'upward' if trend > 0 else 'downward'}, "
            f"top {k} lags are: {lags}"
        )
    return prompts
