"""Covariates: in-context regression (zero-shot), table conventions, and bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from gluonts.dataset.common import ListDataset

from lagllama.cli import main
from lagllama.forecasting.api import forecast
from lagllama.forecasting.covariates import KNOWN, InContextRegression, ridge_effects
from lagllama.forecasting.specs import lag_llama_predictor
from lagllama.pretrained import DEFAULT_NAME, checkpoint_path

H = 6


def _history(n: int = 60, series: tuple[str, ...] = ("a", "b"), seed: int = 0):
    """Daily series driven by a price (known ahead) and a promo flag (text), plus the future
    table of both; ``y = 100 - 4 price + 15 [promo] + noise``."""
    rng = np.random.default_rng(seed)
    rows, future = [], []
    for item in series:
        time = pd.date_range("2021-01-01", periods=n + H, freq="D")
        price = rng.uniform(5, 10, n + H)
        promo = np.where(rng.random(n + H) < 0.3, "yes", "no")
        y = 100 - 4 * price + 15 * (promo == "yes") + rng.normal(0, 0.5, n + H)
        frame = pd.DataFrame(
            {"item_id": item, "timestamp": time, "target": y, "price": price, "promo": promo}
        )
        rows.append(frame.iloc[:n])
        future.append(frame.iloc[n:].drop(columns="target"))
    return pd.concat(rows, ignore_index=True), pd.concat(future, ignore_index=True)


def _truth(seed: int = 0) -> pd.Series:
    history, future = _history(seed=seed)
    return 100 - 4 * future["price"] + 15 * (future["promo"] == "yes")


def test_ridge_recovers_a_linear_effect_and_survives_collinear_and_constant_columns() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=80)
    target = 50 + 3 * x[:70] + rng.normal(0, 0.1, 70)
    known = np.stack([x, x, np.full(80, 2.0)])  # a duplicate and a constant covariate
    fit = ridge_effects(target, known)
    assert fit.dropped == 1
    np.testing.assert_allclose(
        fit.future - fit.future.mean(), 3 * (x[70:] - x[70:].mean()), atol=0.3
    )
    assert np.isfinite(fit.history).all() and np.isfinite(fit.future).all()
    assert ridge_effects(target, np.full((1, 80), 3.0)) == "constant"
    assert ridge_effects(target[:4], rng.normal(size=(5, 14))) == "too_few_points"


def test_seasonal_levels_keep_a_seasonal_covariate_to_its_own_effect() -> None:
    """Temperature follows the hour; demand has its own daily shape: with one level per hour
    in the fit, the covariate gets its true slope (3), not the daily pattern's."""
    rng = np.random.default_rng(2)
    t = np.arange(24 * 30 + 24)
    daily = np.sin(2 * np.pi * t / 24)
    x = 5 * daily + rng.normal(0, 1, len(t))
    y = (20 * daily + 3 * x + rng.normal(0, 0.3, len(t)))[:-24]
    slope = lambda fit: np.polyfit(x[-24:], fit.future, 1)[0]  # noqa: E731
    assert slope(ridge_effects(y, x[None, :], season=24)) == pytest.approx(3.0, abs=0.15)
    assert slope(ridge_effects(y, x[None, :], season=1)) > 5.0  # the daily shape leaks in


def test_in_context_regression_beats_the_same_model_without_covariates() -> None:
    history, future = _history()
    truth = _truth().to_numpy()
    base = forecast(history[["item_id", "timestamp", "target"]], H, model="seasonal-naive")
    with_cov = forecast(history, H, model="seasonal-naive", future_df=future)
    error = lambda table: np.abs(table["0.5"].to_numpy() - truth).mean()  # noqa: E731
    assert error(with_cov) < 0.2 * error(base)
    # the Lag-Llama model too, with its quantiles still ordered
    table = forecast(history, H, model=DEFAULT_NAME, num_samples=20, future_df=future)
    assert error(table) < 0.5 * error(forecast(history.iloc[:, :3], H, num_samples=20))
    assert (table["0.1"] <= table["0.5"]).all() and (table["0.5"] <= table["0.9"]).all()


