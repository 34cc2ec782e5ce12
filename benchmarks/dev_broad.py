"""Broad dev benchmark: zero-shot scores on data the candidate models never saw.

    python -m benchmarks.dev_broad                      # lagllama-fast, lagllama-large, lagllama
    python -m benchmarks.dev_broad --models v3s0=RUN0/checkpoints/last.ckpt,v3s1=RUN1/checkpoints/last.ckpt --pairs v3s0:v3s1
    python -m benchmarks.dev_broad --seeds 0,1 --report-only
    python -m benchmarks.dev_broad --datasets m1_monthly,monthly_dev_h18 --max-series 5   # smoke
    python -m benchmarks.dev_broad --models lagllama,lagllama-v2-small-seed1 --timing --max-series 40

The M4 dev holdout and the 7 datasets with published numbers are too few or too alike
(yearly/quarterly, mostly M1) to choose recipes by, so this adds the broad holdouts of
:data:`lagllama.pretraining.corpus.BROAD_HOLDOUTS`: monthly series at h=18 and h=24, daily,
weekly and hourly series, yearly/quarterly series of other sources than M4. Each dataset is
forecast in up to 3 rolling windows (fewer where 3 would leave out more than 10% of its
series). A model is scored on the broad holdouts only if every Lag-Llama member was
pretrained without them; it shows "trained on it" there otherwise. Every Lag-Llama model runs
with each sampling seed of ``--seeds`` and ``--pairs a:b`` prints aggregate differences beside
that sampling noise, so a difference can be read against it. AutoETS and AutoTheta see each
series' last 1,000 points (:data:`BASELINE_MAX_HISTORY`): AutoTheta's fit time grows about
with the square of the length (1.5 CPU-s on ETT's last 2,500 hourly points, 0.23 on 1,000,
0.06 on 500, of 17,420), and on ETT its WQL on the last 1,000 points was lower than on the
last 2,500 (inside a hybrid they see 500, ``ENSEMBLE_MAX_HISTORY``). Each (model, dataset,
seed) row is appended to ``<work-dir>/rows.jsonl`` as soon as it is computed, so an interrupted run
resumes; a copy committed as ``results/<output>_rows.jsonl`` carries the rows to a new
machine. ``results/<output>.{md,json}`` is written at the end and by ``--report-only``.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from benchmarks.common import RESULTS, write_results
from benchmarks.zero_shot import (
    PUBLISHED,
    PUBLISHED_DATASETS,
    describe,
    model_label,
    names,
    predictor_factory,
)
from lagllama.data.datasets import dataset_freq, load_dataset
from lagllama.data.tasks import BacktestTask, drop_short
from lagllama.evaluation.backtest import baseline, markdown_table, relative_scores, run_model
from lagllama.evaluation.baselines import BASELINE, BASELINES
from lagllama.forecasting.specs import DEFAULT_MEMBERS, DEFAULT_MODEL, parse_model
from lagllama.nn.precision import SAMPLING_PRECISIONS
from lagllama.pretraining.corpus import BROAD_HOLDOUTS, DEV_HOLDOUT
from lagllama.settings import shared_datasets_dir

PUBLISHED_GROUP = "published 7"
M4_GROUP = "M4 yearly/quarterly"
#: Aggregated metrics (geometric mean of the ratio to seasonal naive).
METRICS = ("WQL", "MASE")
#: Rolling windows per dataset, and the share of its series they must keep.
MAX_WINDOWS, KEEP_SHARE = 3, 0.9
TRAINED_ON_IT = "trained on it"
#: History AutoETS and AutoTheta are fitted on (each series' last points).
BASELINE_MAX_HISTORY = 1000
#: Fields of a cached row that say which computation it is.
KEY_FIELDS = (
    "model",
    "spec",
    "dataset",
    "seed",
    "num_samples",
    "context_length",
    "sampling_precision",
    "max_series",
)


@dataclass(frozen=True)
class DevDataset:
    """One dataset of the benchmark; ``source`` is ``repository``, ``m4_dev`` or the name
    of a broad holdout, whose scores only count for models pretrained without it."""

    name: str
    group: str
    source: str
    horizon: int | None = None  # None: the repository dataset's own prediction length

    @property
    def broad(self) -> bool:
        return self.source not in ("repository", "m4_dev")


def dev_datasets() -> tuple[DevDataset, ...]:
    """Every dataset of the benchmark, in report order (no data read)."""
    published = tuple(DevDataset(n, PUBLISHED_GROUP, "repository") for n in PUBLISHED_DATASETS)
    m4 = tuple(
        DevDataset(f"{source.removeprefix('corpus/')}_dev", M4_GROUP, "m4_dev", h)
        for source, h in DEV_HOLDOUT.items()
    )
    broad = tuple(
        DevDataset(
            f"{holdout.name}_h{h}",
            f"{holdout.group} h{h}" if len(holdout.horizons) > 1 else holdout.group,
            holdout.name,
            h,
        )
        for holdout in BROAD_HOLDOUTS
        for h in holdout.horizons
    )
    return published + m4 + broad


def choose_windows(lengths: Iterable[int], horizon: int) -> int:
    """The most rolling windows (up to 3) that keep at least 90% of the series (a series
    needs ``windows * horizon + 1`` points); 1 when even one window keeps fewer."""
    lengths = np.asarray(list(lengths))
    for windows in range(MAX_WINDOWS, 1, -1):
        if (lengths >= windows * horizon + 1).mean() >= KEEP_SHARE:
            return windows
    return 1


def full_series(entries: Iterable[dict]) -> list[dict]:
    """The longest entry of each ``item_id``: GluonTS test splits with rolling windows
    (exchange_rate: 5) repeat each series once per window, each a prefix of the next."""
    longest: dict[object, dict] = {}
    for i, entry in enumerate(entries):
        item = entry.get("item_id", i)
        if item not in longest or len(entry["target"]) > len(longest[item]["target"]):
            longest[item] = entry
    return list(longest.values())


def make_task(
    name: str, entries: list[dict], horizon: int, freq: str, max_series: int | None = None
) -> tuple[BacktestTask, int]:
    """The task of a dataset with its windows chosen on all its series, then (for smoke
    runs) its first ``max_series`` series by ``item_id``; and how many series it has."""
    windows = choose_windows((len(e["target"]) for e in entries), horizon)
    kept, skipped = drop_short(name, entries, windows * horizon + 1)
    kept = sorted(kept, key=lambda e: str(e.get("item_id")))[:max_series]
    return BacktestTask(name, kept, horizon, freq, windows, skipped), len(entries)


@functools.lru_cache(maxsize=1)
def _m4_dev_entries(data_dir: str) -> dict[str, list[dict]]:
    from lagllama.pretraining.corpus import dev_holdout

    return {
        f"{source.removeprefix('corpus/')}_dev": held
        for source, (held, _) in dev_holdout(data_dir).items()
    }


@functools.lru_cache(maxsize=1)
def _broad_entries(data_dir: str) -> dict[str, list[dict]]:
    """Entries of every broad holdout (about a minute: every corpus file is read)."""
    from lagllama.pretraining.corpus import broad_holdouts

    return {h.name: held for h, held in broad_holdouts(data_dir).items()}


def load_task(
    dataset: DevDataset, data_dir: Path, max_series: int | None
) -> tuple[BacktestTask, int]:
    """The task of ``dataset`` (see :func:`make_task`); FileNotFoundError when its data is
    not in ``data_dir``."""
    if dataset.source == "repository":
        ds = load_dataset(dataset.name, data_dir, download=False)
        entries = full_series(ds.test)
        return make_task(
            dataset.name, entries, ds.metadata.prediction_length, ds.metadata.freq, max_series
        )
    if not (data_dir / "corpus").is_dir():
        raise FileNotFoundError(f"no corpus folder in {data_dir}")
    if dataset.source == "m4_dev":
        entries = _m4_dev_entries(str(data_dir))[dataset.name]
    else:
        entries = _broad_entries(str(data_dir))[dataset.source]
    return make_task(dataset.name, entries, dataset.horizon, dataset_freq(entries), max_series)


def pretrained_without_broad_holdouts(spec: str) -> bool:
    """Whether every Lag-Llama member of ``spec`` was pretrained without the broad holdouts:
    a shipped model's card, or a run's ``config.json`` beside ``checkpoints/`` for a
    ``.ckpt``, says ``broad_holdout: true``. Absent, false or unknown: trained on them."""
    from lagllama.pretrained import available_names, read_card

    for member in parse_model(spec).lag_llama:
        if member.name in available_names():
            config = read_card(member.name)["training"].get("pretrain_config") or {}
        else:
            run_config = Path(member.checkpoint).resolve().parent.parent / "config.json"
            config = json.loads(run_config.read_text()) if run_config.is_file() else {}
        if config.get("broad_holdout") is not True:
            return False
    return True


def parse_models(text: str) -> dict[str, str]:
    """``{label: spec}`` from ``--models``: ``label=spec`` items or bare specs (labelled by
    :func:`benchmarks.zero_shot.model_label`; a checkpoint named ``epoch=4.ckpt`` is a spec)."""
    models: dict[str, str] = {}
    for item in names(text):
        label, sep, spec = item.partition("=")
        if not sep or "/" in label or Path(item).is_file():
            label, spec = model_label(item), item
        if label in models or label in BASELINES:
            raise ValueError(f"model label {label!r} is used twice or is a baseline's name")
        models[label] = spec
    return models


def parse_pairs(text: str, labels: Iterable[str]) -> list[tuple[str, str]]:
    """``[(a, b)]`` from ``a:b,c:d``; labels may hold ``:`` (``ckpt:run/last``), so each pair
    is split where both sides are known labels."""
    known = set(labels)
    pairs = []
    for item in names(text):
        splits = [
            (item[:i], item[i + 1 :])
            for i, char in enumerate(item)
            if char == ":" and item[:i] in known and item[i + 1 :] in known
        ]
        if len(splits) != 1:
            raise ValueError(f"pair {item!r} is not a:b of two of the models {sorted(known)}")
        pairs.append(splits[0])
    return pairs


def row_key(row: Mapping) -> str:
    """The cache key of a row: what was computed, with which settings."""
    return json.dumps({k: row.get(k) for k in KEY_FIELDS}, sort_keys=True)


def read_cache(path: Path) -> dict[str, dict]:
    """Rows of the JSON-lines cache by key (a line cut short by a crash is ignored)."""
    rows: dict[str, dict] = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            rows[row_key(row)] = row
    return rows


def _cut_short(path: Path) -> bool:
    """Whether the file's last line lacks its newline (a crash while it was written)."""
    if not path.is_file() or path.stat().st_size == 0:
        return False
    with path.open("rb") as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1) != b"\n"


