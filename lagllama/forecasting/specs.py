"""Model specifications: from the name a user types to one GluonTS predictor.

A specification is a shipped model's name (``lagllama-fast``, or any older name), a
Lag-Llama checkpoint path, a statistical baseline (``seasonal-naive``, ``auto-ets``,
``auto-theta``, ``auto-arima``), the default's name (:data:`DEFAULT_MODEL`), or an ensemble
of these joined by ``+``: Lag-Llama members only mix their sample paths
(:class:`~lagllama.forecasting.ensembles.EnsemblePredictor`); a baseline among them makes a
hybrid, a weighted average of the quantiles of the Lag-Llama members' mixture and of each
baseline (:class:`~lagllama.forecasting.ensembles.QuantileEnsemble`). Every entry point (the
forecast API, files, Ray, backtests, zero-shot reports, fine-tuning, the benchmarks) builds
its predictors here, so they all understand the same names and build the same models.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from gluonts.core.component import validated
from gluonts.model import Predictor
from gluonts.transform import MapTransformation

from lagllama.evaluation.baselines import BASELINES, ENSEMBLE_MAX_HISTORY, baseline_predictor
from lagllama.forecasting.ensembles import (
    VALIDATION_PATHS,
    EnsemblePredictor,
    QuantileEnsemble,
    sample_shares,
)

if TYPE_CHECKING:
    from lagllama.forecasting.options import ForecastOptions

#: Separates the members of an ensemble, e.g. ``lagllama-small+lagllama-base``.
ENSEMBLE_SEPARATOR = "+"
#: What ``lagllama forecast``, ``lagllama.forecast``, ``zero-shot`` and ``backtest`` use when
#: no model is named, and what it stands for (chosen by ``benchmarks/dev_broad.py``).
DEFAULT_MODEL = "lagllama"
DEFAULT_MEMBERS = "lagllama-v3-small+lagllama-v3-small-seed1+auto-theta"
#: Input field holding each series' sampling seed (read by ``LagLlamaLightningModule.forward``).
SEED_FIELD = "sample_seed"


@dataclass(frozen=True)
class Member:
    """One member of a specification: a Lag-Llama checkpoint file or a baseline's name."""

    name: str
    checkpoint: str | None = None

    @property
    def is_baseline(self) -> bool:
        return self.checkpoint is None


@dataclass(frozen=True)
class ModelSpec:
    """A parsed specification; ``name`` as the user gave it."""

    name: str
    members: tuple[Member, ...]

    @property
    def is_hybrid(self) -> bool:
        """A baseline among several members: quantiles averaged with fitted weights."""
        return len(self.members) > 1 and any(m.is_baseline for m in self.members)

    @property
    def lag_llama(self) -> tuple[Member, ...]:
        return tuple(m for m in self.members if not m.is_baseline)


def split_members(text: str) -> list[str]:
    """The member names of ``a+b+...`` (one member: ``[text]``)."""
    members = [part.strip() for part in text.split(ENSEMBLE_SEPARATOR)]
    if any(not part for part in members):
        raise ValueError(f"empty ensemble member in {text!r}")
    return members


def _member(name: str) -> Member:
    from lagllama.pretrained import available_names, checkpoint_path

    if name in BASELINES:
        return Member(name)
    if name in available_names():
        return Member(name, str(checkpoint_path(name)))
    path = Path(name)
    if path.suffix == ".ckpt" or path.exists():
        if not path.is_file():
            raise FileNotFoundError(f"checkpoint not found: {path}")
        return Member(name, str(path))
    raise ValueError(
        f"unknown model {name!r}; choose {DEFAULT_MODEL} (the default), a shipped model "
        f"({', '.join(available_names())}), a checkpoint path (.ckpt), a baseline "
        f"({', '.join(BASELINES)}) or an ensemble of them joined by {ENSEMBLE_SEPARATOR}"
    )


def parse_model(name: str | None = None) -> ModelSpec:
    """The :class:`ModelSpec` of ``name`` (``None``: the default); an error naming what is
    unknown or missing. A checkpoint file whose name holds a ``+`` is one model."""
    name = DEFAULT_MODEL if name is None else str(name)
    text = DEFAULT_MEMBERS if name == DEFAULT_MODEL else name
    if ENSEMBLE_SEPARATOR not in text or Path(text).is_file():
        return ModelSpec(name, (_member(text),))
    members = tuple(_member(m) for m in split_members(text))
    if all(m.is_baseline for m in members):
        raise ValueError(f"the ensemble {name} needs at least one Lag-Llama member")
    return ModelSpec(name, members)


