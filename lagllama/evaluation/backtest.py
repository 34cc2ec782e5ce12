"""Backtest GluonTS predictors against seasonal-naive and statsforecast baselines.

Metrics follow the Chronos benchmark convention: WQL is GluonTS's
``MeanWeightedSumQuantileLoss`` over quantiles 0.1..0.9, MASE/MSIS are scaled by the
in-sample seasonal-naive error with ``get_seasonality(freq)``, and scores are aggregated
across datasets as the geometric mean of each model's score relative to seasonal naive.
The tasks (datasets, horizons, windows) are defined in :mod:`lagllama.data.tasks`.
"""

from __future__ import annotations

import functools
import json
import math
import platform
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import metadata as importlib_metadata
from pathlib import Path

import numpy as np
import pandas as pd
from gluonts.ev.metrics import (
    MASE,
    MSIS,
    RMSE,
    SMAPE,
    Coverage,
    MeanWeightedSumQuantileLoss,
)
from gluonts.model import Forecast, Predictor
from gluonts.model import evaluation as gluonts_evaluation
from gluonts.model.evaluation import evaluate_forecasts
from tqdm.auto import tqdm

from lagllama.data.tasks import BacktestTask
from lagllama.evaluation.baselines import (
    BASELINE,
    FORECAST_QUANTILES,
    WQL_QUANTILES,
    baseline_predictor,
)

#: Report columns, in order; lower is better except for the coverages.
METRICS = ("WQL", "MASE", "MSIS", "coverage_80", "coverage_95", "sMAPE", "RMSE")
#: Metrics aggregated as geometric mean of the ratio to the baseline.
RELATIVE_METRICS = ("WQL", "MASE", "MSIS", "sMAPE", "RMSE")
#: A predictor, or a factory building one for a task (so it can use h, freq, seasonality).
PredictorSpec = Predictor | Callable[[BacktestTask], Predictor]


def baseline(
    name: str, impute_missing: bool = True, max_history: int | None = None
) -> Callable[[BacktestTask], Predictor]:
    """A baseline by name as a backtest factory: built for each task's horizon and season
    (``max_history``: statsforecast models see each series' last points only)."""
    baseline_predictor(name, 1, 1)  # an unknown name fails now, not at the first task

    def factory(task: BacktestTask) -> Predictor:
        return baseline_predictor(
            name,
            task.prediction_length,
            task.season_length,
            impute_missing=impute_missing,
            max_history=max_history,
        )

    return factory


def _metric_definitions() -> list:
    coverage_levels = (0.025, 0.1, 0.9, 0.975)
    return [
        MeanWeightedSumQuantileLoss(quantile_levels=WQL_QUANTILES),
        MASE(),
        MSIS(alpha=0.05),
        SMAPE(),
        RMSE(),
        *(Coverage(q=q) for q in coverage_levels),
    ]


@contextmanager
def _without_gluonts_progress_bar() -> Iterator[None]:
    """Hide the progress bar GluonTS's ``evaluate_forecasts`` draws (and leaves on screen)
    while scoring: :func:`run_model` has shown the forecasting's own bar already."""
    bar = gluonts_evaluation.tqdm
    gluonts_evaluation.tqdm = functools.partial(bar, disable=True)
    try:
        yield
    finally:
        gluonts_evaluation.tqdm = bar


def score_forecasts(forecasts: Sequence[Forecast], task: BacktestTask) -> dict[str, float]:
    """Aggregate metrics of ``forecasts`` against the task's test windows.

    Interval coverage is the share of actuals between the lower and upper quantile.
    """
    with _without_gluonts_progress_bar():
        row = evaluate_forecasts(
            forecasts,
            test_data=task.test_data(),
            metrics=_metric_definitions(),
            seasonality=task.season_length,
        ).iloc[0]
    return {
        "WQL": float(row["mean_weighted_sum_quantile_loss"]),
        "MASE": float(row["MASE[0.5]"]),
        "MSIS": float(row["MSIS"]),
        "coverage_80": float(row["coverage[0.9]"] - row["coverage[0.1]"]),
        "coverage_95": float(row["coverage[0.975]"] - row["coverage[0.025]"]),
        "sMAPE": float(row["sMAPE[0.5]"]),
        "RMSE": float(row["RMSE[mean]"]),
    }


def _predictor_for(spec: PredictorSpec, task: BacktestTask) -> Predictor:
    return spec if isinstance(spec, Predictor) else spec(task)


