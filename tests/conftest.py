"""Shared fixtures: the real-data folder (skipped cleanly when absent), seeding, lr traces."""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import pytest
import torch

from lagllama.settings import shared_datasets_dir


@pytest.fixture(scope="session")
def shared_datasets() -> Path:
    """Folder of real GluonTS datasets; tests that need it skip when it is missing."""
    path = shared_datasets_dir()
    if not (path / "m4_hourly" / "metadata.json").exists():
        pytest.skip(f"real datasets not found at {path} (set LAGLLAMA_SHARED_DATASETS)")
    return path


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)
    np.random.seed(0)  # noqa: NPY002 - GluonTS samplers draw from the global RNG


class LearningRateTrace(pl.Callback):
    """Records the first parameter group's learning rate before every training batch."""

    def __init__(self) -> None:
        self.lrs: list[float] = []

    def on_train_batch_start(self, trainer: pl.Trainer, *args: object) -> None:
        self.lrs.append(trainer.optimizers[0].param_groups[0]["lr"])


@pytest.fixture
def lr_trace() -> LearningRateTrace:
    return LearningRateTrace()
