"""Shared fixtures: the real-data folder (skipped cleanly when absent) and seeding."""

from __future__ import annotations

from pathlib import Path

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
