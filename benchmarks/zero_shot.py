"""Zero-shot benchmark of the shipped Lag-Llama checkpoint against statistical baselines.

    python benchmarks/zero_shot.py                      # the 8 evaluation datasets
    python benchmarks/zero_shot.py --datasets m1_yearly,hospital --data-dir /data/gluonts
    python benchmarks/zero_shot.py --checkpoint runs/pretrain_small/checkpoints/last.ckpt

The checkpoint never sees the target datasets (no training, no fine-tuning). One window of
each dataset's prediction length is forecast with 100 sample paths; WQL (quantiles
0.1..0.9) and MASE are computed with GluonTS, with seasonal naive, AutoETS and AutoTheta in
the same run (``lagllama.evaluation.backtest``). Aggregates are geometric means of the
score relative to seasonal naive, over the 7 datasets with published numbers (Chronos
paper, Benchmark II) and over all datasets run. Writes ``results/<output>.{md,json}``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd
import torch

from benchmarks.common import write_results
from lagllama.evaluation import _markdown_table, backtest, relative_scores, repository_task
from lagllama.pretraining.corpus import EVAL_DATASETS
from lagllama.settings import shared_datasets_dir

DATASETS = EVAL_DATASETS
#: The 7 datasets with published zero-shot numbers, and those numbers (aggregate
#: relative WQL; Chronos paper Benchmark II subset, as quoted in the project issue).
PUBLISHED_DATASETS = DATASETS[:7]
PUBLISHED_WQL = {
    "Lag-Llama (official weights)": 0.965,
    "AutoETS": 0.738,
    "Chronos-T5-Small": 0.702,
    "seasonal naive": 1.000,
    "DeepAR 56K params, 15 CPU-min on this corpus": 0.84,
}
MODEL = "lag-llama-small"


def _names(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=shared_datasets_dir())
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--baselines", default="seasonal-naive,auto-ets,auto-theta")
    parser.add_argument("--name", default="lagllama-small", help="shipped checkpoint name")
    parser.add_argument("--checkpoint", type=Path, help="a Lightning .ckpt instead of --name")
    parser.add_argument("--num-samples", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--output", default="zero_shot", help="results/<output>.{md,json}")
    args = parser.parse_args()

    from lagllama.estimators import LagLlamaEstimator

    tasks, missing = [], []
    for name in _names(args.datasets):
        try:
            tasks.append(repository_task(name, args.data_dir, download=False))
        except FileNotFoundError:
            missing.append(name)
    if missing:
        print(f"skipped (not in {args.data_dir}): {', '.join(missing)}")
    if not tasks:
        print("no dataset found; nothing to do")
        return

    checkpoint = {"name": args.name}
    if args.checkpoint is None:
        from lagllama.pretrained import read_card

        card = read_card(args.name)
        checkpoint.update(sha256=card["sha256"], steps=card["training"]["steps"])
    else:
        checkpoint = {"path": str(args.checkpoint)}

    def factory(task):
        kwargs = {
            "prediction_length": task.prediction_length,
            "freq": task.freq,
            "num_parallel_samples": args.num_samples,
            "batch_size": args.batch_size,
        }
        if args.checkpoint is not None:
            return LagLlamaEstimator.from_checkpoint(
                args.checkpoint, **kwargs
            ).create_zero_shot_predictor()
        return LagLlamaEstimator.from_pretrained(
            name=args.name, **kwargs
        ).create_zero_shot_predictor()

    start = time.perf_counter()
    torch.manual_seed(0)
    report = backtest(tasks, {MODEL: factory}, baselines=_names(args.baselines))
    wall = time.perf_counter() - start

    results = report.results
    published = results[results["dataset"].isin(PUBLISHED_DATASETS)]
    complete = published["dataset"].nunique() == len(PUBLISHED_DATASETS)
    agg7 = relative_scores(published, metrics=("WQL", "MASE")) if len(published) else None
    agg_all = relative_scores(results, metrics=("WQL", "MASE"))

    cols = ["dataset", "model", "WQL", "MASE", "num_series", "s_per_series", "fallbacks"]
    per_dataset = results[cols].sort_values(["dataset", "model"], kind="stable")
    lines = [
        "# Zero-shot benchmark: shipped Lag-Llama checkpoint vs statistical baselines",
        f"Checkpoint: `{checkpoint}`. One window per series with each dataset's prediction "
        f"length, {args.num_samples} sample paths, WQL over quantiles 0.1..0.9, MASE with "
        "the dataset's seasonality. No training on any target dataset.",
        "## Per dataset\n\n" + _markdown_table(per_dataset),
    ]
    if agg7 is not None:
        title = "## Aggregate over the 7 datasets with published numbers"
        if not complete:
            title += f" (only {published['dataset'].nunique()} of 7 run: not comparable)"
        lines.append(
            title
            + "\n\nGeometric mean of score / seasonal-naive score.\n\n"
            + _markdown_table(agg7)
        )
    lines.append(
        f"## Aggregate over all {results['dataset'].nunique()} datasets run\n\n"
        + _markdown_table(agg_all)
    )
    lines.append(
        "## Published aggregate relative WQL on the 7 datasets (reference)\n\n"
        + _markdown_table(
            pd.DataFrame({"model": list(PUBLISHED_WQL), "WQL": list(PUBLISHED_WQL.values())})
        )
        + "\n\nTarget for our checkpoint: relative WQL <= 0.75 and MASE <= 0.95."
    )
    lines.append(f"Total wall time {wall:.0f} s (one torch thread: {torch.get_num_threads()}).")
    payload = {
        "checkpoint": checkpoint,
        "num_samples": args.num_samples,
        "results": results.to_dict(orient="records"),
        "aggregate_published7": None if agg7 is None else agg7.to_dict(orient="records"),
        "aggregate_published7_complete": complete,
        "aggregate_all": agg_all.to_dict(orient="records"),
        "published_reference_wql": PUBLISHED_WQL,
        "wall_s": wall,
        "skipped": missing,
    }
    write_results(args.output, payload, "\n\n".join(lines))


if __name__ == "__main__":
    main()