def run_model(name: str, spec: PredictorSpec, task: BacktestTask) -> dict:
    """Forecast every test window of ``task`` with one model and score it (one report row).

    Windows are forecast one call each, so what a predictor fits on its input (a hybrid's
    weights) never sees a later window's actuals."""
    inputs = list(task.test_data().input)
    start = time.perf_counter()
    predictor = _predictor_for(spec, task)
    forecasts: list = [None] * len(inputs)
    tallies = {"fallbacks": 0, "imputed": 0}
    with tqdm(total=len(inputs), desc=f"{name} on {task.name}", leave=False) as bar:
        for window in range(task.windows):
            # GluonTS yields a series' windows one after the other
            where = range(window, len(inputs), task.windows)
            for i, forecast in zip(where, predictor.predict([inputs[i] for i in where])):
                forecasts[i] = forecast
                bar.update()
            tallies["fallbacks"] += getattr(predictor, "num_fallbacks", 0)
            tallies["imputed"] += getattr(predictor, "num_imputed", 0)
    seconds = time.perf_counter() - start
    return {
        "dataset": task.name,
        "model": name,
        **score_forecasts(forecasts, task),
        "num_series": len(forecasts) // task.windows,
        "windows": task.windows,
        **tallies,
        "too_short": len(task.skipped),
        "runtime_s": seconds,
        "s_per_series": seconds / max(len(forecasts), 1),
    }


def relative_scores(
    results: pd.DataFrame, baseline_model: str = BASELINE, metrics: Sequence[str] = RELATIVE_METRICS
) -> pd.DataFrame:
    """Geometric mean over datasets of each model's score divided by the baseline's.

    ``results`` has one row per (dataset, model); returns one row per model. A dataset
    where the ratio is undefined (baseline score 0 or missing) is left out of that mean.
    """
    base = results[results["model"] == baseline_model].set_index("dataset")
    if base.empty:
        raise ValueError(f"baseline {baseline_model!r} is not among the results")
    rows = []
    for model, part in results.groupby("model", sort=False):
        part = part.set_index("dataset")
        row: dict[str, float | str] = {"model": model}
        for metric in metrics:
            ratio = (part[metric] / base[metric].reindex(part.index)).replace(
                [np.inf, -np.inf], np.nan
            )
            ratio = ratio[ratio > 0].dropna()
            row[metric] = float(np.exp(np.log(ratio).mean())) if len(ratio) else math.nan
        rows.append(row)
    return pd.DataFrame(rows)


def package_versions() -> dict[str, str]:
    """Versions of the packages that determine the numbers in a report."""
    versions = {"python": platform.python_version()}
    for pkg in ("lagllama", "gluonts", "statsforecast", "numpy", "pandas", "torch"):
        try:
            versions[pkg] = importlib_metadata.version(pkg)
        except importlib_metadata.PackageNotFoundError:
            versions[pkg] = "not installed"
    return versions


def markdown_table(df: pd.DataFrame) -> str:
    def cell(value: object) -> str:
        if isinstance(value, float):
            return "" if math.isnan(value) else f"{value:.4g}"
        return str(value)

    lines = ["| " + " | ".join(map(str, df.columns)) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines)