def test_without_covariates_forecasts_are_unchanged() -> None:
    history, _ = _history()
    plain = forecast(history[["item_id", "timestamp", "target"]], H, num_samples=16, seed=3)
    extra = forecast(history, H, num_samples=16, seed=3)  # other columns, no future table
    pd.testing.assert_frame_equal(plain, extra)
    base = lag_llama_predictor(checkpoint_path(DEFAULT_NAME), H, num_samples=8, seed=1)
    data = ListDataset(
        [{"start": "2021-01-01", "target": np.arange(40.0), "item_id": "x"}], freq="D"
    )
    wrapped = next(iter(InContextRegression(base).predict(data)))
    np.testing.assert_array_equal(wrapped.samples, next(iter(base.predict(data))).samples)


def test_gluonts_dataset_with_feat_dynamic_real_just_works() -> None:
    history, future = _history(series=("a",))
    price = np.concatenate([history["price"], future["price"]])
    entry = {"start": "2021-01-01", "target": history["target"].to_numpy(), "item_id": "a"}
    with_price = ListDataset([{**entry, KNOWN: price[None, :]}], freq="D")
    table = forecast(with_price, H, model="seasonal-naive")
    plain = forecast(ListDataset([entry], freq="D"), H, model="seasonal-naive")
    assert not np.allclose(table["0.5"], plain["0.5"])
    short = ListDataset([{**entry, KNOWN: price[None, :-1]}], freq="D")
    with pytest.raises(ValueError, match="it needs the history and the forecast"):
        forecast(short, H, model="seasonal-naive")


# ------------------------------------------------------------ bad input, one line, no output
def _write(history: pd.DataFrame, future: pd.DataFrame, folder: Path) -> tuple[Path, Path]:
    h, f = folder / "history.csv", folder / "future.csv"
    history.to_csv(h, index=False)
    future.to_csv(f, index=False)
    return h, f


def _run(folder: Path, history: pd.DataFrame, future: pd.DataFrame, *extra: str) -> int:
    h, f = _write(history, future, folder)
    args = ["forecast", "--file", str(h), "--future-file", str(f), "--prediction-length", str(H)]
    return main([*args, "--model", "seasonal-naive", "--output", str(folder / "out.csv"), *extra])


def _drop_row(future: pd.DataFrame) -> pd.DataFrame:
    return future.drop(index=future.index[(future["item_id"] == "b")][2])


def _set(frame: pd.DataFrame, column: str, value, history: bool = False) -> pd.DataFrame:
    frame = frame.copy()
    if value == "text":
        frame[column] = frame[column].astype(object)
    frame.loc[frame.index[-1], column] = value
    return frame


@pytest.mark.parametrize(
    ("change", "extra", "message"),
    [
        (lambda h, f: (h, f[f["item_id"] == "a"]), (), "no rows for series 'b'"),
        (lambda h, f: (h, _drop_row(f)), (), "lacks timestamp 2021-03-04 00:00:00 for series 'b'"),
        (
            lambda h, f: (h, f.drop(columns="price")),
            ("--covariates", "price,promo"),
            "has no column 'price'",
        ),
        (lambda h, f: (_set(h, "price", "text"), f), (), "text where a number is expected"),
        (lambda h, f: (h, _set(f, "price", np.nan)), (), "'price' is missing (NaN) for series 'b'"),
        (lambda h, f: (h, _set(f, "price", np.inf)), (), "'price' is infinite for series 'b'"),
        (lambda h, f: (_set(h, "target", np.inf), f), (), "infinite value at data row 120"),
        (lambda h, f: (h, f), ("--covariates", "nope"), "covariate column 'nope' not found"),
    ],
    ids=["series", "step", "column", "text", "nan", "inf", "target-inf", "unknown-name"],
)
def test_bad_covariate_input_is_one_line_and_leaves_no_output(
    change, extra, message, tmp_path: Path, capsys
) -> None:
    history, future = change(*_history())
    assert _run(tmp_path, history, future, *extra) == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert message in error, error
    assert not (tmp_path / "out.csv").exists()
    assert not list(tmp_path.glob(".out.csv*"))