def cached_row(
    cache: dict[str, dict], path: Path, key: Mapping, compute: Callable[[], dict]
) -> dict:
    """The row of ``key`` from ``cache``, else ``compute()`` merged with ``key``, appended to
    ``path`` at once (so a crash loses at most the row being computed)."""
    name = row_key(key)
    if name not in cache:
        row = {**compute(), **key}
        path.parent.mkdir(parents=True, exist_ok=True)
        start = "\n" if _cut_short(path) else ""  # never append to a torn line
        with path.open("a") as f:
            f.write(start + json.dumps(row, default=float) + "\n")
        cache[name] = row
    return cache[name]


def seed_mean(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per (model, dataset): scores and times averaged over sampling seeds."""
    return rows.groupby(["model", "dataset"], as_index=False, sort=False).agg(
        WQL=("WQL", "mean"), MASE=("MASE", "mean"), s_per_series=("s_per_series", "mean")
    )


def aggregates(results: pd.DataFrame, groups: Mapping[str, str]) -> pd.DataFrame:
    """Relative WQL and MASE (geometric mean vs seasonal naive) per (scope, model): scope
    ``overall`` (every dataset of ``groups`` a model was scored on) and each group;
    ``results`` has one row per (model, dataset), ``datasets`` counts those aggregated."""
    scopes = {"overall": list(groups)}
    for dataset, group in groups.items():
        scopes.setdefault(group, []).append(dataset)
    parts = []
    for scope, datasets in scopes.items():
        part = results[results["dataset"].isin(datasets)]
        if part.empty or BASELINE not in set(part["model"]):
            continue
        rel = relative_scores(part, metrics=METRICS)
        rel["datasets"] = rel["model"].map(part.groupby("model")["dataset"].nunique())
        rel.insert(0, "scope", scope)
        parts.append(rel)
    columns = ["scope", "model", *METRICS, "datasets"]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns)


def seed_aggregates(
    rows: pd.DataFrame, groups: Mapping[str, str], seeded: Iterable[str]
) -> pd.DataFrame:
    """:func:`aggregates` of each seeded model with each sampling seed alone (``seed``)."""
    seeded = list(seeded)
    fixed = seed_mean(rows[~rows["model"].isin(seeded)])
    parts = []
    for seed, part in rows[rows["model"].isin(seeded)].groupby("seed"):
        agg = aggregates(pd.concat([fixed, seed_mean(part)]), groups)
        parts.append(agg[agg["model"].isin(seeded)].assign(seed=int(seed)))
    columns = ["scope", "model", *METRICS, "datasets", "seed"]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns)


def seed_spread(per_seed: pd.DataFrame) -> pd.DataFrame:
    """Max minus min over seeds of each (scope, model) aggregate (NaN with one seed)."""
    if per_seed.empty:
        return pd.DataFrame(columns=["scope", "model", *METRICS])
    grouped = per_seed.groupby(["scope", "model"], sort=False)
    spread = grouped[list(METRICS)].max() - grouped[list(METRICS)].min()
    spread[grouped["seed"].nunique() < 2] = np.nan
    return spread.reset_index()


def pair_table(
    rows: pd.DataFrame, groups: Mapping[str, str], seeded: Iterable[str], a: str, b: str
) -> pd.DataFrame:
    """Aggregates of ``a`` and ``b`` on the datasets both were scored on, ``b - a``, and
    beside each difference the larger of the two models' sampling-seed spreads there."""
    common = set(rows.loc[rows["model"] == a, "dataset"]) & set(
        rows.loc[rows["model"] == b, "dataset"]
    )
    rows = rows[rows["model"].isin([a, b, BASELINE]) & rows["dataset"].isin(common)]
    groups = {d: g for d, g in groups.items() if d in common}
    agg = aggregates(seed_mean(rows), groups)
    if agg.empty:
        return agg
    spread = seed_spread(seed_aggregates(rows, groups, [m for m in (a, b) if m in seeded]))
    noise = spread.groupby("scope")[list(METRICS)].max()
    table = agg.pivot(index="scope", columns="model", values=list(METRICS))
    out = pd.DataFrame(index=table.index)
    for metric in METRICS:
        out[f"{metric} {a}"] = table[(metric, a)]
        out[f"{metric} {b}"] = table[(metric, b)]
        out[f"{metric} {b} - {a}"] = table[(metric, b)] - table[(metric, a)]
        out[f"{metric} seed spread"] = noise[metric].reindex(out.index)
    order = [s for s in agg["scope"].unique() if s in out.index]
    return out.loc[order].reset_index()


def _wide(agg: pd.DataFrame, metric: str, models: list[str], scopes: list[str]) -> pd.DataFrame:
    """``metric`` of each model (rows) per scope (columns); blank where not scored."""
    table = agg.pivot(index="model", columns="scope", values=metric)
    return table.reindex(index=models, columns=scopes).reset_index()


def _per_dataset(
    results: pd.DataFrame,
    value: str,
    datasets: list[DevDataset],
    models: list[str],
    guarded: set[str],
) -> pd.DataFrame:
    """``value`` per dataset (rows) and model, ``trained on it`` for the ``guarded`` models
    on the broad holdouts."""
    table = results.pivot(index="dataset", columns="model", values=value)
    table = table.reindex(index=[d.name for d in datasets], columns=models).astype(object)
    broad = [d.name for d in datasets if d.broad]
    table.loc[broad, sorted(guarded)] = TRAINED_ON_IT
    return table.reset_index()


@dataclass
class Plan:
    """What one invocation scores: datasets, models by label, baselines, sampling seeds."""

    datasets: list[DevDataset]
    models: dict[str, str]
    baselines: list[str]
    seeds: list[int]
    pairs: list[tuple[str, str]]
    #: Per model label: pretrained without the broad holdouts (scored on them).
    clean: dict[str, bool]
    #: Labels of the models with a Lag-Llama member (run with every seed).
    seeded: list[str]

    def jobs(self) -> list[tuple[str, str, int | None]]:
        """``(label, spec, seed)`` of every run per dataset; seed None: deterministic."""
        jobs: list[tuple[str, str, int | None]] = [(b, b, None) for b in self.baselines]
        for label, spec in self.models.items():
            jobs += [(label, spec, s) for s in (self.seeds if label in self.seeded else [None])]
        return jobs

    def scored(self, label: str, dataset: DevDataset) -> bool:
        return not dataset.broad or self.clean.get(label, True)


def row_settings(
    args: argparse.Namespace, label: str, spec: str, dataset: str, seed: int | None
) -> dict:
    """The cache key of one run: sampling settings only where a model samples."""
    key = {
        "model": label,
        "spec": spec,
        "dataset": dataset,
        "seed": seed,
        "max_series": args.max_series,
    }
    if seed is not None:
        key |= {
            "num_samples": args.num_samples,
            "context_length": args.context_length,
            "sampling_precision": args.sampling_precision,
        }
    return key


def collect(args: argparse.Namespace, plan: Plan) -> tuple[list[dict], list[str]]:
    """Rows of every run of ``plan``: cached, else computed and cached (none computed with
    ``--report-only``); and the runs with no row."""
    cache_path = args.work_dir / "rows.jsonl"
    # rows committed with the results carry a run over to a new machine
    cache = {**read_cache(RESULTS / f"{args.output}_rows.jsonl"), **read_cache(cache_path)}
    tasks: dict[str, tuple[BacktestTask, int] | None] = {}

    def task_of(dataset: DevDataset) -> tuple[BacktestTask, int] | None:
        if dataset.name not in tasks:
            try:
                tasks[dataset.name] = load_task(dataset, args.data_dir, args.max_series)
            except FileNotFoundError as err:
                print(f"skipped {dataset.name}: {err}")
                tasks[dataset.name] = None
        return tasks[dataset.name]

    def runner(label: str, spec: str, dataset: DevDataset, seed: int | None) -> Callable[[], dict]:
        def run() -> dict:
            task, total = task_of(dataset)
            if seed is None:
                factory = baseline(spec, max_history=BASELINE_MAX_HISTORY)
            else:
                factory = predictor_factory(
                    spec, argparse.Namespace(**{**vars(args), "seed": seed})
                )
            row = run_model(label, factory, task)
            print(
                f"{label} (seed {seed}) on {dataset.name}: WQL {row['WQL']:.4f}, "
                f"MASE {row['MASE']:.4f}, {row['s_per_series']:.3f} s per series window"
            )
            return {
                **row,
                "group": dataset.group,
                "prediction_length": task.prediction_length,
                "total_series": total,
            }

        return run

    rows, missing = [], []
    for dataset in plan.datasets:
        for label, spec, seed in plan.jobs():
            if not plan.scored(label, dataset):
                continue
            key = row_settings(args, label, spec, dataset.name, seed)
            if row_key(key) in cache:
                rows.append(cache[row_key(key)])
            elif args.report_only or task_of(dataset) is None:
                missing.append(f"{label} (seed {seed}) on {dataset.name}")
            else:
                rows.append(cached_row(cache, cache_path, key, runner(label, spec, dataset, seed)))
    return rows, missing


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=shared_datasets_dir())
    parser.add_argument("--datasets", help="comma-separated names (default: all of them)")
    parser.add_argument(
        "--models",
        default="lagllama-fast,lagllama-large,lagllama",
        help="comma-separated specifications (lagllama.forecasting.specs), each a bare spec "
        "or label=spec",
    )
    parser.add_argument("--baselines", default="seasonal-naive,auto-ets,auto-theta")
    parser.add_argument("--seeds", default="0", help="sampling seeds of every Lag-Llama model")
    parser.add_argument("--pairs", default="", help="a:b,...: aggregate differences b - a")
    parser.add_argument("--num-samples", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--context-length", type=int, help="inference context (default: model's)")
    parser.add_argument("--sampling-precision", choices=SAMPLING_PRECISIONS, default="32")
    parser.add_argument("--max-series", type=int, help="first N series of each dataset (smoke)")
    parser.add_argument(
        "--timing",
        action="store_true",
        help="run every model on every dataset to time it, broad holdouts included even for "
        "models trained on them (their scores there are then not valid)",
    )
    parser.add_argument("--work-dir", type=Path, default=Path("/work/dev_broad_runs"))
    parser.add_argument("--output", default="dev_broad", help="results/<output>.{md,json}")
    parser.add_argument("--report-only", action="store_true", help="report the cached rows")
    args = parser.parse_args()

    catalogue = {d.name: d for d in dev_datasets()}
    chosen = names(args.datasets) if args.datasets else list(catalogue)
    unknown = [n for n in chosen if n not in catalogue]
    if unknown:
        parser.error(f"unknown datasets {unknown}; choose from {', '.join(catalogue)}")
    if not args.report_only and not args.data_dir.is_dir():
        print(f"skipped: data folder {args.data_dir} not found (set LAGLLAMA_SHARED_DATASETS)")
        sys.exit(0)
    models = parse_models(args.models)
    baselines = list(dict.fromkeys([BASELINE, *names(args.baselines)]))
    plan = Plan(
        datasets=[d for d in catalogue.values() if d.name in chosen],  # report order
        models=models,
        baselines=baselines,
        seeds=[int(s) for s in names(args.seeds)],
        pairs=parse_pairs(args.pairs, [*models, *baselines]),
        clean={
            label: args.timing or pretrained_without_broad_holdouts(spec)
            for label, spec in models.items()
        },
        seeded=[label for label, spec in models.items() if parse_model(spec).lag_llama],
    )
    start = time.perf_counter()
    rows, missing = collect(args, plan)
    if not rows:
        print("no rows computed or cached; nothing to report")
        return
    report(args, plan, pd.DataFrame(rows), missing, time.perf_counter() - start)


def report(
    args: argparse.Namespace, plan: Plan, frame: pd.DataFrame, missing: list[str], wall: float
) -> None:
    """Write ``results/<output>.{md,json}`` from the rows of ``plan`` (one per run)."""
    results = seed_mean(frame)
    done = [d for d in plan.datasets if d.name in set(frame["dataset"])]
    groups = {d.name: d.group for d in done}
    labels = [*plan.baselines, *plan.models]
    guarded = {m for m, ok in plan.clean.items() if not ok}
    agg = aggregates(results, groups)
    per_seed = seed_aggregates(frame, groups, plan.seeded)
    spread = seed_spread(per_seed)
    scopes = list(dict.fromkeys(["overall", *groups.values()]))

    info = frame.drop_duplicates("dataset").set_index("dataset")
    datasets = pd.DataFrame(
        [
            {
                "dataset": d.name,
                "group": d.group,
                "h": int(info.loc[d.name, "prediction_length"]),
                "windows": int(info.loc[d.name, "windows"]),
                "series scored": int(info.loc[d.name, "num_series"]),
                "left out (too short)": int(info.loc[d.name, "too_short"]),
                "series in data": int(info.loc[d.name, "total_series"]),
            }
            for d in done
        ]
    )
    by_group = (
        datasets.groupby("group", sort=False)
        .agg(datasets=("dataset", "count"), series=("series scored", "sum"))
        .reset_index()
    )
    scored = results.groupby("model")["dataset"].nunique()
    overall = agg[agg["scope"] == "overall"].drop(columns="scope")
    overall = overall.merge(
        spread[spread["scope"] == "overall"].drop(columns="scope"),
        on="model",
        how="left",
        suffixes=("", " seed spread"),
    )
    overall["scored on"] = overall["model"].map(
        lambda m: (
            f"all {len(done)}"
            if scored[m] == len(done)
            else f"{scored[m]} of {len(done)} "
            + (f"(broad holdouts: {TRAINED_ON_IT})" if m in guarded else "(rows missing)")
        )
    )
    timing = _per_dataset(results, "s_per_series", done, labels, guarded)
    mean_time = results.groupby("model")["s_per_series"].mean().reindex(labels).dropna()

    lines = [
        "# Broad dev benchmark: zero-shot on data the models never saw",
        f"Models: {', '.join(f'`{m}` = `{s}`' for m, s in plan.models.items())}; baselines "
        f"{', '.join(plan.baselines)}. Up to {MAX_WINDOWS} rolling windows per dataset (fewer "
        f"where {MAX_WINDOWS} would leave out more than {1 - KEEP_SHARE:.0%} of its series), "
        f"{args.num_samples} sample paths, sampling seeds {plan.seeds} (each series seeded), "
        f"context {args.context_length or 'of the model'}, predictor batch {args.batch_size}, "
        f"{torch.get_num_threads()} torch threads, sampling precision "
        f"{args.sampling_precision}"
        + (f"; first {args.max_series} series of each dataset" if args.max_series else "")
        + ". Scores of several seeds are averaged per dataset before aggregating. WQL over "
        "quantiles 0.1..0.9, MASE with the dataset's seasonality; aggregates are geometric "
        "means of the score relative to seasonal naive.",
        (
            "**Timing run** (`--timing`): every model ran on every dataset; the scores on the "
            "broad holdouts of a model pretrained on them are not valid."
            if args.timing
            else "Broad holdouts count only for models whose every Lag-Llama member was "
            "pretrained without them (`broad_holdout` in the model card or the run's "
            "config.json): "
            + ", ".join(
                f"`{m}` {'yes' if ok else 'no (' + TRAINED_ON_IT + ')'}"
                for m, ok in plan.clean.items()
            )
            + "."
        ),
        "## Datasets\n\n" + markdown_table(datasets),
        "## Groups\n\n" + markdown_table(by_group),
        "## Aggregate over every dataset each model was scored on\n\n"
        + markdown_table(overall)
        + "\n\nSeed spread: max - min of the aggregate over the sampling seeds (blank: one seed).",
    ]
    published = agg[agg["scope"] == PUBLISHED_GROUP].drop(columns="scope")
    if not published.empty:
        lines.append(
            f"## Published 7 ({published['datasets'].max()} of 7 run)\n\n"
            + markdown_table(published)
            + "\n\nPublished one-window aggregates for reference (other windows, so not "
            "comparable digit for digit): "
            + ", ".join(f"{k} {w}" + (f" / {m}" if m else "") for k, (w, m) in PUBLISHED.items())
            + "."
        )
    for metric in METRICS:
        lines.append(
            f"## Relative {metric} per group\n\n"
            + markdown_table(_wide(agg, metric, labels, scopes))
            + "\n\nBlank: not scored (broad holdouts of a model that was trained on them)."
        )
    for metric in METRICS:
        lines.append(
            f"## {metric} per dataset (mean over seeds)\n\n"
            + markdown_table(_per_dataset(results, metric, done, labels, guarded))
        )
    if not per_seed.empty:
        wide = per_seed.pivot_table(
            index=["model", "scope"], columns="seed", values=list(METRICS), sort=False
        )
        wide.columns = [f"{metric} seed {seed}" for metric, seed in wide.columns]
        wide = wide.reset_index().merge(spread, on=["model", "scope"], how="left")
        wide = wide.rename(columns={m: f"{m} spread" for m in METRICS})
        lines.append("## Sampling-seed noise: each aggregate per seed\n\n" + markdown_table(wide))
    pair_tables = {}
    for a, b in plan.pairs:
        pair_tables[f"{a}:{b}"] = pair = pair_table(frame, groups, plan.seeded, a, b)
        lines.append(
            f"## `{b}` - `{a}` (on the datasets both were scored on)\n\n"
            + markdown_table(pair)
            + "\n\nSeed spread: the larger of the two models' sampling-seed spreads."
        )
    lines.append(
        "## Seconds per series and window (mean over seeds)\n\n"
        + markdown_table(timing)
        + "\n\nMean over datasets: "
        + ", ".join(f"{m} {v:.3f} s" for m, v in mean_time.items())
    )
    if missing:
        lines.append(f"## Not computed ({len(missing)})\n\n" + "\n".join(f"- {m}" for m in missing))
    lines.append(
        f"Rows cached in `{args.work_dir / 'rows.jsonl'}`; compute {frame['runtime_s'].sum():.0f} s "
        f"over all rows, this invocation {wall:.0f} s."
    )
    payload = {
        "models": {
            label: {
                "spec": spec,
                "pretrained_without_broad_holdouts": plan.clean[label],
                "describe": describe(DEFAULT_MEMBERS if spec == DEFAULT_MODEL else spec),
            }
            for label, spec in plan.models.items()
        },
        "baselines": plan.baselines,
        "seeds": plan.seeds,
        "num_samples": args.num_samples,
        "batch_size": args.batch_size,
        "context_length": args.context_length,
        "sampling_precision": args.sampling_precision,
        "torch_threads": torch.get_num_threads(),
        "max_series": args.max_series,
        "work_dir": str(args.work_dir),
        "data_dir": str(args.data_dir),
        "datasets": datasets.to_dict(orient="records"),
        "groups": by_group.to_dict(orient="records"),
        "rows": frame.to_dict(orient="records"),
        "aggregates": agg.to_dict(orient="records"),
        "aggregates_per_seed": per_seed.to_dict(orient="records"),
        "seed_spread": spread.to_dict(orient="records"),
        "pairs": {k: v.to_dict(orient="records") for k, v in pair_tables.items()},
        "seconds_per_series_window": timing.to_dict(orient="records"),
        "missing": missing,
        "compute_s": float(frame["runtime_s"].sum()),
        "wall_s": wall,
    }
    write_results(args.output, payload, "\n\n".join(lines))


if __name__ == "__main__":
    main()
