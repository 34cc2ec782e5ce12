"""Covariates benchmark: the same models with and without covariates, in one run.

    python -m benchmarks.covariates                          # default model, both datasets
    python -m benchmarks.covariates --model lagllama-v2-small --windows 26

Datasets (real, held out of every pretraining corpus: ``COVARIATE_BENCHMARK_SERIES``):

- ``vic_elec``: Victoria's electricity demand, hourly means of the half-hourly data
  (tsibbledata), with temperature, temperature squared and a public-holiday flag (the
  ``holidays`` package, Victoria). Day-ahead forecasts (h = 24), one origin every
  ``--stride-days`` days through 2014, at local midnight, from the 8 weeks before it. Temperature is the observed one
  (a perfect weather forecast, as usual in such benchmarks).
- ``us_births``: US daily births 2000-2014 (SSA) and 1969-1988, with a US federal holiday
  flag and a flag for the days next to a holiday. h = 28, 13 origins in the last year, each
  from the 2 years before it.

Models, every one scored on the same windows: Lag-Llama zero-shot without and with in-context
regression (:mod:`lagllama.forecasting.covariates`); seasonal naive and AutoETS without and with it;
GluonTS DeepAR trained on the history before the first origin without and with
``feat_dynamic_real``; statsforecast AutoARIMA (stepwise, approximate likelihood, orders
p, q <= 2 and P, Q <= 1) with the covariates as exogenous regressors, fitted on the last
``--arima-context`` points of each window. WQL over quantiles 0.1..0.9 and MASE
(``lagllama.evaluation.backtest``). Writes ``results/covariates.{md,json}``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings

import numpy as np
import pandas as pd
import torch
from gluonts.model import Predictor
from gluonts.model.forecast import QuantileForecast

from benchmarks.common import machine, write_results
from lagllama.data.tasks import BacktestTask
from lagllama.evaluation.backtest import backtest, baseline, markdown_table
from lagllama.forecasting.covariates import KNOWN, InContextRegression, WithoutCovariates
from lagllama.pretraining.corpus import load_source
from lagllama.settings import shared_datasets_dir

LOCAL_TZ = "Australia/Melbourne"


def _series(source: str, item_id: str, data_dir) -> dict:
    (entry,) = [e for e in load_source(source, data_dir) if e["item_id"] == item_id]
    return entry


def vic_elec(data_dir, stride_days: int, windows: int) -> tuple[list[dict], list[dict]]:
    """(window entries, training entries) of hourly demand with temperature and holidays."""
    import holidays

    demand = _series("corpus/tsibbledata", "tsibbledata:vic_elec:Demand", data_dir)
    temp = _series("corpus/tsibbledata", "tsibbledata:vic_elec:Temperature", data_dir)
    index = pd.period_range(demand["start"], periods=len(demand["target"]), freq="30min")
    frame = pd.DataFrame(
        {"y": demand["target"], "temp": temp["target"]}, index=index.to_timestamp()
    )
    hourly = frame.resample("h").mean()
    local = hourly.index.tz_localize("UTC").tz_convert(LOCAL_TZ)
    days = holidays.Australia(subdiv="VIC", years=range(2011, 2016))
    holiday = np.array([d in days for d in local.date], dtype=float)
    t = hourly["temp"].to_numpy()
    known = np.stack([t, (t - 18.0) ** 2 / 10.0, holiday])
    y = hourly["y"].to_numpy(np.float32)
    start = pd.Period(hourly.index[0], "h")
    # origins at local midnight, every stride_days, ending with the last full day
    midnights = np.flatnonzero((local.hour == 0) & (local.year == 2014))
    origins = midnights[midnights + 24 <= len(y)][::-1][::stride_days][:windows][::-1]
    return _windows("vic_elec", y, known, start, origins, 24, 24 * 7 * 8), [
        {"start": start, "target": y[: origins[0]], KNOWN: known[:, : origins[0]]}
    ]


def us_births(data_dir, windows: int) -> tuple[list[dict], list[dict]]:
    """(window entries, training entries) of daily births with holiday flags."""
    from pandas.tseries.holiday import USFederalHolidayCalendar

    entries, train = [], []
    for item in (
        "misc_single:misc:fivethirtyeight:US_births_2000-2014_SSA",
        "misc_single:misc:neuralprophet:births_us",
    ):
        series = _series("corpus/misc_single", item, data_dir)
        y = series["target"]
        stamps = pd.period_range(series["start"], periods=len(y), freq="D").to_timestamp()
        days = USFederalHolidayCalendar().holidays(stamps[0], stamps[-1] + pd.Timedelta(days=1))
        holiday = stamps.isin(days).astype(float)
        near = (np.roll(holiday, 1) + np.roll(holiday, -1) > 0).astype(float) * (1 - holiday)
        known = np.stack([holiday, near])
        origins = len(y) - 28 * np.arange(windows, 0, -1)
        entries += _windows(item.split(":")[-1], y, known, series["start"], origins, 28, 730)
        train.append(
            {"start": series["start"], "target": y[: origins[0]], KNOWN: known[:, : origins[0]]}
        )
    return entries, train


def _windows(name, y, known, start, origins, h, history) -> list[dict]:
    """One entry per origin: the last ``history`` points before it, then the ``h`` to forecast."""
    return [
        {
            "item_id": f"{name}@{o}",
            "start": start + max(0, o - history),
            "target": np.asarray(y[max(0, o - history) : o + h], dtype=np.float32),
            KNOWN: np.asarray(known[:, max(0, o - history) : o + h], dtype=np.float32),
        }
        for o in origins
    ]


class ArimaX(Predictor):
    """statsforecast AutoARIMA with the known covariates as exogenous regressors (columns
    constant over the fit dropped), fitted on the last ``context`` points; quantiles from its
    prediction intervals; seasonal naive when the fit fails (counted)."""

    def __init__(self, prediction_length: int, season: int, context: int) -> None:
        super().__init__(prediction_length=prediction_length)
        self.season, self.context = season, context
        self.num_fallbacks = 0

    def predict(self, dataset, **kwargs):
        from statsforecast.models import AutoARIMA

        levels = [80, 60, 40, 20]
        keys = ["0.1", "0.2", "0.3", "0.4", "0.5", "0.6", "0.7", "0.8", "0.9", "mean"]
        h = self.prediction_length
        for entry in dataset:
            y = np.asarray(entry["target"], float)
            T = len(y)
            x = np.asarray(entry[KNOWN], float).T
            lo = max(0, T - self.context)
            fit_x = x[lo:T]
            varies = fit_x.std(axis=0) > 0
            try:
                model = AutoARIMA(
                    season_length=self.season,
                    approximation=True,
                    max_p=2,
                    max_q=2,
                    max_P=1,
                    max_Q=1,
                )
                model.fit(y[lo:], X=fit_x[:, varies])
                out = model.predict(h, X=x[T:][:, varies], level=levels)
                rows = [out[f"lo-{lv}"] for lv in levels] + [out["mean"]]
                rows += [out[f"hi-{lv}"] for lv in reversed(levels)] + [out["mean"]]
                values = np.stack(rows)
            except Exception:  # a failed fit: seasonal naive, counted
                self.num_fallbacks += 1
                last = y[T - self.season : T] if T >= self.season else y[-1:]
                values = np.tile(np.resize(last, h), (len(keys), 1))
            start = pd.Period(entry["start"]) + T
            yield QuantileForecast(values, start_date=start, forecast_keys=keys)


def deepar(train: list[dict], h: int, freq: str, covariates: bool, args) -> Predictor:
    """GluonTS DeepAR trained on ``train`` (with ``feat_dynamic_real`` or without)."""
    from gluonts.torch.model.deepar import DeepAREstimator

    torch.manual_seed(args.seed)
    np.random.seed(args.seed)  # noqa: NPY002 (GluonTS samplers use the global RNG)
    data = train if covariates else [{k: v for k, v in e.items() if k != KNOWN} for e in train]
    estimator = DeepAREstimator(
        freq=freq,
        prediction_length=h,
        context_length=4 * h,
        num_feat_dynamic_real=len(train[0][KNOWN]) if covariates else 0,
        batch_size=64,
        num_batches_per_epoch=50,
        trainer_kwargs={
            "max_epochs": args.deepar_epochs,
            "accelerator": "cpu",
            "logger": False,
            "default_root_dir": tempfile.mkdtemp(prefix="lagllama_covariates_"),
            "enable_progress_bar": False,
            "enable_model_summary": False,
        },
    )
    predictor = estimator.train(data)
    return predictor if covariates else WithoutCovariates(predictor)


def lag_llama_tuned(model: str, train: list[dict], h: int, freq: str, covariates: bool, args):
    """Lag-Llama fine-tuned from ``model`` on ``train`` for a fixed number of steps, with the
    known covariates as trained inputs (``num_feat_dynamic_real``; their weights start at
    zero) or without them: the same steps, learning rate and seed on both sides."""
    from lagllama.estimators.lag_llama import LagLlamaEstimator

    torch.manual_seed(args.seed)
    np.random.seed(args.seed)  # noqa: NPY002 (GluonTS samplers use the global RNG)
    data = train if covariates else [{k: v for k, v in e.items() if k != KNOWN} for e in train]
    kwargs = {
        "freq": freq,
        "num_parallel_samples": args.num_samples,
        "num_feat_dynamic_real": len(train[0][KNOWN]) if covariates else 0,
        "lr": args.tune_lr,
        "batch_size": 64,
        "num_batches_per_epoch": 50,
        "trainer_kwargs": {
            "max_epochs": args.tune_epochs,
            "accelerator": "cpu",
            "logger": False,
            "default_root_dir": tempfile.mkdtemp(prefix="lagllama_covariates_"),
            "enable_progress_bar": False,
            "enable_model_summary": False,
        },
    }
    if model.endswith(".ckpt"):
        estimator = LagLlamaEstimator.from_checkpoint(model, h, **kwargs)
    else:
        estimator = LagLlamaEstimator.from_pretrained(h, name=model, **kwargs)
    predictor = estimator.train(data)
    return predictor if covariates else WithoutCovariates(predictor)


def lag_llama(model: str, task: BacktestTask, args) -> Predictor:
    from lagllama.estimators.lag_llama import LagLlamaEstimator

    kwargs = {"freq": task.freq, "num_parallel_samples": args.num_samples}
    if model.endswith(".ckpt"):
        estimator = LagLlamaEstimator.from_checkpoint(model, task.prediction_length, **kwargs)
    else:
        estimator = LagLlamaEstimator.from_pretrained(task.prediction_length, name=model, **kwargs)
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)  # noqa: NPY002 (GluonTS samplers use the global RNG)
    return estimator.create_zero_shot_predictor()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=shared_datasets_dir())
    parser.add_argument(
        "--model", default=None, help="a shipped Lag-Llama name or a .ckpt (default: the default)"
    )
    parser.add_argument("--label", help="the model's name in the report (default: --model)")
    parser.add_argument("--windows", type=int, default=26, help="vic_elec origins")
    parser.add_argument("--stride-days", type=int, default=14)
    parser.add_argument("--births-windows", type=int, default=13)
    parser.add_argument("--num-samples", type=int, default=100)
    parser.add_argument("--arima-context", type=int, default=24 * 14)
    parser.add_argument("--deepar-epochs", type=int, default=30)
    parser.add_argument("--tune-epochs", type=int, default=8, help="fine-tuning: epochs of 50")
    parser.add_argument("--tune-lr", type=float, default=1e-3, help="fine-tuning learning rate")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", choices=["vic_elec", "us_births"], help="one dataset")
    parser.add_argument("--output", default="covariates")
    args = parser.parse_args()
    from lagllama.pretrained import DEFAULT_NAME

    warnings.filterwarnings("ignore", "possible convergence problem")

    model = args.model or DEFAULT_NAME
    label = args.label or model
    start = time.perf_counter()
    elec, elec_train = vic_elec(args.data_dir, args.stride_days, args.windows)
    births, births_train = us_births(args.data_dir, args.births_windows)
    tasks = [
        (BacktestTask("vic_elec", elec, 24, "h"), elec_train, 24 * 14),
        (BacktestTask("us_births", births, 28, "D"), births_train, 7 * 52),
    ]
    rows, fallbacks = [], {}
    for task, train, arima_context in tasks:
        if args.only and task.name != args.only:
            continue
        models = {
            label: lambda t: WithoutCovariates(lag_llama(model, t, args)),
            f"{label} + covariates (in-context regression)": lambda t: InContextRegression(
                lag_llama(model, t, args)
            ),
            "seasonal-naive + covariates": lambda t: InContextRegression(
                baseline("seasonal-naive")(t)
            ),
            "auto-ets": lambda t: WithoutCovariates(baseline("auto-ets")(t)),
            "auto-ets + covariates": lambda t: InContextRegression(baseline("auto-ets")(t)),
            f"{label} fine-tuned": lag_llama_tuned(
                model, train, task.prediction_length, task.freq, False, args
            ),
            f"{label} fine-tuned + covariates (trained)": lag_llama_tuned(
                model, train, task.prediction_length, task.freq, True, args
            ),
            "deepar (trained)": deepar(train, task.prediction_length, task.freq, False, args),
            "deepar (trained) + covariates": deepar(
                train, task.prediction_length, task.freq, True, args
            ),
            "auto-arima + covariates (X)": ArimaX(
                task.prediction_length, task.season_length, min(arima_context, args.arima_context)
            ),
        }
        report = backtest([task], models, baselines=["seasonal-naive"])
        rows.append(report.results)
        fallbacks[task.name] = report.results.set_index("model")["fallbacks"].to_dict()
    results = pd.concat(rows, ignore_index=True)
    wall = time.perf_counter() - start
    table = results[
        ["dataset", "model", "WQL", "MASE", "coverage_80", "num_series", "s_per_series"]
    ]
    naive = results[results["model"] == "seasonal-naive"].set_index("dataset")["WQL"]
    pivot = results.pivot(index="model", columns="dataset", values="WQL")
    gains = []
    for dataset in pivot.columns:
        pairs = [
            (label, f"{label} + covariates (in-context regression)"),
            ("seasonal-naive", "seasonal-naive + covariates"),
            ("auto-ets", "auto-ets + covariates"),
            (f"{label} fine-tuned", f"{label} fine-tuned + covariates (trained)"),
            ("deepar (trained)", "deepar (trained) + covariates"),
        ]
        for without, with_ in pairs:
            gains.append(
                {
                    "dataset": dataset,
                    "model": without,
                    "WQL without": pivot.loc[without, dataset],
                    "WQL with covariates": pivot.loc[with_, dataset],
                    "change": pivot.loc[with_, dataset] / pivot.loc[without, dataset] - 1,
                }
            )
    gains = pd.DataFrame(gains)
    info = machine()
    markdown = "\n\n".join(
        [
            "# Covariates: the same models with and without them",
            f"Lag-Llama model `{label}` zero-shot ({args.num_samples} paths, seed {args.seed}); "
            f"vic_elec: {len(elec)} day-ahead windows (h = 24, every {args.stride_days} days "
            "of 2014, 8 weeks of history each), covariates temperature, (temperature - 18)^2 / 10, VIC public holiday; "
            f"us_births: {len(births)} windows of h = 28 (2 years of history each), covariates US federal holiday and "
            "next-to-holiday flags. Lag-Llama fine-tuned from the same checkpoint and DeepAR "
            "trained from scratch on each dataset's history before its first window (Lag-Llama "
            f"{args.tune_epochs} epochs x 50 batches of 64 at lr {args.tune_lr:g}, the "
            "covariates' input weights starting at zero; DeepAR "
            f"{args.deepar_epochs} epochs x 50 batches of 64); AutoARIMA fitted on "
            f"the last {args.arima_context} (vic_elec) / 364 (births) points of each window. "
            f"{info['torch_threads']} torch threads, {info['cpu']}.",
            "## With against without\n\n" + markdown_table(gains),
            "## All scores\n\n" + markdown_table(table),
            f"Total wall time {wall:.0f} s.",
        ]
    )
    payload = {
        "model": label,
        "args": {k: str(v) for k, v in vars(args).items()},
        "results": results.to_dict(orient="records"),
        "gains": gains.to_dict(orient="records"),
        "fallbacks": fallbacks,
        "seasonal_naive_WQL": naive.to_dict(),
        "wall_s": wall,
    }
    write_results(args.output, payload, markdown)


if __name__ == "__main__":
    main()
