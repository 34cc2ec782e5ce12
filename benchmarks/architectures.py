"""Dense vs MoE vs ProbSparse Lag-Llama beside GluonTS neural baselines, one run.

    nice -n 19 env OMP_NUM_THREADS=1 python -m benchmarks.architectures \\
        [--train-seconds 90] [--threads 1] [--datasets m4_hourly m4_weekly] [--max-series N]

Every neural model gets the same *training wall-time budget* (``--train-seconds`` on
``--threads`` torch threads; Lightning ``max_time``), so compute is equal in time, not in
steps: the table reports the optimiser steps each model managed and its active parameters
per token (steps x active params is the FLOP proxy). Models are then backtested on the last
``prediction_length`` points of every series (GluonTS metrics via
:func:`lagllama.evaluation.backtest`: WQL over quantiles 0.1..0.9, MASE).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import tempfile
import time

import lightning.pytorch as pl
import pandas as pd
import torch

from benchmarks.common import require_dataset, write_results
from lagllama.data.tasks import repository_task
from lagllama.estimators.lag_llama import LagLlamaEstimator
from lagllama.evaluation.backtest import backtest
from lagllama.evaluation.neural_baselines import NEURAL_BASELINES, neural_baseline

#: Lag-Llama variants: same depth and width, one option changed each.
VARIANTS = {
    "lag-llama-dense": {},
    "lag-llama-moe": {"ffn": "moe", "num_experts": 8, "experts_top_k": 2},
    "lag-llama-probsparse": {"attention": "probsparse", "probsparse_factor": 3.0},
}
LAG_LLAMA = {"n_layer": 3, "n_head": 4, "n_embd_per_head": 16, "lr": 2e-3, "warmup_steps": 50}


def trainer_kwargs(seconds: float) -> dict:
    return {
        "max_time": {"seconds": int(seconds)},
        "max_epochs": 10_000,
        "accelerator": "cpu",
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "default_root_dir": tempfile.mkdtemp(prefix="lagllama-arch-"),
        "logger": False,
    }


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-seconds", type=float, default=90.0)
    parser.add_argument(
        "--threads", type=int, default=int(os.environ.get("LAGLLAMA_BENCH_THREADS", "1"))
    )
    parser.add_argument("--datasets", nargs="+", default=["m4_hourly", "m4_weekly"])
    parser.add_argument("--baselines", nargs="*", default=list(NEURAL_BASELINES))
    parser.add_argument("--max-series", type=int, default=None, help="first N series only")
    parser.add_argument("--samples", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    rows, tasks, predictors = [], [], {}
    for name in args.datasets:
        root = require_dataset(name)
        task = repository_task(name, data_dir=root)
        if args.max_series:
            task = dataclasses.replace(task, dataset=list(task.dataset)[: args.max_series])
        tasks.append(task)
        h, freq, train = task.prediction_length, task.freq, task.train_data()
        estimators = {
            variant: LagLlamaEstimator(
                prediction_length=h,
                freq=freq,
                context_length=2 * h if h >= 24 else 4 * h,
                batch_size=64,
                num_batches_per_epoch=50,
                num_parallel_samples=args.samples,
                trainer_kwargs=trainer_kwargs(args.train_seconds),
                **LAG_LLAMA,
                **options,
            )
            for variant, options in VARIANTS.items()
        }
        for baseline in args.baselines:
            estimators[baseline] = neural_baseline(
                baseline,
                h,
                freq,
                trainer_kwargs(args.train_seconds),
                context_length=2 * h if h >= 24 else 4 * h,
            )
        for model, estimator in estimators.items():
            pl.seed_everything(args.seed, verbose=False)
            start = time.perf_counter()
            out = estimator.train_model(train)
            seconds = time.perf_counter() - start
            net = out.trained_net
            if isinstance(estimator, LagLlamaEstimator):
                total, active = net.model.num_parameters()
            else:
                total = active = count(net)
            predictors[(name, model)] = out.predictor
            rows.append(
                {
                    "dataset": name,
                    "model": model,
                    "params": total,
                    "active_params": active,
                    "train_steps": out.trainer.global_step,
                    "train_s": seconds,
                }
            )
            print(f"{name} {model}: {rows[-1]}", flush=True)

    results = []
    for task in tasks:
        models = {m: p for (d, m), p in predictors.items() if d == task.name}
        pl.seed_everything(args.seed, verbose=False)
        report = backtest([task], models, baselines=("seasonal-naive",))
        results.append(report.results)

    scores = pd.concat(results, ignore_index=True)
    info = pd.DataFrame(rows)
    table = scores.merge(info, on=["dataset", "model"], how="left")
    table["predict_s"] = table["runtime_s"]
    snaive = table[table.model == "seasonal-naive"].set_index("dataset")["WQL"]
    table["WQL_rel"] = table["WQL"] / table["dataset"].map(snaive)
    cols = ["dataset", "model", "WQL", "WQL_rel", "MASE", "params", "active_params"]
    cols += ["train_steps", "train_s", "predict_s"]
    table = table[cols]

    def cell(v: object) -> str:
        if isinstance(v, float):
            return "" if v != v else (f"{v:.0f}" if abs(v) >= 100 else f"{v:.4g}")
        return str(v)

    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(cell(v) for v in r) + " |" for r in table.itertuples(index=False)]
    ds_info = ", ".join(
        f"{t.name} ({len(list(t.dataset))} series, h = {t.prediction_length})" for t in tasks
    )
    markdown = f"""# Architectures: dense vs MoE vs ProbSparse Lag-Llama, and GluonTS baselines

Datasets: {ds_info}; last window of every series. Equal **training time** per neural model:
{args.train_seconds:g} s wall on {args.threads} torch thread(s) (Lightning `max_time`,
batch 64); `train_steps` x `active_params` is the compute actually spent. One run, seed
{args.seed}, {args.samples} sample paths. WQL = mean weighted quantile loss (0.1..0.9),
`WQL_rel` = WQL / seasonal naive, MASE at the median. `active_params` = parameters a token
uses (MoE: router + shared expert + top-2 of 8 experts). `predict_s` = backtest wall time.

Lag-Llama variants: {LAG_LLAMA["n_layer"]} layers, {LAG_LLAMA["n_head"]} heads x
{LAG_LLAMA["n_embd_per_head"]}, context 2h (4h when h < 24), GluonTS lags for the frequency;
options: {VARIANTS}.
Baselines: GluonTS torch estimators with default sizes, same context length.

{chr(10).join(lines)}
"""
    payload = {
        "args": vars(args),
        "lag_llama": LAG_LLAMA,
        "variants": VARIANTS,
        "results": table.to_dict(orient="records"),
    }
    write_results("architectures", payload, markdown)


if __name__ == "__main__":
    main()