@dataclass
class BacktestReport:
    """Scores per (dataset, model), relative aggregates, configuration and versions."""

    results: pd.DataFrame
    aggregate: pd.DataFrame
    config: dict = field(default_factory=dict)
    versions: dict = field(default_factory=package_versions)

    def table(self) -> pd.DataFrame:
        """Per-dataset rows followed by one aggregate row per model (dataset ``aggregate``)."""
        agg = self.aggregate.assign(dataset=f"aggregate (gmean vs {BASELINE})")
        totals = self.results.groupby("model", sort=False)[["runtime_s", "num_series"]].sum()
        agg = agg.join(totals, on="model")
        agg["s_per_series"] = agg["runtime_s"] / (agg["num_series"] * 1.0)
        for count in ("fallbacks", "imputed", "too_short"):
            agg[count] = agg["model"].map(self.results.groupby("model")[count].sum())
        table = pd.concat([self.results, agg], ignore_index=True)[self.results.columns]
        counts = ["num_series", "windows", "fallbacks", "imputed", "too_short"]
        return table.astype(dict.fromkeys(counts, "Int64"))

    def to_markdown(self) -> str:
        """Human-readable report: scores, fallbacks, runtimes, configuration, versions."""
        touched = self.results[(self.results["fallbacks"] > 0) | (self.results["imputed"] > 0)]
        notes = [
            f"- {r.model} on {r.dataset}: {r.fallbacks} of {r.num_series * r.windows} "
            f"forecasts fell back to seasonal naive; {r.imputed} inputs had NaNs imputed"
            for r in touched.itertuples()
        ] or ["- no model fell back to seasonal naive and no input needed imputation"]
        skipped = self.results.drop_duplicates("dataset")
        notes += [
            f"- {r.dataset}: {r.too_short} series left out, shorter than the backtest window "
            "plus one point"
            for r in skipped[skipped["too_short"] > 0].itertuples()
        ]
        return (
            "\n\n".join(
                [
                    "# Backtest report",
                    "WQL = mean weighted quantile loss over quantiles 0.1..0.9; MASE/MSIS scaled "
                    "by the seasonal-naive in-sample error; aggregate rows are geometric means of "
                    f"the ratio to {BASELINE} (coverage is not aggregated).",
                    markdown_table(self.table()),
                    "## Fallbacks and imputation\n\n" + "\n".join(notes),
                    "## Configuration\n\n```json\n" + json.dumps(self.config, indent=2) + "\n```",
                    "## Versions\n\n" + "\n".join(f"- {k}: {v}" for k, v in self.versions.items()),
                ]
            )
            + "\n"
        )

    def to_json(self) -> str:
        """Machine-readable report (NaN written as null)."""
        table = self.table().astype(object).where(self.table().notna(), None)
        return json.dumps(
            {
                "results": table.to_dict(orient="records"),
                "config": self.config,
                "versions": self.versions,
            },
            indent=2,
            default=str,
        )

    def save(self, output_dir: str | Path) -> dict[str, Path]:
        """Write ``report.md``, ``results.csv`` and ``report.json`` into ``output_dir``."""
        out = Path(output_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths = {
            "markdown": out / "report.md",
            "csv": out / "results.csv",
            "json": out / "report.json",
        }
        paths["markdown"].write_text(self.to_markdown())
        self.table().to_csv(paths["csv"], index=False)
        paths["json"].write_text(self.to_json())
        return paths


def backtest(
    tasks: Sequence[BacktestTask],
    models: Mapping[str, PredictorSpec] | None = None,
    baselines: Sequence[str] = (BASELINE, "auto-ets"),
    impute_missing: bool = True,
    in_context_regression: bool = False,
) -> BacktestReport:
    """Backtest ``models`` (predictors or factories) and named ``baselines`` on every task.

    Seasonal naive is always included, since the aggregate is relative to it. With
    ``in_context_regression`` every model but that reference uses the tasks' known-future
    covariates (``feat_dynamic_real``; :class:`lagllama.forecasting.covariates.InContextRegression`),
    except a Lag-Llama model trained with covariates, which reads them itself.
    """
    specs: dict[str, PredictorSpec] = {
        name: baseline(name, impute_missing) for name in dict.fromkeys([BASELINE, *baselines])
    }
    for name, spec in (models or {}).items():
        if name in specs:
            raise ValueError(f"model name {name!r} clashes with a baseline")
        specs[name] = spec
    if in_context_regression:
        from lagllama.forecasting.covariates import InContextRegression

        def regressed(spec: PredictorSpec) -> Callable[[BacktestTask], Predictor]:
            def build(task: BacktestTask) -> Predictor:
                predictor = _predictor_for(spec, task)
                config = getattr(getattr(predictor, "prediction_net", None), "config", None)
                if getattr(config, "num_covariate_features", 0):
                    return predictor
                return InContextRegression(predictor)

            return build

        specs = {n: s if n == BASELINE else regressed(s) for n, s in specs.items()}
    rows = [
        run_model(name, spec, task)
        for task in tqdm(tasks, desc="datasets", disable=len(tasks) < 2)
        for name, spec in specs.items()
    ]
    results = pd.DataFrame(rows)
    config = {
        "datasets": [
            {
                "name": t.name,
                "prediction_length": t.prediction_length,
                "freq": t.freq,
                "season_length": t.season_length,
                "windows": t.windows,
                "too_short": list(t.skipped),
            }
            for t in tasks
        ],
        "models": list(specs),
        "wql_quantiles": list(WQL_QUANTILES),
        "forecast_quantiles": list(FORECAST_QUANTILES),
        "impute_missing": impute_missing,
        "in_context_regression": in_context_regression,
        "msis_alpha": 0.05,
    }
    return BacktestReport(results, relative_scores(results), config)