def test_constant_and_too_many_covariates_fall_back_and_are_counted(tmp_path: Path, capsys):
    history, future = _history()
    history.loc[history["item_id"] == "a", "price"] = 7.0  # constant within series a
    history = history.drop(columns="promo")
    future = future.drop(columns="promo")
    assert _run(tmp_path, history, future) == 0
    out = capsys.readouterr().out
    assert "covariates by in-context regression on 1 series" in out
    assert "1 series with no varying covariate" in out
    table = pd.read_csv(tmp_path / "out.csv")
    assert len(table) == 2 * H and np.isfinite(table[["0.1", "0.5", "0.9"]]).all().all()
    # more covariates than context points: that series is forecast without them
    short, wide_future = _history(n=5)
    for k in range(8):
        short[f"x{k}"] = np.random.default_rng(k).normal(size=len(short))
        wide_future[f"x{k}"] = 1.0
    assert _run(tmp_path, short.drop(columns="promo"), wide_future.drop(columns="promo")) == 0
    assert "2 with fewer points than covariates + 2" in capsys.readouterr().out


def test_backtests_take_the_covariate_columns_with_their_future_from_the_file(
    tmp_path: Path, capsys
) -> None:
    history, future = _history()
    full = pd.concat([history, future.assign(target=_truth().to_numpy())])
    full = full.sort_values(["item_id", "timestamp"])
    path = tmp_path / "sales.csv"
    full.to_csv(path, index=False)
    base = ["zero-shot", "--file", str(path), "--prediction-length", str(H), "--num-samples", "20"]
    assert main([*base, "--output", str(tmp_path / "plain")]) == 0
    assert main([*base, "--covariates", "price,promo", "--output", str(tmp_path / "cov")]) == 0
    scores = lambda out: (  # noqa: E731
        pd.read_csv(tmp_path / out / "results.csv").query("dataset == 'sales'").set_index("model")
    )
    plain, cov = scores("plain"), scores("cov")
    assert cov.loc["lag-llama", "WQL"] < 0.6 * plain.loc["lag-llama", "WQL"]
    assert cov.loc["seasonal-naive", "WQL"] == plain.loc["seasonal-naive", "WQL"]  # reference
    args = [*base, "--covariates", "nope", "--output", str(tmp_path / "x")]
    assert main(args) == 2
    assert "covariate column 'nope' not found" in capsys.readouterr().err


def test_trained_covariates_from_the_command_line(tmp_path: Path, capsys) -> None:
    """``--trained-covariates``: the model learns the covariates (saved with them) and is not
    wrapped in in-context regression; a file without covariates is a clear error."""
    history, future = _history()
    full = pd.concat([history, future.assign(target=_truth().to_numpy())])
    path = tmp_path / "sales.csv"
    full.sort_values(["item_id", "timestamp"]).to_csv(path, index=False)
    base = ["train", "--file", str(path), "--prediction-length", str(H), "--num-samples", "10"]
    base += ["--max-epochs", "1", "--num-batches-per-epoch", "2", "--batch-size", "8"]
    out = tmp_path / "trained"
    args = [*base, "--covariates", "price,promo", "--trained-covariates", "--output", str(out)]
    assert main(args) == 0
    from gluonts.torch.model.predictor import PyTorchPredictor

    predictor = PyTorchPredictor.deserialize(out / "models" / "sales")
    assert predictor.prediction_net.config.num_feat_dynamic_real == 3  # price, promo=no, =yes
    scores = pd.read_csv(out / "results.csv").query("dataset == 'sales'").set_index("model")
    assert np.isfinite(scores.loc["lag-llama-trained", "WQL"])
    assert main([*base, "--trained-covariates", "--output", str(tmp_path / "none")]) == 2
    assert "sales has no covariates" in capsys.readouterr().err
