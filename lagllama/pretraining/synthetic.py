"""Seeded synthetic series for pretraining: KernelSynth-style Gaussian processes and
structural series (trend + seasonality + level shifts + noise) and intermittent demand.

KernelSynth (Ansari et al., 2024, Chronos) draws a random composition (sums and products)
of kernels from a bank -- periodic (ExpSineSquared), RBF, linear (DotProduct),
rational-quadratic, white noise -- and samples one path of the Gaussian process on a grid
by Cholesky factorisation. Periods of the periodic kernels follow the series' frequency
(24 and 168 for hourly, 7 for daily, 12 for monthly, ...), so calendar features and
seasonal lags see realistic structure.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

#: Frequencies the generator emits, with their typical seasonal periods.
FREQ_PERIODS: dict[str, tuple[int, ...]] = {
    "h": (24, 168, 12),
    "D": (7, 30, 365),
    "W": (52, 4, 13),
    "M": (12, 6, 3),
    "Q": (4, 2),
    "Y": (),
}
#: Default share of each frequency among synthetic series (short, low-frequency series
#: dominate forecasting benchmarks).
DEFAULT_FREQ_WEIGHTS = {"h": 0.15, "D": 0.15, "W": 0.1, "M": 0.3, "Q": 0.15, "Y": 0.15}
#: Share of each generator family.
DEFAULT_KIND_WEIGHTS = {"kernel": 0.5, "structural": 0.35, "intermittent": 0.15}

Kernel = Callable[[np.ndarray, np.ndarray], np.ndarray]


# ------------------------------------------------------------------ kernels
def exp_sine_squared(period: float, length_scale: float) -> Kernel:
    def k(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        d = np.abs(x[:, None] - y[None, :])
        return np.exp(-2.0 * np.sin(np.pi * d / period) ** 2 / length_scale**2)

    return k


def rbf(length_scale: float) -> Kernel:
    def k(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return np.exp(-0.5 * (x[:, None] - y[None, :]) ** 2 / length_scale**2)

    return k


def dot_product(sigma0: float) -> Kernel:
    def k(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return sigma0**2 + x[:, None] * y[None, :]

    return k


def rational_quadratic(length_scale: float, alpha: float) -> Kernel:
    def k(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        d2 = (x[:, None] - y[None, :]) ** 2
        return (1.0 + d2 / (2.0 * alpha * length_scale**2)) ** (-alpha)

    return k


def white_noise(level: float) -> Kernel:
    def k(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        if x.shape == y.shape and np.array_equal(x, y):
            return level * np.eye(len(x))
        return np.zeros((len(x), len(y)))

    return k


def random_kernel(rng: np.random.Generator, length: int, periods: tuple[int, ...]) -> Kernel:
    """One kernel from the bank with random hyperparameters (inputs on [0, 1])."""
    choice = rng.choice(["periodic", "rbf", "linear", "rq", "white"], p=[0.4, 0.2, 0.15, 0.15, 0.1])
    if choice == "periodic":
        if periods and rng.random() < 0.8:
            period = float(rng.choice(periods))
        else:
            period = float(rng.uniform(2, max(3, length / 2)))
        return exp_sine_squared(period / length, float(rng.uniform(0.5, 2.0)))
    if choice == "rbf":
        return rbf(float(np.exp(rng.uniform(np.log(0.02), np.log(1.0)))))
    if choice == "linear":
        return dot_product(float(rng.uniform(0.0, 1.0)))
    if choice == "rq":
        return rational_quadratic(
            float(np.exp(rng.uniform(np.log(0.02), np.log(1.0)))), float(rng.uniform(0.1, 10))
        )
    return white_noise(float(rng.uniform(0.01, 0.3)))


def compose(rng: np.random.Generator, kernels: list[Kernel]) -> Kernel:
    """Random binary composition (sum or product) of the kernels, KernelSynth style."""
    result = kernels[0]
    for other in kernels[1:]:
        left = result
        if rng.random() < 0.5:

            def result(x, y, a=left, b=other):
                return a(x, y) + b(x, y)

        else:

            def result(x, y, a=left, b=other):
                return a(x, y) * b(x, y)

    return result


def sample_gp(rng: np.random.Generator, kernel: Kernel, length: int) -> np.ndarray:
    """One path of a zero-mean GP with ``kernel`` on ``length`` points of [0, 1]."""
    x = np.linspace(0.0, 1.0, length)
    cov = kernel(x, x)
    jitter = 1e-6 * max(1.0, float(np.mean(np.diag(cov))))
    for _ in range(6):
        try:
            chol = np.linalg.cholesky(cov + jitter * np.eye(length))
            return chol @ rng.standard_normal(length)
        except np.linalg.LinAlgError:
            jitter *= 10.0
    # not positive definite even with jitter: fall back to an eigendecomposition
    values, vectors = np.linalg.eigh(cov)
    return vectors @ (np.sqrt(np.clip(values, 0.0, None)) * rng.standard_normal(length))


def kernel_synth(
    rng: np.random.Generator, length: int, freq: str, max_kernels: int = 5
) -> np.ndarray:
    """A KernelSynth series: a GP path from a random composition of 1..max_kernels kernels."""
    periods = FREQ_PERIODS.get(freq, ())
    n = int(rng.integers(1, max_kernels + 1))
    kernel = compose(rng, [random_kernel(rng, length, periods) for _ in range(n)])
    return sample_gp(rng, kernel, length)


# --------------------------------------------------------------- structural
def structural(rng: np.random.Generator, length: int, freq: str) -> np.ndarray:
    """Trend + seasonality (+ level shifts) + noise, additive or multiplicative."""
    t = np.arange(length, dtype=float)
    kind = rng.choice(["linear", "damped", "exp", "none"], p=[0.4, 0.2, 0.15, 0.25])
    slope = rng.normal(0, 1.0 / length) * rng.uniform(0.5, 5)
    if kind == "linear":
        trend = slope * t
    elif kind == "damped":
        phi = rng.uniform(0.9, 0.999)
        trend = slope * (1 - phi ** (t + 1)) / (1 - phi) / max(1.0, length / 50)
    elif kind == "exp":
        trend = np.expm1(rng.normal(0, 1.0 / length) * t)
    else:
        trend = np.zeros(length)
    season = np.zeros(length)
    for period in FREQ_PERIODS.get(freq, ()):
        if period < length and rng.random() < 0.7:
            for harmonic in range(1, int(rng.integers(1, 4)) + 1):
                amp = rng.normal(0, 0.3) / harmonic
                season += amp * np.sin(
                    2 * np.pi * harmonic * t / period + rng.uniform(0, 2 * np.pi)
                )
    shifts = np.zeros(length)
    if rng.random() < 0.3:
        for _ in range(int(rng.integers(1, 4))):
            shifts[int(rng.integers(0, length)) :] += rng.normal(0, 0.5)
    ar = np.zeros(length)
    phi = rng.uniform(-0.5, 0.95)
    eps = rng.standard_normal(length) * rng.uniform(0.02, 0.3)
    if rng.random() < 0.2:
        eps = rng.standard_t(3, length) * rng.uniform(0.02, 0.2)
    for i in range(1, length):
        ar[i] = phi * ar[i - 1] + eps[i]
    ar[0] = eps[0]
    base = trend + shifts + ar
    if rng.random() < 0.3:  # multiplicative seasonality on a positive level
        level = 1.0 + np.abs(base - base.min())
        return level * (1.0 + 0.5 * season)
    return base + season


def intermittent(rng: np.random.Generator, length: int, freq: str) -> np.ndarray:
    """Intermittent demand: Bernoulli occurrences (optionally seasonal) times count sizes."""
    t = np.arange(length, dtype=float)
    p = rng.uniform(0.05, 0.7)
    rate = np.full(length, p)
    periods = FREQ_PERIODS.get(freq, ())
    if periods and rng.random() < 0.5:
        period = periods[0]
        rate = np.clip(p * (1 + 0.8 * np.sin(2 * np.pi * t / period + rng.uniform(0, 6))), 0, 1)
    occur = rng.random(length) < rate
    mean_size = rng.uniform(1, 20)
    sizes = (
        rng.poisson(mean_size, length) + 1
        if rng.random() < 0.7
        else np.ceil(rng.gamma(2.0, mean_size / 2.0, length))
    )
    return (occur * sizes).astype(float)


GENERATORS = {"kernel": kernel_synth, "structural": structural, "intermittent": intermittent}


def generate_series(
    rng: np.random.Generator,
    freq: str,
    length: int,
    kind: str = "kernel",
) -> np.ndarray:
    """One synthetic series (float32) of a family, with a random level and scale."""
    y = GENERATORS[kind](rng, length, freq)
    if kind != "intermittent":
        y = (y - y.mean()) / (y.std() + 1e-8)
        scale = float(np.exp(rng.uniform(np.log(0.1), np.log(1e4))))
        level = 0.0 if rng.random() < 0.2 else scale * rng.uniform(0.5, 10.0)
        y = level + scale * y
        if level > 0 and rng.random() < 0.5:
            y = np.clip(y, 0.0, None)  # non-negative quantities (sales, counts, load)
    return y.astype(np.float32)


class SeriesSampler:
    """Draws synthetic entries ``{"target", "freq", "item_id"}``: a frequency and a family by
    weight, then a length log-uniform in ``[min_length, max_length]`` (short series common)."""

    def __init__(
        self,
        min_length: int = 32,
        max_length: int = 1024,
        freq_weights: dict[str, float] | None = None,
        kind_weights: dict[str, float] | None = None,
    ) -> None:
        fw = freq_weights or DEFAULT_FREQ_WEIGHTS
        kw = kind_weights or DEFAULT_KIND_WEIGHTS
        self.freqs, fp = list(fw), np.array(list(fw.values()), dtype=float)
        self.kinds, kp = list(kw), np.array(list(kw.values()), dtype=float)
        self.freq_p, self.kind_p = fp / fp.sum(), kp / kp.sum()
        self.min_length, self.max_length = min_length, max_length

    def __call__(self, rng: np.random.Generator, item_id: str | int = "new") -> dict:
        freq = str(rng.choice(self.freqs, p=self.freq_p))
        kind = str(rng.choice(self.kinds, p=self.kind_p))
        log_length = rng.uniform(np.log(self.min_length), np.log(self.max_length))
        return {
            "target": generate_series(rng, freq, int(np.exp(log_length)), kind),
            "freq": freq,
            "item_id": f"synthetic:{kind}:{item_id}",
        }


def synthetic_dataset(
    num_series: int,
    seed: int = 0,
    min_length: int = 32,
    max_length: int = 1024,
    freq_weights: dict[str, float] | None = None,
    kind_weights: dict[str, float] | None = None,
) -> list[dict]:
    """``num_series`` synthetic entries ``{"target", "freq", "item_id"}``, reproducible by seed."""
    rng = np.random.default_rng(seed)
    draw = SeriesSampler(min_length, max_length, freq_weights, kind_weights)
    return [draw(rng, i) for i in range(num_series)]