def series_seed(seed: int, item_id: object) -> int:
    """A 63-bit seed from the run's seed and a series id (SHA-256, the same in every process)."""
    digest = hashlib.sha256(f"{seed}\x1f{item_id}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


class AddSampleSeed(MapTransformation):
    """Adds ``sample_seed`` (a 0-d int64 array) to each entry: ``series_seed(seed, item_id)``."""

    @validated()
    def __init__(self, seed: int) -> None:
        self.seed = seed

    def map_transform(self, data: dict, is_train: bool) -> dict:
        value = series_seed(self.seed, data.get("item_id"))
        return {**data, SEED_FIELD: np.array(value, dtype=np.int64)}


def seeded(predictor: Predictor, seed: int | None) -> Predictor:
    """A Lag-Llama ``PyTorchPredictor`` that draws each series' paths from its own generator
    (:func:`series_seed`), so a forecast does not depend on the batch, chunk or worker;
    ``seed=None``: torch's global generator, as GluonTS does. A fine-tuning run's quantile
    average of the start and the tuned weights gets its members seeded alike."""
    if seed is None:
        return predictor
    from gluonts.torch.model.predictor import PyTorchPredictor

    from lagllama.training.fine_tuning import QuantileAverage

    if isinstance(predictor, QuantileAverage):
        return QuantileAverage([seeded(m, seed) for m in predictor.members], predictor.weights)

    return PyTorchPredictor(
        input_names=[*predictor.input_names, SEED_FIELD],
        prediction_net=predictor.prediction_net,
        batch_size=predictor.batch_size,
        prediction_length=predictor.prediction_length,
        input_transform=AddSampleSeed(seed) + predictor.input_transform,
        forecast_generator=predictor.forecast_generator,
        device=predictor.device,
    )


def with_paths(predictor: Predictor, paths: int) -> Predictor:
    """A trained Lag-Llama predictor (or a fine-tuning run's quantile average) that draws
    ``paths`` sample paths, sharing its weights: a mixture member or a hybrid's validation
    copy draws its share, as zero-shot members do."""
    import copy

    from lagllama.training.fine_tuning import QuantileAverage

    if isinstance(predictor, QuantileAverage):
        return QuantileAverage([with_paths(m, paths) for m in predictor.members], predictor.weights)
    net = copy.copy(predictor.prediction_net)
    net.num_parallel_samples = paths
    shallow = copy.copy(predictor)
    shallow.prediction_net = net
    return shallow


def lag_llama_predictor(
    checkpoint: str | Path,
    prediction_length: int,
    num_samples: int = 100,
    batch_size: int = 64,
    seed: int | None = 0,
    sampling_precision: str = "32",
    context_length: int | None = None,
    freq: str | None = None,
) -> Predictor:
    """A zero-shot Lag-Llama predictor of a checkpoint file (see :func:`seeded`);
    ``sampling_precision="bf16"`` samples under bf16 autocast (``LagLlamaModel.sample``)."""
    from lagllama.estimators.lag_llama import LagLlamaEstimator

    kwargs = {} if context_length is None else {"context_length": context_length}
    estimator = LagLlamaEstimator.from_checkpoint(
        checkpoint,
        prediction_length=prediction_length,
        num_parallel_samples=num_samples,
        batch_size=batch_size,
        sampling_precision=sampling_precision,
        **({"freq": freq} if freq else {}),
        **kwargs,
    )
    return seeded(estimator.create_zero_shot_predictor(), seed)


def build_predictor(
    spec: ModelSpec,
    options: ForecastOptions,
    season_length: int,
    freq: str | None = None,
    lag_llama: Callable[[Member, int], Predictor] | None = None,
    weights: Sequence[float] | None = None,
) -> Predictor:
    """The predictor of ``spec`` with ``options`` for series of one frequency.

    ``lag_llama(member, paths)`` builds a Lag-Llama member other than zero-shot (fine-tuned,
    say); ``weights`` fix a hybrid's member weights (else they are fitted on rolling
    validation windows by :meth:`QuantileEnsemble.fit`, once per call over the whole input,
    with :data:`~lagllama.forecasting.ensembles.VALIDATION_PATHS` sample paths).
    """
    h = options.prediction_length
    levels = options.levels

    def zero_shot(member: Member, paths: int) -> Predictor:
        return lag_llama_predictor(
            member.checkpoint,
            h,
            paths,
            options.batch_size,
            options.seed,
            options.sampling_precision,
            options.context_length,
            freq,
        )

    make = lag_llama or zero_shot

    def mixture(members: Sequence[Member], paths: int) -> Predictor:
        """Lag-Llama members sharing ``paths`` sample paths (one model: all of them)."""
        if len(members) == 1:
            return make(members[0], paths)
        shares = sample_shares(paths, len(members))
        return EnsemblePredictor([make(m, n) for m, n in zip(members, shares)])

    members = spec.members
    if len(members) == 1 and members[0].is_baseline:
        return baseline_predictor(members[0].name, h, season_length, levels)
    if not spec.is_hybrid:
        return mixture(members, options.num_samples)
    # A hybrid: the Lag-Llama members are one member (their mixture), then the baselines.
    baselines = [m for m in members if m.is_baseline]
    stats = [
        baseline_predictor(
            m.name, h, season_length, levels, fallback=False, max_history=ENSEMBLE_MAX_HISTORY
        )
        for m in baselines
    ]
    validation_paths = min(options.num_samples, VALIDATION_PATHS)
    return QuantileEnsemble(
        [mixture(spec.lag_llama, options.num_samples), *stats],
        [ENSEMBLE_SEPARATOR.join(m.name for m in spec.lag_llama), *(m.name for m in baselines)],
        levels,
        weights=weights,
        validators=[mixture(spec.lag_llama, validation_paths), *stats],
    )


def build_tuned(
    spec: ModelSpec,
    options: ForecastOptions,
    season_length: int,
    freq: str | None,
    tuned: dict[str, Predictor],
    weights: Sequence[float] | None = None,
) -> Predictor:
    """The predictor of ``spec`` with its Lag-Llama members replaced by trained ones (by member
    name), each seeded and drawing what its zero-shot twin draws (its share of the paths, and
    of a hybrid's validation paths): a run that keeps every start forecasts as zero-shot. A
    hybrid's weights are refitted on the input, or fixed to ``weights``."""
    members = {name: seeded(p, options.seed) for name, p in tuned.items()}
    return build_predictor(
        spec,
        options,
        season_length,
        freq,
        lag_llama=lambda member, paths: with_paths(members[member.name], paths),
        weights=weights,
    )
