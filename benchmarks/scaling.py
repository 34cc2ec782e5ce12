"""Pretraining scaling curve: zero-shot accuracy of checkpoints against the CPU-hours spent.

    python -m benchmarks.scaling --checkpoint ../lagllama_runs/pretrain_base/steps/step-2000.ckpt
    python -m benchmarks.scaling --checkpoint lagllama-small --cpu-hours 1.2 --label small
    python -m benchmarks.scaling --plot-only

Each checkpoint (a ``.ckpt`` kept by a pretraining run, or a shipped model's name) is scored
zero-shot on the 7 datasets with published numbers against seasonal naive (one window,
``--num-samples`` paths, fixed sampling seed): aggregate relative WQL and MASE, and the same
on the M4 dev holdout (``dev_WQL``, ``dev_MASE``: 1,400+ series no run trains on). For a
``.ckpt`` of a run folder, the run's CPU-hours up to that step come from its
``chunks.jsonl`` and its validation loss from its Lightning CSV log. Rows accumulate in
``results/scaling.json`` across sessions (a label is replaced when scored again);
``results/scaling.{md,png}`` are redrawn from all rows.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd
import torch

from benchmarks.common import RESULTS, machine, write_results
from benchmarks.zero_shot import DEV_DATASETS, PUBLISHED_DATASETS, load_tasks, predictor_factory
from lagllama.data.tasks import repository_task
from lagllama.evaluation.backtest import backtest, markdown_table, relative_scores
from lagllama.settings import shared_datasets_dir

ROWS = RESULTS / "scaling.json"


def run_folder(checkpoint: Path) -> Path | None:
    """``OUTPUT`` of ``OUTPUT/steps/step-N.ckpt`` or ``OUTPUT/checkpoints/last.ckpt``."""
    folder = checkpoint.resolve().parent.parent
    return folder if (folder / "chunks.jsonl").exists() else None


def validation_loss(folder: Path, step: int) -> float | None:
    """The run's logged ``val_loss`` at ``step`` (the last logged at or before it; a run
    restarted from a snapshot logs steps from its offset)."""
    from lagllama.pretraining.chunks import run_offset

    step -= run_offset(folder)
    best = None
    for path in sorted(folder.glob("logs/version_*/metrics.csv")):
        table = pd.read_csv(path)
        if "val_loss" not in table:
            continue
        rows = table.dropna(subset=["val_loss"])
        rows = rows[rows["step"] + 1 <= step]
        if len(rows):
            best = float(rows.iloc[-1]["val_loss"])
    return best


def describe(spec: str, cpu_hours: float | None, directory: Path | None = None) -> dict:
    """Run, step, parameters, CPU-hours and validation loss of a checkpoint (a ``.ckpt``, or a
    model name: shipped, or in ``directory``, e.g. a run's weights-only snapshot)."""
    if spec.endswith(".ckpt"):
        from lagllama.pretraining.chunks import cpu_hours_at

        ckpt = torch.load(spec, map_location="cpu", weights_only=True)
        step = int(ckpt.get("global_step", 0))
        params = sum(v.numel() for v in ckpt["state_dict"].values())
        folder = run_folder(Path(spec))
        if folder is not None:
            cpu_hours = cpu_hours if cpu_hours is not None else cpu_hours_at(folder, step)
            config = json.loads((folder / "config.json").read_text())
            return {
                "run": config.get("name", folder.name),
                "step": step,
                "parameters": params,
                "cpu_hours": cpu_hours,
                "val_loss": validation_loss(folder, step),
            }
        return {"run": Path(spec).stem, "step": step, "parameters": params, "cpu_hours": cpu_hours}
    from lagllama.pretrained import read_card

    card = read_card(spec, directory)
    totals = card.get("totals", {})
    if cpu_hours is None and "cpu_s" in totals:
        cpu_hours = totals["cpu_s"] / 3600
    return {
        "run": spec,
        "step": card["training"]["steps"],
        "parameters": card["training"].get("parameters"),
        "cpu_hours": cpu_hours,
    }


def plot(rows: pd.DataFrame, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FixedLocator, NullFormatter, ScalarFormatter

    from lagllama.plotting import save_figure

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, metric in zip(axes, ("rel_WQL", "rel_MASE")):
        for run, part in rows.dropna(subset=["cpu_hours"]).groupby("run", sort=False):
            part = part.sort_values("cpu_hours")
            ax.plot(part["cpu_hours"], part[metric], marker="o", label=run)
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(FixedLocator([0.25, 0.5, 1, 2, 4, 8]))
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("pretraining CPU-hours (one thread)")
        ax.set_ylabel(f"{metric.removeprefix('rel_')} / seasonal naive (7 datasets)")
        ax.grid(alpha=0.3)
    axes[0].axhline(0.58, color="grey", ls="--", lw=0.8, label="target")
    axes[1].axhline(0.78, color="grey", ls="--", lw=0.8)
    axes[0].legend(fontsize=8)
    fig.suptitle("Zero-shot accuracy against pretraining compute")
    fig.tight_layout()
    try:
        return save_figure(fig, path)
    finally:
        plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", action="append", default=[], help=".ckpt or model name")
    parser.add_argument("--label", action="append", default=[], help="one per --checkpoint")
    parser.add_argument("--cpu-hours", type=float, help="for a checkpoint without a run log")
    parser.add_argument(
        "--snapshot-dir",
        type=Path,
        help="--checkpoint names a weights-only snapshot in this folder (e.g. snapshots)",
    )
    parser.add_argument("--data-dir", type=Path, default=shared_datasets_dir())
    parser.add_argument("--num-samples", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--context-length", type=int)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--plot-only", action="store_true")
    args = parser.parse_args()

    rows = json.loads(ROWS.read_text())["rows"] if ROWS.exists() else []
    if not args.plot_only:
        tasks = [repository_task(n, args.data_dir, download=False) for n in PUBLISHED_DATASETS]
        tasks += load_tasks(list(DEV_DATASETS), args.data_dir)[0]
        for i, spec in enumerate(args.checkpoint):
            info = describe(spec, args.cpu_hours, args.snapshot_dir)
            label = args.label[i] if i < len(args.label) else f"{info['run']}@{info['step']}"
            model = spec
            if args.snapshot_dir is not None:
                from lagllama.pretrained import checkpoint_path

                model = str(checkpoint_path(spec, args.snapshot_dir))
                spec = str(args.snapshot_dir / spec)
            report = backtest(
                tasks, {label: predictor_factory(model, args)}, baselines=["seasonal-naive"]
            )
            results = report.results
            dev = results["dataset"].isin(DEV_DATASETS)
            agg = relative_scores(results[~dev], metrics=("WQL", "MASE")).set_index("model")
            agg_dev = (
                relative_scores(results[dev], metrics=("WQL", "MASE")).set_index("model")
                if dev.any()
                else None
            )
            row = {
                "label": label,
                "checkpoint": spec,
                **info,
                "rel_WQL": float(agg.loc[label, "WQL"]),
                "rel_MASE": float(agg.loc[label, "MASE"]),
                "dev_WQL": None if agg_dev is None else float(agg_dev.loc[label, "WQL"]),
                "dev_MASE": None if agg_dev is None else float(agg_dev.loc[label, "MASE"]),
                "num_samples": args.num_samples,
                "seed": args.seed,
                "machine": machine()["cpu"],
            }
            # re-read: another scoring run may have added rows since this one started
            rows = json.loads(ROWS.read_text())["rows"] if ROWS.exists() else []
            rows = [r for r in rows if r["label"] != label] + [row]
            print(json.dumps(row))
            ROWS.write_text(json.dumps({"rows": rows}, indent=2) + "\n")
    if not rows:
        print("no rows yet")
        return
    table = pd.DataFrame(rows)
    chart = plot(table, RESULTS / "scaling.png")
    columns = ["label", "run", "step", "parameters", "cpu_hours", "val_loss", "rel_WQL"]
    columns += ["rel_MASE", "dev_WQL", "dev_MASE", "machine"]
    markdown = "\n\n".join(
        [
            "# Pretraining scaling: zero-shot accuracy against CPU-hours",
            "Aggregate relative WQL / MASE over the 7 datasets with published numbers "
            "(geometric mean of score / seasonal-naive score), one window, fixed sampling "
            "seed. CPU-hours are one-thread process time of the pretraining run up to the "
            "checkpoint's step; machines differ between sessions (column `machine`). "
            "`dev_WQL` / `dev_MASE`: the same aggregate over the M4 dev holdout (last 6 / 8 "
            "points of the 5% of M4 yearly / quarterly series held out of every v2 run; empty "
            "for rows scored before it existed). `val_loss` is each run's own held-out loss, "
            "comparable only within a corpus.",
            markdown_table(table.reindex(columns=columns).sort_values(["run", "step"])),
            f"![scaling]({chart.name})",
        ]
    )
    write_results("scaling", {"rows": rows}, markdown)


if __name__ == "__main__":
    main()
