"""Per-series scalers: robust (median / IQR, default), mean, std and none.

All return ``(scaled, loc, scale)`` with ``loc`` and ``scale`` of shape ``(B, 1)``, computed
from observed values only. The robust scaler falls back to the mean absolute deviation and
then to a fraction of the level for flat series, so it never divides by ~0.
"""

from __future__ import annotations

import torch
from gluonts.torch.scaler import MeanScaler, NOPScaler, Scaler, StdScaler

SCALINGS = ("robust", "mean", "std", "none")


class RobustScaler(Scaler):
    """``loc`` = median, ``scale`` = inter-quartile range, with sane floors for flat series."""

    def __init__(self, relative_floor: float = 1e-3, minimum_scale: float = 1e-3) -> None:
        self.relative_floor = relative_floor
        self.minimum_scale = minimum_scale

    def __call__(
        self, data: torch.Tensor, observed_indicator: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        observed = observed_indicator.bool()
        values = torch.where(observed, data, torch.full_like(data, float("nan")))
        any_observed = observed.any(dim=1, keepdim=True)
        loc = torch.nanmedian(values, dim=1, keepdim=True).values
        q = torch.nanquantile(
            values,
            torch.tensor([0.25, 0.75], dtype=data.dtype, device=data.device),
            dim=1,
            keepdim=True,
        )
        iqr = q[1] - q[0]
        mad = torch.nanmean((values - loc).abs(), dim=1, keepdim=True)
        floor = torch.clamp(loc.abs() * self.relative_floor, min=self.minimum_scale)
        scale = torch.where(iqr > floor, iqr, torch.where(mad > floor, mad, floor))
        loc = torch.where(any_observed, loc, torch.zeros_like(loc))
        scale = torch.where(any_observed, scale, torch.ones_like(scale))
        return (data - loc) / scale, loc, scale


def make_scaler(name: str) -> Scaler:
    """The scaler called ``name`` (one of :data:`SCALINGS`)."""
    if name == "robust":
        return RobustScaler()
    if name == "mean":
        return MeanScaler(dim=1, keepdim=True, default_scale=1.0)
    if name == "std":
        return StdScaler(dim=1, keepdim=True)
    if name == "none":
        return NOPScaler(dim=1, keepdim=True)
    raise ValueError(f"unknown scaling {name!r}; choose one of {SCALINGS}")
