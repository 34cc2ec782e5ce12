"""Distribution heads by name, all from ``gluonts.torch.distributions``, and a sampler that
draws each series' rows from its own ``torch.Generator`` (forecasts independent of batching)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from gluonts.torch.distributions import (
    DistributionOutput,
    NegativeBinomialOutput,
    NormalOutput,
    StudentTOutput,
)
from torch.distributions import (
    Distribution,
    NegativeBinomial,
    Normal,
    StudentT,
    TransformedDistribution,
)

DISTRIBUTIONS = {
    "student_t": StudentTOutput,
    "normal": NormalOutput,
    "negative_binomial": NegativeBinomialOutput,
}


def make_distr_output(name: str) -> DistributionOutput:
    """The GluonTS distribution output called ``name`` (``student_t``, ``normal``, ...)."""
    try:
        return DISTRIBUTIONS[name]()
    except KeyError:
        raise ValueError(
            f"unknown distribution {name!r}; choose one of {sorted(DISTRIBUTIONS)}"
        ) from None


def supports_location(name: str) -> bool:
    """Whether the head accepts an affine location (negative binomial takes a scale only)."""
    return name != "negative_binomial"


def _per_generator(
    draw: Callable[[torch.Generator, slice], torch.Tensor],
    generators: Sequence[torch.Generator],
    rows: int,
) -> torch.Tensor:
    """Concatenate ``draw(g, rows_of_g)`` over generators; each owns ``rows`` adjacent rows."""
    return torch.cat([draw(g, slice(i * rows, (i + 1) * rows)) for i, g in enumerate(generators)])


def sample_with_generators(
    distr: Distribution, generators: Sequence[torch.Generator]
) -> torch.Tensor:
    """One draw from ``distr`` whose batch rows are split evenly and in order among
    ``generators``, so each block of rows depends only on its own generator.

    Supports the heads of :data:`DISTRIBUTIONS` (Student-t, normal, negative binomial) and
    affine transforms of them, drawing as torch does (Student-t: z / sqrt(chi2 / df)).
    """
    if isinstance(distr, TransformedDistribution):
        value = sample_with_generators(distr.base_dist, generators)
        for transform in distr.transforms:
            value = transform(value)
        return value
    shape = distr.batch_shape
    rows = shape[0] // len(generators)

    def normal(g: torch.Generator, part: slice) -> torch.Tensor:
        return torch.randn(
            (rows, *shape[1:]), generator=g, dtype=distr.loc.dtype, device=distr.loc.device
        )

    def gamma(concentration: torch.Tensor) -> torch.Tensor:
        tiny = torch.finfo(concentration.dtype).tiny
        draws = _per_generator(
            lambda g, part: torch._standard_gamma(concentration[part], generator=g),
            generators,
            rows,
        )
        return draws.clamp(min=tiny)

    with torch.no_grad():
        if isinstance(distr, StudentT):
            df = distr.df.expand(shape)
            z = _per_generator(normal, generators, rows)
            # each generator draws its block's normals, then its gammas (as torch's rsample)
            chi2 = 2.0 * gamma(0.5 * df)
            return distr.loc + distr.scale * z * torch.rsqrt(chi2 / df)
        if isinstance(distr, Normal):
            return distr.loc + distr.scale * _per_generator(normal, generators, rows)
        if isinstance(distr, NegativeBinomial):
            rate = gamma(distr.total_count.expand(shape)) / torch.exp(-distr.logits)
            return _per_generator(
                lambda g, part: torch.poisson(rate[part], generator=g), generators, rows
            )
    raise ValueError(f"no seeded sampler for {type(distr).__name__}")
