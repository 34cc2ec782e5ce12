"""Future forecasts: the tidy table, files in chunks, per-series seeds, Ray, bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from gluonts.dataset.common import ListDataset
from gluonts.torch.distributions import NegativeBinomialOutput, NormalOutput, StudentTOutput

import lagllama
from lagllama.cli import main
from lagllama.data.series_chunks import dataset_chunks
from lagllama.data.tasks import BacktestTask
from lagllama.estimators.lag_llama import LagLlamaEstimator
from lagllama.estimators.lag_llama.config import LagLlamaConfig
from lagllama.estimators.lag_llama.module import LagLlamaModel
from lagllama.evaluation.backtest import baseline
from lagllama.forecasting.api import forecast
from lagllama.forecasting.files import file_chunks, forecast_chunks
from lagllama.forecasting.options import ForecastOptions
from lagllama.forecasting.specs import lag_llama_predictor, series_seed
from lagllama.nn.distributions import sample_with_generators
from lagllama.pretrained import DEFAULT_NAME, checkpoint_path

VALUES = ["mean", "0.1", "0.5", "0.9"]
FAST = {"num_samples": 10, "model": DEFAULT_NAME}


def long_frame(
    n: int = 4, length: int = 30, freq: str = "D", start: str = "2021-01-04", seed: int = 0
) -> pd.DataFrame:
    """``n`` seasonal series in long form (``item_id``, ``timestamp``, ``target``)."""
    rng = np.random.default_rng(seed)
    t = np.arange(length)
    stamps = pd.date_range(start, periods=length, freq=freq)
    return pd.concat(
        pd.DataFrame(
            {
                "item_id": f"s{i:03d}",
                "timestamp": stamps,
                "target": 20 + 5 * i + 3 * np.sin(t / 3 + i) + rng.normal(0, 0.3, length),
            }
        )
        for i in range(n)
    ).reset_index(drop=True)


def _write(frame: pd.DataFrame, path: Path) -> Path:
    if path.suffix == ".csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_parquet(path, index=False)
    return path


def _read(path: Path) -> pd.DataFrame:
    return pd.read_csv(path) if path.suffix == ".csv" else pd.read_parquet(path)


def _close(a: pd.DataFrame, b: pd.DataFrame, rtol: float = 1e-5) -> None:
    np.testing.assert_allclose(
        a[VALUES].to_numpy(float), b[VALUES].to_numpy(float), rtol=rtol, atol=1e-6
    )


# ------------------------------------------------------------------ the table
@pytest.mark.parametrize("freq", ["MS", "W-SUN", "D", "h", "B"])
@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_file_round_trip_ids_timestamps_and_quantiles(tmp_path: Path, freq: str, fmt: str) -> None:
    frame = long_frame(n=3, length=40, freq=freq, start="2021-01-03")
    path = _write(frame, tmp_path / f"sales.{fmt}")
    out = tmp_path / f"forecasts.{fmt}"
    args = ["forecast", "--file", str(path), "--prediction-length", "5", "--output", str(out)]
    assert main([*args, "--num-samples", "20", "--quiet"]) == 0
    table = _read(out)
    assert list(table.columns) == ["item_id", "timestamp", *VALUES]
    assert list(table["item_id"].unique()) == ["s000", "s001", "s002"]
    expected = pd.date_range(frame["timestamp"].max(), periods=6, freq=freq)[1:]
    for _, part in table.groupby("item_id"):
        assert list(pd.to_datetime(part["timestamp"])) == list(expected)
    assert (table["0.1"] <= table["0.5"]).all() and (table["0.5"] <= table["0.9"]).all()
    assert table[VALUES].notna().all().all()


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_wide_file_and_nixtla_columns(tmp_path: Path, fmt: str) -> None:
    frame = long_frame(n=3, freq="MS", start="2015-01-01")
    wide = frame.pivot(index="timestamp", columns="item_id", values="target").reset_index()
    wide_out = tmp_path / f"wide_out.{fmt}"
    path = _write(wide, tmp_path / f"wide.{fmt}")
    base = ["forecast", "--prediction-length", "4", "--model", "seasonal-naive", "--quiet"]
    assert main([*base, "--file", str(path), "--output", str(wide_out)]) == 0
    nixtla = frame.rename(columns={"item_id": "unique_id", "timestamp": "ds", "target": "y"})
    nixtla_out = tmp_path / f"nixtla_out.{fmt}"
    path = _write(nixtla, tmp_path / f"nixtla.{fmt}")
    assert main([*base, "--file", str(path), "--output", str(nixtla_out)]) == 0
    a, b = _read(wide_out), _read(nixtla_out)
    pd.testing.assert_frame_equal(a, b)
    assert list(a["item_id"].unique()) == ["s000", "s001", "s002"]
    assert pd.to_datetime(a["timestamp"]).iloc[0] == pd.Timestamp("2017-07-01")


def test_ids_keep_their_type_and_text(tmp_path: Path) -> None:
    frame = long_frame(n=2).assign(item_id=lambda d: d["item_id"].map({"s000": 7, "s001": 42}))
    table = forecast(frame, 3, model="seasonal-naive")
    assert table["item_id"].dtype == np.int64 and list(table["item_id"].unique()) == [7, 42]
    csv = tmp_path / "zeros.csv"
    csv.write_text(
        "item_id,timestamp,target\n" + "".join(f"007,2020-01-0{d},{d}\n" for d in range(1, 8))
    )
    out = tmp_path / "out.csv"
    assert (
        main(
            [
                "forecast",
                "--file",
                str(csv),
                "--prediction-length",
                "2",
                "--output",
                str(out),
                "--model",
                "seasonal-naive",
                "--quiet",
            ]
        )
        == 0
    )
    assert out.read_text().splitlines()[1].startswith("007,2020-01-08")


def test_gluonts_dataset_input_uses_its_periods() -> None:
    ds = ListDataset(
        [{"item_id": "a", "start": "2021-01-03", "target": np.arange(30.0)}], freq="W-SUN"
    )
    table = forecast(ds, 2, model="seasonal-naive")
    # weeks are labelled by their last day, as lagllama.data.datasets.to_dataframe writes them
    assert list(table["timestamp"]) == [pd.Timestamp("2021-08-01"), pd.Timestamp("2021-08-08")]
    assert lagllama.forecast is forecast


# ------------------------------------------------------------------ equal to GluonTS
def test_equals_the_gluonts_predictor_called_directly() -> None:
    frame = long_frame(n=5)
    data = ListDataset(
        [
            {"item_id": i, "start": part["timestamp"].iloc[0], "target": part["target"].to_numpy()}
            for i, part in frame.groupby("item_id")
        ],
        freq="D",
    )
    # unseeded: torch's global RNG, exactly like a zero-shot predictor built at the same point
    torch.manual_seed(3)
    estimator = LagLlamaEstimator.from_pretrained(3, num_parallel_samples=10)
    direct = list(estimator.create_zero_shot_predictor().predict(data))
    torch.manual_seed(3)
    table = forecast(frame, 3, seed=None, **FAST)
    np.testing.assert_allclose(table["mean"], np.concatenate([f.mean for f in direct]), rtol=1e-6)
    np.testing.assert_allclose(
        table["0.9"], np.concatenate([f.quantile(0.9) for f in direct]), rtol=1e-6
    )
    # seeded: the predictor with the per-series seed transformation
    seeded = lag_llama_predictor(checkpoint_path(DEFAULT_NAME), 3, num_samples=10, seed=11)
    direct = list(seeded.predict(data))
    table = forecast(frame, 3, seed=11, **FAST)
    np.testing.assert_allclose(
        table["0.1"], np.concatenate([f.quantile(0.1) for f in direct]), rtol=1e-6
    )
    # a baseline, through lagllama.evaluation.backtest's factory
    ets = baseline("auto-ets")(BacktestTask("x", [], 3, "D"))
    direct = list(ets.predict(data))
    table = forecast(frame, 3, model="auto-ets")
    np.testing.assert_allclose(
        table["0.5"], np.concatenate([f.quantile(0.5) for f in direct]), rtol=1e-6
    )


# ------------------------------------------------------------------ determinism
def test_a_series_forecast_does_not_depend_on_its_batch_or_chunk(tmp_path: Path) -> None:
    frame = long_frame(n=1000, length=40)
    alone = forecast(frame[frame["item_id"] == "s123"], 3, **FAST)
    batch = forecast(frame, 3, batch_size=250, **FAST)
    _close(batch[batch["item_id"] == "s123"], alone)
    path = _write(frame.iloc[: 40 * 30], tmp_path / "part.parquet")
    out = tmp_path / "chunked.parquet"
    args = ["forecast", "--file", str(path), "--prediction-length", "3", "--output", str(out)]
    assert (
        main(
            [*args, "--chunk-rows", "97", "--batch-size", "7", "--num-samples", "10", "--quiet"]
            + ["--model", DEFAULT_NAME]
        )
        == 0
    )
    chunked = pd.read_parquet(out)
    _close(chunked, batch.iloc[: 30 * 3])
    other_seed = forecast(frame[frame["item_id"] == "s123"], 3, seed=1, **FAST)
    assert not np.allclose(other_seed["mean"], alone["mean"])
    assert series_seed(0, "s123") == series_seed(0, "s123") != series_seed(1, "s123")


@pytest.mark.parametrize("out", [StudentTOutput(), NormalOutput(), NegativeBinomialOutput()])
def test_seeded_draws_are_torch_draws_from_each_generator(out) -> None:
    args = out.domain_map(*(torch.randn(6, 1) for _ in out.args_dim))
    loc = None if isinstance(out, NegativeBinomialOutput) else torch.full((6,), 3.0)
    distr = out.distribution(args, loc=loc, scale=torch.full((6,), 2.0))
    torch.manual_seed(5)
    expected = distr.sample()
    torch.testing.assert_close(
        sample_with_generators(distr, [torch.Generator().manual_seed(5)]), expected
    )
    two = sample_with_generators(
        distr, [torch.Generator().manual_seed(5), torch.Generator().manual_seed(6)]
    )
    assert two.shape == (6,) and not torch.equal(two, expected)


@pytest.mark.parametrize("distr", ["student_t", "normal"])
def test_model_seeds_make_paths_independent_of_the_batch(distr: str) -> None:
    config = LagLlamaConfig(
        context_length=12,
        prediction_length=4,
        lags_seq=[1, 2, 7],
        n_layer=1,
        n_head=2,
        n_embd_per_head=8,
        num_time_features=0,
        distr_output=distr,
    )
    model = LagLlamaModel(config).eval()
    past = torch.rand(5, config.past_length) * 10 + 5
    observed = torch.ones_like(past)
    seeds = torch.tensor([3, 1, 4, 1, 5])
    batch = model.sample(past, observed, num_samples=8, seeds=seeds)
    alone = model.sample(past[2:3], observed[2:3], num_samples=8, seeds=seeds[2:3])
    torch.testing.assert_close(batch[2:3], alone, rtol=1e-5, atol=1e-5)
    shuffled = model.sample(past.flip(0), observed, num_samples=8, seeds=seeds.flip(0))
    torch.testing.assert_close(shuffled.flip(0), batch, rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------------ Ray
def test_ray_equals_single_process(tmp_path: Path) -> None:
    ray = pytest.importorskip("ray")
    pytest.importorskip("ray.data")
    from lagllama.forecasting.ray_engine import forecast_ray

    frame = long_frame(n=12, length=40)
    local = forecast(frame, 3, **FAST)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        chunks = dataset_chunks(
            ListDataset(
                [
                    {
                        "item_id": i,
                        "start": p["timestamp"].iloc[0],
                        "target": p["target"].to_numpy(),
                    }
                    for i, p in frame.groupby("item_id")
                ],
                freq="D",
            ),
            3,
            size=5,
        )
        options = ForecastOptions(3, DEFAULT_NAME, num_samples=10)
        run = forecast_ray(
            lambda: chunks, tmp_path / "ray.parquet", options, workers=2, progress=False
        )
    finally:
        ray.shutdown()
    assert run.counts["series"] == 12 and (tmp_path / "ray.parquet").is_dir()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    remote = pd.read_parquet(tmp_path / "ray.parquet").sort_values(["item_id", "timestamp"])
    assert list(remote["item_id"].astype(str)) == list(local["item_id"])
    assert list(remote["timestamp"]) == list(local["timestamp"])
    _close(remote, local)


def _hybrid_tables(tmp_path: Path) -> tuple[Path, Path]:
    """A history with a known-future covariate and short series, and its future table."""
    rng = np.random.default_rng(3)
    frame = long_frame(n=9, length=36, freq="MS", start="2019-01-01")
    frame["price"] = rng.normal(10, 1, len(frame)).round(2)
    frame["target"] += 0.8 * frame["price"]
    frame = frame[~((frame["item_id"] == "s002") & (frame.index % 36 < 30))]  # 6 points
    future = long_frame(n=9, length=39, freq="MS", start="2019-01-01").groupby("item_id").tail(3)
    future = future.drop(columns="target").assign(price=rng.normal(10, 1, len(future)).round(2))
    return _write(frame, tmp_path / "h.csv"), _write(future, tmp_path / "f.csv")


def test_a_hybrid_with_covariates_does_not_depend_on_chunks_or_ray(tmp_path: Path) -> None:
    """The default hybrid's weights are fitted once per input: chunk sizes 1, 7 and all, and
    Ray, give the same forecasts (fixed seed), covariates included."""
    history, future = _hybrid_tables(tmp_path)
    common = ["forecast", "--file", str(history), "--future-file", str(future)]
    common += ["--prediction-length", "3", "--num-samples", "10", "--quiet"]
    tables = {}
    for rows in (1, 7 * 36, 10_000):
        out = tmp_path / f"rows{rows}.parquet"
        assert main([*common, "--chunk-rows", str(rows), "--output", str(out)]) == 0
        tables[rows] = pd.read_parquet(out)
    if pytest.importorskip("ray") and pytest.importorskip("ray.data"):
        out = tmp_path / "ray.parquet"
        assert main([*common, "--engine", "ray", "--ray-workers", "2", "--output", str(out)]) == 0
        tables["ray"] = pd.read_parquet(out).sort_values(["item_id", "timestamp"])
    reference = tables.pop(10_000)
    assert len(reference) == 27 and reference[VALUES].notna().all().all()
    for table in tables.values():
        assert list(table["item_id"].astype(str)) == list(reference["item_id"].astype(str))
        _close(table.reset_index(drop=True), reference)
    # the covariate matters and the hybrid is not the Lag-Llama member alone
    plain = forecast(pd.read_csv(history).drop(columns="price"), 3, num_samples=10)
    assert not np.allclose(plain["mean"], reference["mean"])
    single = forecast(pd.read_csv(history).drop(columns="price"), 3, **FAST)
    assert not np.allclose(plain["mean"], single["mean"])


# ------------------------------------------------------------------ bad input
def _error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("lagllama: error: ") and "\n" not in err, err
    return err


GOOD = "item_id,timestamp,target\n" + "".join(f"a,2020-01-{d:02d},{d}\n" for d in range(1, 11))


@pytest.mark.parametrize(
    "text, extra, message",
    [
        (GOOD, ["--item-id-column", "sku"], "item id column 'sku' not found"),
        (GOOD.replace("timestamp", "when"), [], "time column 'timestamp' not found"),
        (GOOD, ["--target-column", "sales"], "target column 'sales' not found"),
        (GOOD.replace("id,timestamp,target", "id,timestamp,a,b"), [], "--target-column"),
        (
            GOOD + "b,2020-01-01,1\nb,2020-01-02,2\nb,2020-01-02,3\n",
            [],
            "item 'b' in time column 'timestamp': 2020-01-02",
        ),
        (GOOD.replace("2020-01-05", "2020-01-25"), [], "series 'a' has irregular timestamps"),
        (GOOD.replace(",7\n", ",seven\n"), [], "'seven' at data row 7"),
        ("", [], "is empty"),
        ("item_id,timestamp,target\n", [], "has no rows"),
        (
            GOOD + "".join(f"b,2020-01-{d:02d},\n" for d in range(1, 11)),
            [],
            "series 'b' has no observed value",
        ),
        (GOOD, ["--model", "lag-lama"], "unknown model 'lag-lama'"),
        (GOOD, ["--prediction-length", "0"], "--prediction-length must be >= 1, got 0"),
        (
            GOOD + "b,2020-01-01,1\n" + GOOD.splitlines()[1] + "\n",
            ["--freq", "D"],
            "series 'a' are not contiguous",
        ),
        ("timestamp,store,sales\n2020-01-01,A1,3\n2020-01-02,A1,4\n", [], "--item-id-column"),
    ],
)
def test_bad_input_is_one_line_and_leaves_no_file(
    tmp_path: Path, capsys, text: str, extra: list[str], message: str
) -> None:
    path = tmp_path / "in.csv"
    path.write_text(text)
    out = tmp_path / "out" / "forecasts.parquet"
    args = [
        "forecast",
        "--file",
        str(path),
        "--prediction-length",
        "2",
        "--output",
        str(out),
        "--quiet",
    ]
    assert main([*args, "--chunk-rows", "4", *extra]) == 2
    assert message in _error_line(capsys)
    assert not out.exists() and not (out.parent.exists() and any(out.parent.iterdir()))


def test_error_in_a_late_chunk_removes_what_was_written(tmp_path: Path) -> None:
    frame = long_frame(n=6)
    frame.loc[frame.index[-1], "target"] = "oops"
    path = _write(frame, tmp_path / "in.csv")
    out = tmp_path / "out.csv"
    with pytest.raises(ValueError, match="'oops' at data row 180"):
        options = ForecastOptions(2, "seasonal-naive")
        forecast_chunks(lambda: file_chunks(path, 2, chunk_rows=30), out, options, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv"]


def test_missing_values_are_counted(tmp_path: Path, capsys) -> None:
    frame = long_frame(n=3)
    frame.loc[[5, 40], "target"] = np.nan
    path = _write(frame, tmp_path / "in.csv")
    for model, handled in (("auto-ets", "2 imputed"), (DEFAULT_NAME, "0 imputed")):
        out = tmp_path / f"{model}.csv"
        args = ["forecast", "--file", str(path), "--prediction-length", "2", "--output", str(out)]
        assert main([*args, "--model", model, "--quiet", "--num-samples", "10"]) == 0
        printed = capsys.readouterr().out
        assert "3 series forecast; 2 had missing values" in printed and handled in printed
        assert _read(out)[VALUES].notna().all().all()


def test_plots_of_the_first_series(tmp_path: Path, capsys) -> None:
    path = _write(long_frame(n=3), tmp_path / "in.parquet")
    args = [
        "forecast",
        "--file",
        str(path),
        "--prediction-length",
        "4",
        "--output",
        str(tmp_path / "f.csv"),
    ]
    assert (
        main(
            [
                *args,
                "--plot",
                str(tmp_path / "charts"),
                "--num-plots",
                "2",
                "--quiet",
                "--num-samples",
                "10",
            ]
        )
        == 0
    )
    charts = sorted((tmp_path / "charts").iterdir())
    assert [c.name for c in charts] == ["01_s000.png", "02_s001.png"]
    assert charts[0].read_bytes()[:4] == b"\x89PNG"


# ------------------------------------------------------------------ backtest inputs
def test_backtest_reads_long_csv_and_leaves_out_short_series(tmp_path: Path, capsys) -> None:
    frame = pd.concat(
        [long_frame(n=2, length=40), long_frame(n=1, length=5).assign(item_id="tiny")]
    )
    path = _write(frame[["timestamp", "item_id", "target"]], tmp_path / "sales.csv")
    out = tmp_path / "report"
    args = [
        "backtest",
        "--file",
        str(path),
        "--prediction-length",
        "6",
        "--models",
        "seasonal-naive",
    ]
    assert main([*args, "--output", str(out)]) == 0
    assert (
        "left out 1 series of sales shorter than the backtest window plus one point (7): tiny"
        in capsys.readouterr().err
    )
    table = pd.read_csv(out / "results.csv")
    assert table["num_series"].iloc[0] == 2 and table["too_short"].iloc[0] == 1
    assert "1 series left out" in (out / "report.md").read_text()


def test_backtest_names_a_duplicate_timestamp(tmp_path: Path, capsys) -> None:
    path = tmp_path / "dup.csv"
    path.write_text(GOOD + "a,2020-01-10,3\n")
    assert main(["backtest", "--file", str(path), "--prediction-length", "2"]) == 2
    assert (
        "duplicate timestamps for item 'a' in time column 'timestamp': 2020-01-10"
        in _error_line(capsys)
    )


def test_a_wide_dataframe_forecasts_its_columns_as_series() -> None:
    """A timestamp column and one column per series is a documented input: its series columns
    are not covariates (and covariates with it are a one-line error)."""
    long = long_frame(n=3, length=30)
    wide = long.pivot(index="timestamp", columns="item_id", values="target").reset_index()
    table = forecast(wide, 6, **FAST)
    assert sorted(table["item_id"].unique()) == ["s000", "s001", "s002"] and len(table) == 18
    _close(
        table.sort_values(["item_id", "timestamp"]).reset_index(drop=True),
        forecast(long, 6, **FAST),
    )
    with pytest.raises(ValueError, match="covariates need long form"):
        forecast(wide, 6, future_df=long.drop(columns="target"), **FAST)
