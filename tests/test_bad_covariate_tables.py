"""Bad covariate tables on ``lagllama forecast --future-file``: one-line errors naming the
series, timestamp or column, found before any progress bar or output file; past-only
covariates named in the summary."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lagllama.cli import main
from lagllama.forecasting.api import forecast

H = 3
N = 30
#: Progress-bar text that must not reach stderr before an error.
BAR = ("forecast:", "it/s", "series/s]")


def _tables(series: tuple[str, ...] = ("a", "b")) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Daily history of ``series`` driven by a price, and the future table of the price."""
    rng = np.random.default_rng(0)
    history, future = [], []
    for item in series:
        time = pd.date_range("2021-01-01", periods=N + H, freq="D")
        price = rng.uniform(5, 10, N + H)
        frame = pd.DataFrame(
            {"item_id": item, "timestamp": time, "target": 100 - 4 * price, "price": price}
        )
        history.append(frame.iloc[:N])
        future.append(frame.iloc[N:].drop(columns="target"))
    return pd.concat(history, ignore_index=True), pd.concat(future, ignore_index=True)


def _run(folder: Path, history: pd.DataFrame, future: pd.DataFrame | None, *extra: str) -> int:
    """``lagllama forecast`` of the tables with the small shipped model, progress bar on."""
    history.to_csv(folder / "h.csv", index=False)
    args = ["forecast", "--file", str(folder / "h.csv"), "--prediction-length", str(H)]
    if future is not None:
        future.to_csv(folder / "f.csv", index=False)
        args += ["--future-file", str(folder / "f.csv")]
    args += ["--model", "lagllama-fast", "--num-samples", "8"]
    return main([*args, "--output", str(folder / "out.csv"), *extra])


def _error(capsys, folder: Path) -> str:
    """The one line on stderr (no progress bar before it); no output file is left."""
    err = capsys.readouterr().err
    assert err.startswith("lagllama: error: ") and err.count("\n") == 1, err
    assert not any(text in err for text in BAR), err
    assert not (folder / "out.csv").exists()
    assert not list(folder.glob(".out.csv*"))
    return err.strip()


def _repeat(frame: pd.DataFrame, item: str, step: int) -> pd.DataFrame:
    """``frame`` with the ``step``-th row of series ``item`` written twice, in place."""
    row = frame[frame["item_id"] == item].iloc[[step]]
    return pd.concat([frame, row]).sort_index(kind="stable").reset_index(drop=True)


def test_a_repeated_future_row_is_named_like_a_repeated_history_row(tmp_path: Path, capsys):
    history, future = _tables()
    assert _run(tmp_path, history, _repeat(future, "b", 1)) == 2
    assert _error(capsys, tmp_path) == (
        "lagllama: error: duplicate timestamps for item 'b' in time column 'timestamp' of the "
        "future table: 2021-02-01 00:00:00"
    )
    assert _run(tmp_path, _repeat(history, "a", 5), future) == 2
    assert _error(capsys, tmp_path) == (
        "lagllama: error: duplicate timestamps for item 'a' in time column 'timestamp': "
        "2021-01-06 00:00:00"
    )
    with pytest.raises(ValueError, match="duplicate timestamps for item 'b'.* future table"):
        forecast(history, H, model="seasonal-naive", future_df=_repeat(future, "b", 1))


def test_a_future_column_the_history_lacks_is_an_error(tmp_path: Path, capsys) -> None:
    history, future = _tables()
    assert _run(tmp_path, history, future.assign(promo=1.0)) == 2
    assert "the future table has column 'promo' that the history lacks" in _error(capsys, tmp_path)


def test_past_only_covariates_are_named_in_the_summary(tmp_path: Path, capsys) -> None:
    history, future = _tables()
    cost = np.random.default_rng(1).normal(size=len(history))
    assert _run(tmp_path, history.assign(cost=cost), future, "--quiet") == 0
    summary = capsys.readouterr().out.strip().splitlines()[-1]
    assert summary.endswith("; past-only covariates, ignored zero-shot: cost"), summary
    assert "covariates by in-context regression on 2 series" in summary
    assert len(pd.read_csv(tmp_path / "out.csv")) == 2 * H
    # without a future table the run has no covariates and its summary is as before
    assert _run(tmp_path, history.assign(cost=cost), None, "--quiet") == 0
    summary = capsys.readouterr().out.strip().splitlines()[-1]
    assert "covariate" not in summary, summary


def _drop(future: pd.DataFrame, item: str, step: int | None = None) -> pd.DataFrame:
    """``future`` without series ``item`` (or only without its ``step``-th row)."""
    rows = future.index[future["item_id"] == item]
    return future.drop(index=rows if step is None else rows[step])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda f: _repeat(f, "b", 2), "duplicate timestamps for item 'b'"),
        (lambda f: f.assign(promo=1.0), "has column 'promo' that the history lacks"),
        (lambda f: _drop(f, "b"), "the future table has no rows for series 'b'"),
        (lambda f: _drop(f, "b", 1), "lacks timestamp 2021-02-01 00:00:00 for series 'b'"),
    ],
    ids=["duplicate", "unknown-column", "missing-series", "missing-row"],
)
def test_future_table_errors_come_before_any_progress_bar(
    change, message: str, tmp_path: Path, capsys
) -> None:
    """Series b is in the second chunk of the history, read after the progress bar starts."""
    history, future = _tables()
    assert _run(tmp_path, history, change(future), "--chunk-rows", str(N // 2)) == 2
    assert message in _error(capsys, tmp_path)
