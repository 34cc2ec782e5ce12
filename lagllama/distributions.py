"""Distribution heads by name, all from ``gluonts.torch.distributions``."""

from __future__ import annotations

from gluonts.torch.distributions import (
    DistributionOutput,
    NegativeBinomialOutput,
    NormalOutput,
    StudentTOutput,
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
