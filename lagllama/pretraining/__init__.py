"""Pretraining a frequency-independent Lag-Llama: corpus, synthetic data, mixture, training loop.

lagllama pretrain --config configs/pretrain_small.json   # re-run to continue
"""

from lagllama.pretraining.config import PretrainConfig
from lagllama.pretraining.corpus import (
    EVAL_DATASETS,
    PRETRAINING_SOURCES,
    build_corpus,
    load_source,
    series_fingerprint,
)
from lagllama.pretraining.dataset import PretrainingMixture
from lagllama.pretraining.synthetic import generate_series, synthetic_dataset

__all__ = [
    "EVAL_DATASETS",
    "PRETRAINING_SOURCES",
    "PretrainConfig",
    "PretrainingMixture",
    "build_corpus",
    "generate_series",
    "load_source",
    "series_fingerprint",
    "synthetic_dataset",
]
