"""Zero-shot benchmark of pretrained Lag-Llama models against statistical baselines.

    python -m benchmarks.zero_shot                                  # shipped models, 8 datasets
    python -m benchmarks.zero_shot --models lagllama-small,runs/x/checkpoints/last.ckpt
    python -m benchmarks.zero_shot --datasets m1_yearly,hospital --baselines seasonal-naive
    python -m benchmarks.zero_shot --models lagllama-small,lagllama-small+lagllama-base
    python -m benchmarks.zero_shot --models lagllama-small --sampling-precision bf16
    python -m benchmarks.zero_shot --datasets m4_yearly_dev,m4_quarterly_dev  # dev signal only

No model sees the target datasets (no training, no fine-tuning). One window of each
dataset's prediction length is forecast with ``--num-samples`` paths; WQL (quantiles
0.1..0.9) and MASE come from GluonTS, with the baselines in the same run
(``lagllama.evaluation.backtest``). Aggregates are geometric means of the score relative to
seasonal naive, over the 7 datasets with published numbers (Chronos paper, Benchmark II),
over all evaluation datasets run, and over the M4 dev holdout (the last 6 / 8 points of the
5% of M4 yearly / quarterly series no pretraining run sees: thousands of series, a signal
for choosing recipes that the 7 small datasets are too noisy to give); sampling time is reported per dataset (seconds per series with
the process's torch threads). Writes ``results/<output>.{md,json}``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd
import torch

from benchmarks.common import write_results
from lagllama.data.tasks import BacktestTask, dataset_task, repository_task
from lagllama.evaluation.backtest import backtest, markdown_table, relative_scores
from lagllama.evaluation.baselines import BASELINES
from lagllama.forecasting.options import ForecastOptions
from lagllama.forecasting.specs import (
    ENSEMBLE_SEPARATOR,
    build_predictor,
    parse_model,
    split_members,
)
from lagllama.nn.precision import SAMPLING_PRECISIONS
from lagllama.pretraining.corpus import EVAL_DATASETS
from lagllama.settings import shared_datasets_dir

#: The M4 dev holdout as datasets (see :data:`lagllama.pretraining.corpus.DEV_HOLDOUT`).
DEV_DATASETS = ("m4_yearly_dev", "m4_quarterly_dev")
DATASETS = (*EVAL_DATASETS, *DEV_DATASETS)
#: The 7 datasets with published zero-shot numbers, and those numbers (aggregate
#: relative WQL / MASE; Chronos paper Benchmark II subset, as quoted in the project issues).
PUBLISHED_DATASETS = DATASETS[:7]
PUBLISHED = {
    "Lag-Llama (official weights)": (0.965, 1.242),
    "DeepAR (trained per dataset)": (0.631, 0.778),
    "Chronos-T5-Small": (0.702, None),
    "AutoETS": (0.738, None),
    "seasonal naive": (1.000, 1.000),
}
#: Issue 27's bars over the 7 datasets.
TARGET_WQL, TARGET_MASE = 0.60, 0.78
#: Issue 27: the default must be no worse than lagllama-small on these.
GUARDED = ("m1_monthly", "exchange_rate")
REFERENCE = "lagllama-small"


def dev_tasks(data_dir: Path) -> dict[str, BacktestTask]:
    """``{name: task}`` of the M4 dev holdout: each series' last h points (h = 6 yearly, 8
    quarterly), whole series never trained on; empty when the corpus is not in ``data_dir``."""
    from lagllama.pretraining.corpus import dev_holdout

    if not (Path(data_dir) / "corpus").is_dir():
        return {}
    return {
        f"{source.removeprefix('corpus/')}_dev": dataset_task(
            f"{source.removeprefix('corpus/')}_dev", entries, h
        )
        for source, (entries, h) in dev_holdout(data_dir).items()
    }


def load_tasks(names: list[str], data_dir: Path) -> tuple[list[BacktestTask], list[str]]:
    """Tasks for evaluation and dev dataset names, and the names not found in ``data_dir``."""
    dev = dev_tasks(data_dir) if set(names) & set(DEV_DATASETS) else {}
    tasks, missing = [], []
    for name in names:
        if name in DEV_DATASETS:
            (tasks.append(dev[name]) if name in dev else missing.append(name))
            continue
        try:
            tasks.append(repository_task(name, data_dir, download=False))
        except FileNotFoundError:
            missing.append(name)
    return tasks, missing


def names(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def model_label(spec: str) -> str:
    """A shipped model's name, or ``ckpt:<run folder>/<file stem>`` for a checkpoint path;
    members of an ensemble (``a+b``) joined by ``+``."""
    labels = []
    for member in split_members(spec):
        path = Path(member)
        labels.append(
            f"ckpt:{path.parent.parent.name}/{path.stem}" if path.suffix == ".ckpt" else member
        )
    return ENSEMBLE_SEPARATOR.join(labels)


def predictor_factory(spec: str, args: argparse.Namespace):
    """Task -> zero-shot predictor of a model specification (:mod:`lagllama.forecasting.specs`:
    a shipped name, a ``.ckpt`` path, a baseline, an ensemble ``a+b``), each series seeded."""
    parsed = parse_model(spec)

    def factory(task):
        options = ForecastOptions(
            task.prediction_length,
            spec,
            num_samples=args.num_samples,
            seed=args.seed,
            batch_size=args.batch_size,
            sampling_precision=getattr(args, "sampling_precision", "32"),
            context_length=args.context_length,
        )
        return build_predictor(parsed, options, task.season_length, task.freq)

    return factory


def describe(spec: str) -> dict:
    """Steps, parameters and SHA-256 of a shipped model, or the path of a checkpoint (a list
    of these for an ensemble)."""
    parsed = parse_model(spec)
    if len(parsed.members) > 1:
        return {"ensemble": [describe(m.name) for m in parsed.members]}
    if spec in BASELINES:
        return {"baseline": spec}
    if spec.endswith(".ckpt"):
        ckpt = torch.load(spec, map_location="cpu", weights_only=True)
        return {"path": spec, "steps": int(ckpt.get("global_step", 0))}
    from lagllama.pretrained import read_card

    card = read_card(spec)
    return {
        "name": spec,
        "sha256": card["sha256"],
        "steps": card["training"]["steps"],
        "parameters": card["training"].get("parameters"),
    }


def acceptance(agg7: pd.DataFrame, results: pd.DataFrame, model: str) -> list[str]:
    """Issue 27's checks for one model, as lines of text."""
    agg = agg7.set_index("model")
    wql, mase = agg.loc[model, "WQL"], agg.loc[model, "MASE"]
    lines = [
        f"- aggregate relative WQL {wql:.3f} (bar {TARGET_WQL}): "
        + ("met" if wql <= TARGET_WQL else "NOT met"),
        f"- aggregate relative MASE {mase:.3f} (bar {TARGET_MASE}): "
        + ("met" if mase <= TARGET_MASE else "NOT met"),
    ]
    for base in ("auto-ets", "auto-theta"):
        if base in agg.index:
            ok = wql < agg.loc[base, "WQL"] and mase < agg.loc[base, "MASE"]
            lines.append(
                f"- below {base} in both ({agg.loc[base, 'WQL']:.3f} / "
                f"{agg.loc[base, 'MASE']:.3f}): " + ("yes" if ok else "no")
            )
    table = results.pivot(index="dataset", columns="model", values="WQL")
    above = table.index[table[model] > table["seasonal-naive"]].tolist()
    lines.append(f"- datasets where WQL is above seasonal naive's: {above or 'none'}")
    if model != REFERENCE and REFERENCE in table.columns:
        mase = results.pivot(index="dataset", columns="model", values="MASE")
        for name in GUARDED:
            if name in table.index:
                worse = [
                    f"{metric} {t.loc[name, model]:.4g} > {t.loc[name, REFERENCE]:.4g}"
                    for metric, t in (("WQL", table), ("MASE", mase))
                    if t.loc[name, model] > t.loc[name, REFERENCE]
                ]
                lines.append(
                    f"- {name} no worse than {REFERENCE}: "
                    + ("yes" if not worse else "no (" + ", ".join(worse) + ")")
                )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=shared_datasets_dir())
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--baselines", default="seasonal-naive,auto-ets,auto-theta")
    parser.add_argument(
        "--models",
        default=None,
        help="comma-separated shipped model names and/or .ckpt paths, or ensembles of them "
        "joined by + (default: every shipped model)",
    )
    parser.add_argument("--num-samples", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--context-length", type=int, help="inference context (default: model's)")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed")
    parser.add_argument(
        "--sampling-precision",
        choices=SAMPLING_PRECISIONS,
        default="32",
        help="bf16: sample under bf16 autocast (LagLlamaEstimator's sampling_precision)",
    )
    parser.add_argument("--output", default="zero_shot", help="results/<output>.{md,json}")
    args = parser.parse_args()

    from lagllama.pretrained import available_models

    specs = names(args.models) if args.models else available_models()
    tasks, missing = load_tasks(names(args.datasets), args.data_dir)
    if missing:
        print(f"skipped (not in {args.data_dir}): {', '.join(missing)}")
    if not tasks:
        print("no dataset found; nothing to do")
        return

    models = {model_label(s): predictor_factory(s, args) for s in specs}
    start = time.perf_counter()
    report = backtest(tasks, models, baselines=names(args.baselines))
    wall = time.perf_counter() - start

    results = report.results
    published = results[results["dataset"].isin(PUBLISHED_DATASETS)]
    complete = published["dataset"].nunique() == len(PUBLISHED_DATASETS)
    agg7 = relative_scores(published, metrics=("WQL", "MASE")) if len(published) else None
    dev = results[results["dataset"].isin(DEV_DATASETS)]
    agg_dev = relative_scores(dev, metrics=("WQL", "MASE")) if len(dev) else None
    evaluation = results[~results["dataset"].isin(DEV_DATASETS)]
    agg_all = relative_scores(evaluation, metrics=("WQL", "MASE")) if len(evaluation) else None
    timing = results[results["model"].isin(models)].pivot(
        index="dataset", columns="model", values="s_per_series"
    )

    cols = ["dataset", "model", "WQL", "MASE", "num_series", "s_per_series", "fallbacks"]
    per_dataset = results[cols].sort_values(["dataset", "model"], kind="stable")
    lines = [
        "# Zero-shot benchmark: pretrained Lag-Llama models vs statistical baselines",
        f"Models: {', '.join(f'`{m}`' for m in models)}. One window per series with each "
        f"dataset's prediction length, {args.num_samples} sample paths (sampling seed "
        f"{args.seed}), context {args.context_length or 'of the model'}, WQL over quantiles "
        "0.1..0.9, MASE with the dataset's seasonality. No training on any target dataset.",
        "## Per dataset\n\n" + markdown_table(per_dataset),
    ]
    if agg7 is not None:
        title = "## Aggregate over the 7 datasets with published numbers"
        if not complete:
            title += f" (only {published['dataset'].nunique()} of 7 run: not comparable)"
        lines.append(
            title + "\n\nGeometric mean of score / seasonal-naive score.\n\n" + markdown_table(agg7)
        )
        if complete and "seasonal-naive" in set(results["model"]):
            for model in models:
                lines.append(
                    f"Issue 27 checks for `{model}`:\n\n"
                    + "\n".join(acceptance(agg7, results, model))
                )
    if agg_all is not None:
        lines.append(
            f"## Aggregate over all {evaluation['dataset'].nunique()} evaluation datasets run"
            "\n\n" + markdown_table(agg_all)
        )
    if agg_dev is not None:
        lines.append(
            f"## M4 dev holdout ({', '.join(dev['dataset'].unique())}; "
            f"{dev.drop_duplicates('dataset')['num_series'].sum()} series never pretrained on)"
            "\n\n" + markdown_table(agg_dev)
        )
    mean_time = timing.loc[timing.index.isin(PUBLISHED_DATASETS)].mean()
    lines.append(
        f"## Sampling time, seconds per series ({torch.get_num_threads()} torch threads, "
        f"{args.num_samples} paths, predictor batch {args.batch_size})\n\n"
        + markdown_table(timing.reset_index())
        + "\n\nMean over the 7 published datasets: "
        + ", ".join(f"{m} {v:.3f} s" for m, v in mean_time.items())
    )
    lines.append(
        "## Published aggregates on the 7 datasets (reference)\n\n"
        + markdown_table(
            pd.DataFrame([{"model": k, "WQL": w, "MASE": m} for k, (w, m) in PUBLISHED.items()])
        )
    )
    lines.append(f"Total wall time {wall:.0f} s.")
    payload = {
        "models": {label: describe(spec) for label, spec in zip(models, specs)},
        "num_samples": args.num_samples,
        "seed": args.seed,
        "context_length": args.context_length,
        "results": results.to_dict(orient="records"),
        "aggregate_published7": None if agg7 is None else agg7.to_dict(orient="records"),
        "aggregate_published7_complete": complete,
        "aggregate_all": None if agg_all is None else agg_all.to_dict(orient="records"),
        "aggregate_dev": None if agg_dev is None else agg_dev.to_dict(orient="records"),
        "published_reference": PUBLISHED,
        "wall_s": wall,
        "skipped": missing,
    }
    write_results(args.output, payload, "\n\n".join(lines))


if __name__ == "__main__":
    main()
