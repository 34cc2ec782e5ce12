"""The pretraining configuration, read from a JSON or TOML file (``tomllib``, no YAML)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import tomllib

from lagllama.pretraining.corpus import PRETRAINING_SOURCES, check_not_eval


def base_freq(alias: str) -> str:
    """A pandas frequency alias as the series' periods spell it, unanchored (``"A"`` and
    ``"Y-DEC"`` -> ``"Y"``, ``"Q-DEC"`` -> ``"Q"``); an alias pandas does not know is an error."""
    import pandas as pd

    try:
        return pd.Period("2000-01-01", alias).freqstr.split("-")[0]
    except (ValueError, TypeError) as err:
        raise ValueError(f"freq_weights key {alias!r} is not a pandas frequency") from err


@dataclass
class PretrainConfig:
    """Everything ``lagllama pretrain`` needs; relative paths are relative to the config file."""

    name: str = "lagllama-small"
    output_dir: str = "runs/pretrain"
    seed: int = 0
    # model
    context_length: int = 64
    prediction_length: int = 32
    n_layer: int = 4
    n_head: int = 4
    n_embd_per_head: int = 16
    dropout: float = 0.0
    scaling: str = "robust"
    distr_output: str = "student_t"
    observed_lag_features: bool = True
    time_features: bool = True
    # data mix: {source: weight}; see lagllama.pretraining.corpus for source names, plus
    # "tsmixup" (convex combinations of real series, lagllama.pretraining.mixup)
    data_dir: str | None = None
    sources: dict[str, float] = field(
        default_factory=lambda: dict.fromkeys(PRETRAINING_SOURCES, 1.0)
    )
    freq_weights: dict[str, float] = field(default_factory=dict)
    synthetic_series: int = 2000
    min_past: int = 8
    short_history_prob: float = 0.2
    # probability that a draw from the synthetic pool is a new series (replacing one)
    synthetic_refresh: float = 0.0
    tsmixup_max_components: int = 3
    tsmixup_alpha: float = 1.5
    augmentation: dict[str, float] = field(default_factory=dict)
    # validation: whole real series held out (by item_id hash), scored every val_every_steps
    # leave out the broad dev benchmark's holdouts (corpus.BROAD_HOLDOUTS); runs before
    # issue 38 trained on them
    broad_holdout: bool = True
    validation_share: float = 0.0
    validation_windows: int = 512
    val_every_steps: int = 500
    # optimisation
    steps: int = 10000
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-8
    warmup_steps: int = 200
    gradient_clip_val: float = 1.0
    steps_per_epoch: int = 100
    # time chunks and hardware (Lightning)
    chunk_minutes: float = 45.0
    # a weights-only snapshot is exported here after every chunk (commit it); a run with no
    # checkpoint in output_dir starts from the snapshot's weights and step, with a fresh
    # optimiser and rewarmup_steps of linear warm-up into the schedule
    snapshot_dir: str | None = None
    # "float16" halves a snapshot (a 2M-parameter model: 4 MB instead of 8.5); a restart
    # casts the weights back to float32
    snapshot_dtype: str = "float32"
    rewarmup_steps: int = 100
    # weights-only OUTPUT/steps/step-N.ckpt every this many steps (0: none), for the
    # scaling curve (benchmarks/scaling.py)
    keep_every_steps: int = 0
    accelerator: str = "cpu"
    devices: int | str = 1
    num_nodes: int = 1
    strategy: str = "auto"
    precision: str = "32-true"
    torch_compile: bool = False

    def __post_init__(self) -> None:
        for name in self.sources:
            check_not_eval(name)
        if self.steps < 1 or self.batch_size < 1 or self.steps_per_epoch < 1:
            raise ValueError("steps, batch_size and steps_per_epoch must be >= 1")
        if self.snapshot_dtype not in ("float32", "float16", "bfloat16"):
            raise ValueError(
                f"snapshot_dtype must be float32, float16 or bfloat16, got {self.snapshot_dtype!r}"
            )
        if self.val_every_steps % self.steps_per_epoch:
            raise ValueError("val_every_steps must be a multiple of steps_per_epoch")
        if not 0.0 <= self.synthetic_refresh <= 1.0:
            raise ValueError(f"synthetic_refresh must be in [0, 1], got {self.synthetic_refresh}")
        self.freq_weights = {base_freq(k): float(v) for k, v in self.freq_weights.items()}
        if any(v < 0 for v in self.freq_weights.values()):
            raise ValueError(f"freq_weights must be >= 0, got {self.freq_weights}")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> PretrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown pretraining config keys {unknown}; known: {sorted(known)}")
        return cls(**values)

    @classmethod
    def load(cls, path: str | Path) -> PretrainConfig:
        """Read a ``.json`` or ``.toml`` file, or a shipped model's card (``NAME.json`` in
        ``lagllama/checkpoints/``: the recipe it was trained with); ``output_dir``/``data_dir``
        resolve against the current directory when relative."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"pretraining config not found: {path}")
        text = path.read_text()
        if path.suffix == ".toml":
            values = tomllib.loads(text)
        elif path.suffix == ".json":
            values = json.loads(text)
        else:
            raise ValueError(f"config must be .json or .toml, got {path.name}")
        if "pretrain_config" in values.get("training", {}):  # a shipped model's card
            values = values["training"]["pretrain_config"]
            values.setdefault("broad_holdout", False)  # cards before issue 38 trained on them
        values.pop("_comment", None)
        return cls.from_dict(values)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
