"""Where the toolkit looks for data on disk, read from environment variables."""

from __future__ import annotations

import os
from pathlib import Path

#: Folder of real GluonTS-format datasets used by tests and benchmarks.
SHARED_DATASETS_ENV = "LAGLLAMA_SHARED_DATASETS"
#: Folder the data loaders read from (and download into when online).
DATA_DIR_ENV = "LAGLLAMA_DATA_DIR"

_REPO_ROOT = Path(__file__).resolve().parent.parent


def shared_datasets_dir() -> Path:
    """The development/benchmark data folder: ``$LAGLLAMA_SHARED_DATASETS`` or ``../shared/datasets``."""
    env = os.environ.get(SHARED_DATASETS_ENV)
    return Path(env) if env else _REPO_ROOT.parent / "shared" / "datasets"
