"""Training in bf16 on a CPU without bf16 instructions warns (bf16 is emulated there, slow)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from gluonts.dataset.common import ListDataset

import lagllama.nn.precision as precision
from lagllama.estimators.lag_llama import LagLlamaEstimator
from lagllama.nn.precision import warn_slow_bf16_training

SLOW = "without bf16 instructions"
CPU = torch.device("cpu")


def _train(tmp_path, precision_name: str) -> None:
    """One batch of a tiny Lag-Llama on the CPU at ``precision_name``."""
    t = np.arange(120)
    data = ListDataset(
        [{"start": pd.Period("2024-01-01 00:00", freq="h"), "target": np.sin(t / 4) + 5}],
        freq="h",
    )
    trainer = {
        "max_epochs": 1,
        "accelerator": "cpu",
        "precision": precision_name,
        "default_root_dir": str(tmp_path),
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "logger": False,
    }
    estimator = LagLlamaEstimator(
        prediction_length=4,
        freq="h",
        context_length=16,
        batch_size=4,
        num_batches_per_epoch=1,
        n_layer=1,
        n_head=2,
        n_embd_per_head=8,
        trainer_kwargs=trainer,
    )
    estimator.train(data)


def _slow_warnings(record: list[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in record if SLOW in str(w.message)]


@pytest.mark.parametrize("name", ["bf16-mixed", "bf16-true"])
def test_bf16_warns_on_a_cpu_without_bf16(monkeypatch, name: str) -> None:
    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: False)
    with pytest.warns(RuntimeWarning, match=f"precision='{name}' on a CPU {SLOW}"):
        warn_slow_bf16_training(name, CPU)


@pytest.mark.parametrize(
    ("has_bf16", "name", "device"),
    [
        (True, "bf16-mixed", CPU),  # native bf16: fast
        (False, "32-true", CPU),  # float32
        (False, "16-mixed", CPU),  # not bf16
        (False, "bf16-mixed", torch.device("cuda")),  # not the CPU
    ],
)
def test_no_warning_otherwise(monkeypatch, has_bf16: bool, name: str, device) -> None:
    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: has_bf16)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        warn_slow_bf16_training(name, device)
    assert not _slow_warnings(record)


def test_training_warns_once_fitting_starts(monkeypatch, tmp_path) -> None:
    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: False)
    with pytest.warns(RuntimeWarning, match=f"precision='bf16-mixed' on a CPU {SLOW}"):
        _train(tmp_path / "bf16", "bf16-mixed")
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        _train(tmp_path / "32", "32-true")
    assert not _slow_warnings(record)


def test_training_on_a_cpu_with_bf16_does_not_warn(monkeypatch, tmp_path) -> None:
    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: True)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        _train(tmp_path, "bf16-mixed")
    assert not _slow_warnings(record)
