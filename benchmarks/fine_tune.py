"""Does fine-tuning help? Zero-shot vs fine-tuned vs trained from scratch, per dataset.

    python -m benchmarks.fine_tune                       # the 8 evaluation datasets
    python -m benchmarks.fine_tune --datasets m1_yearly,hospital --cpu-minutes 2
    python -m benchmarks.fine_tune --datasets A --output part_a &   # two cores: two halves,
    python -m benchmarks.fine_tune --datasets B --output part_b     # then one report of both
    python -m benchmarks.fine_tune --combine part_a,part_b
    python -m benchmarks.fine_tune --name lagllama-large --no-scratch   # zero-shot vs fine-tuned

For each dataset, in one run: seasonal naive and AutoETS; the model (``--name``, any
specification; default: the default ``lagllama``) zero-shot; the same model with every
Lag-Llama member fine-tuned by ``lagllama.training.fine_tuning.fine_tune`` (validation windows
carved from the end of the training series, early stopping, best weights, EMA, the window
rule) and a hybrid's weights refitted; and the same architectures trained from random
weights with the same recipe except the learning rate, under the same CPU-time budget per
member. One test window per series (each dataset's prediction length), 100 sample paths,
WQL over quantiles 0.1..0.9 and MASE, aggregates as geometric means of the ratio to
seasonal naive. Writes ``results/<output>.{md,json,png}``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from benchmarks.common import RESULTS, write_results
from lagllama.data.tasks import repository_task
from lagllama.evaluation.backtest import backtest, markdown_table, relative_scores
from lagllama.pretraining.corpus import EVAL_DATASETS
from lagllama.settings import shared_datasets_dir

ZERO_SHOT, FINE_TUNED, SCRATCH = "zero-shot", "fine-tuned", "from scratch"
#: What fine-tuning would forecast had the rule always chosen the tuned weights, or always
#: their average with the start (the same training runs): the rule is measured against them.
ALWAYS = {"always tuned": "tuned", "always average": "average"}
#: A hybrid's fine-tuned members with the weights zero-shot fitted (not refitted on the windows
#: the tuning was selected on, where the tuned members look better than they are).
KEPT_WEIGHTS = "fine-tuned, zero-shot weights"


def names(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def bar_chart(relative: pd.DataFrame, path: Path) -> Path:
    """Grouped bars of WQL / seasonal-naive WQL per dataset and model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from lagllama.plotting import save_figure

    table = relative.pivot(index="dataset", columns="model", values="rel_WQL")
    models = [m for m in ("auto-ets", ZERO_SHOT, FINE_TUNED, SCRATCH) if m in table.columns]
    x = np.arange(len(table.index))
    width = 0.8 / len(models)
    fig, ax = plt.subplots(figsize=(max(6, 1.3 * len(x)), 4))
    for i, model in enumerate(models):
        ax.bar(x + (i - (len(models) - 1) / 2) * width, table[model], width, label=model)
    ax.axhline(1.0, color="black", lw=0.8, ls="--", label="seasonal naive")
    ax.set_xticks(x, table.index, rotation=30, ha="right")
    ax.set_ylabel("WQL / seasonal-naive WQL")
    ax.set_title("Zero-shot vs fine-tuned vs from scratch (lower is better)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    try:
        return save_figure(fig, path)
    finally:
        plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=shared_datasets_dir())
    parser.add_argument("--datasets", default=",".join(EVAL_DATASETS))
    parser.add_argument(
        "--name", default=None, help="model specification (default: the default lagllama)"
    )
    parser.add_argument(
        "--cpu-minutes", type=float, default=5.0, help="training budget per Lag-Llama member"
    )
    parser.add_argument("--scratch-lr", type=float, default=1e-3)
    parser.add_argument(
        "--no-scratch", action="store_true", help="leave out training from random weights"
    )
    parser.add_argument("--num-samples", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default="fine_tune", help="results/<output>.{md,json,png}")
    parser.add_argument(
        "--combine",
        default=None,
        help="comma-separated outputs of earlier runs (same settings) to report as one",
    )
    args = parser.parse_args()
    if args.combine:
        combine(names(args.combine), args.output)
        return

    from lagllama.forecasting.options import ForecastOptions
    from lagllama.forecasting.specs import build_predictor, build_tuned, parse_model
    from lagllama.training.fine_tuning import fine_tune
    from lagllama.training.fine_tuning_defaults import DEFAULTS

    spec = parse_model(args.name)
    name = spec.name
    tasks = []
    for dataset in names(args.datasets):
        try:
            tasks.append(repository_task(dataset, args.data_dir, download=False))
        except FileNotFoundError:
            print(f"skipped (not in {args.data_dir}): {dataset}")
    if not tasks:
        print("no dataset found; nothing to do")
        return

    training: list[dict] = []
    alternatives: dict[tuple[str, str], dict] = {}  # (dataset, member): the other verdicts
    workdir = tempfile.TemporaryDirectory(prefix="fine_tune_bench_")  # Lightning's files

    def options(task) -> ForecastOptions:
        return ForecastOptions(
            task.prediction_length, name, num_samples=args.num_samples, seed=args.seed
        )

    zero_shots: dict[str, object] = {}  # per dataset; a hybrid holds its fitted weights

    def zero_shot(task):
        zero_shots[task.name] = build_predictor(spec, options(task), task.season_length, task.freq)
        return zero_shots[task.name]

    def trained(from_scratch: bool):
        """Every Lag-Llama member of the specification tuned (or trained from random weights)
        by the recipe; a hybrid's weights refitted on the task's inputs, as zero-shot."""

        def tune(task, member) -> object:
            torch.manual_seed(args.seed)
            result = fine_tune(
                task.train_data(),
                task.prediction_length,
                checkpoint=member.checkpoint,
                freq=task.freq,
                batch_size=64,
                max_cpu_minutes=args.cpu_minutes,
                max_epochs=10_000,
                from_scratch=from_scratch,
                lr=args.scratch_lr if from_scratch else DEFAULTS["lr"],
                trainer_kwargs={
                    "accelerator": "cpu",
                    "enable_progress_bar": False,
                    "default_root_dir": workdir.name,
                },
            )
            training.append(
                {
                    "dataset": task.name,
                    "model": SCRATCH if from_scratch else FINE_TUNED,
                    "member": member.name,
                    **{k: v for k, v in result.report.to_dict().items() if k != "history"},
                }
            )
            if not from_scratch:
                alternatives[task.name, member.name] = {
                    "chosen": result.predictor,
                    **result.alternatives,
                }
            return result.predictor

        def factory(task):
            tuned = {m.name: tune(task, m) for m in spec.lag_llama}
            return build_tuned(spec, options(task), task.season_length, task.freq, tuned)

        return factory

    def always(verdict: str):
        """The fine-tuned runs of this task (no new training), every member's verdict forced
        to ``verdict`` where training found weights better than the start."""

        def factory(task):
            runs = {m.name: alternatives[task.name, m.name] for m in spec.lag_llama}
            tuned = {name: run.get(verdict, run["chosen"]) for name, run in runs.items()}
            return build_tuned(spec, options(task), task.season_length, task.freq, tuned)

        return factory

    def kept_weights(task):
        """The rule's fine-tuned members, weighted as zero-shot weighted the start (it has
        forecast this task already: the backtest runs the models in order)."""
        runs = {m.name: alternatives[task.name, m.name]["chosen"] for m in spec.lag_llama}
        weights = zero_shots[task.name].last_weights
        return build_tuned(spec, options(task), task.season_length, task.freq, runs, weights)

    models = {ZERO_SHOT: zero_shot, FINE_TUNED: trained(False)}
    models |= {label: always(verdict) for label, verdict in ALWAYS.items()}
    if spec.is_hybrid:
        models[KEPT_WEIGHTS] = kept_weights
    if not args.no_scratch:
        models[SCRATCH] = trained(True)
    start = time.perf_counter()
    with workdir:
        report = backtest(tasks, models, baselines=["seasonal-naive", "auto-ets"])
    wall = time.perf_counter() - start

    payload = {
        "checkpoint": name,
        "cpu_minutes": args.cpu_minutes,
        "num_samples": args.num_samples,
        "seed": args.seed,
        "scratch_lr": args.scratch_lr,
        "torch_threads": torch.get_num_threads(),
        "results": report.results.to_dict(orient="records"),
        "training": training,
        "wall_s": wall,
    }
    write_report(payload, args.output)


def combine(parts: list[str], output: str) -> None:
    """One report from the result files of runs over disjoint sets of datasets."""
    import json

    loaded = [json.loads((RESULTS / f"{part}.json").read_text()) for part in parts]
    settings = ("checkpoint", "cpu_minutes", "num_samples", "seed", "scratch_lr")
    for key in settings:
        values = {json.dumps(p.get(key)) for p in loaded}
        if len(values) > 1:
            raise ValueError(f"the parts differ in {key}: {sorted(values)}")
    payload = {key: loaded[0].get(key) for key in (*settings, "torch_threads")}
    payload["results"] = [row for p in loaded for row in p["results"]]
    payload["training"] = [row for p in loaded for row in p["training"]]
    payload["wall_s"] = sum(p["wall_s"] for p in loaded)
    payload["parts"] = parts
    cpus: dict[str, list[str]] = {}
    for part, p in zip(parts, loaded):
        cpus.setdefault(p["machine"]["cpu"], []).append(part)
    payload["machine"] = {  # where the parts ran, not where they were combined
        **loaded[0]["machine"],
        "cpu": "; ".join(f"{cpu} ({', '.join(names)})" for cpu, names in cpus.items())
        if len(cpus) > 1
        else next(iter(cpus)),
    }
    write_report(payload, output)


def rule_section(pivot: pd.DataFrame) -> str:
    """The rule's verdicts against always keeping the tuned weights or always averaging (and,
    for a hybrid, against keeping zero-shot's weights): WQL relative to zero-shot per dataset,
    worst and geometric mean over the datasets that have each (parts run before a comparison
    existed lack it: blank)."""
    columns = [FINE_TUNED, *(c for c in (*ALWAYS, KEPT_WEIGHTS) if c in pivot.columns)]
    if len(columns) == 1:
        return "## The rule against always tuned / always average\n\nNot measured in this run."
    ratios = pivot[columns].div(pivot[ZERO_SHOT], axis=0)
    summary = pd.DataFrame(
        {
            "worst": ratios.max(),
            "geometric mean": np.exp(np.log(ratios).mean()),
            "datasets worse by > 0.5%": (ratios > 1.005).sum(),
            "datasets": ratios.notna().sum(),
            "the rule's geometric mean on them": pd.Series(
                {
                    c: float(np.exp(np.log(ratios[FINE_TUNED][ratios[c].notna()]).mean()))
                    for c in columns
                }
            ),
        }
    ).T
    return (
        "## The rule against always tuned / always average\n\n"
        "WQL relative to zero-shot; the same training runs, each member's verdict forced where "
        f"training found weights better than the start; `{KEPT_WEIGHTS}`: the rule's members "
        "with the hybrid weights zero-shot fitted, not refitted.\n\n"
        + markdown_table(ratios.reset_index())
        + "\n\n"
        + markdown_table(summary.reset_index().rename(columns={"index": "over the datasets"}))
    )


def write_report(payload: dict, output: str) -> None:
    """Markdown, JSON and the bar chart of one run (or of combined parts)."""
    from lagllama.training.fine_tuning_defaults import DEFAULTS

    results = pd.DataFrame(payload["results"])
    name, wall = payload["checkpoint"], payload["wall_s"]
    naive = results[results["model"] == "seasonal-naive"].set_index("dataset")["WQL"]
    relative = results.assign(rel_WQL=results["WQL"] / results["dataset"].map(naive))
    # a geometric mean over fewer datasets is not comparable: partial models are in the rule's
    complete = results.groupby("model")["dataset"].nunique() == results["dataset"].nunique()
    aggregate = relative_scores(results[results["model"].map(complete)], metrics=("WQL", "MASE"))
    train_table = pd.DataFrame(payload["training"])
    chart = bar_chart(relative, RESULTS / f"{output}.png")

    pivot = relative.pivot(index="dataset", columns="model", values="WQL")
    better = int((pivot[FINE_TUNED] < pivot[ZERO_SHOT]).sum())
    worst = float((pivot[FINE_TUNED] / pivot[ZERO_SHOT]).max())
    agg = aggregate.set_index("model")["WQL"]
    lines = [
        "# Fine-tuning benchmark: zero-shot vs fine-tuned vs from scratch",
        f"Checkpoint `{name}`; each neural model gets at most {payload['cpu_minutes']:g} CPU-minutes of "
        f"training per dataset (torch threads: {payload.get('torch_threads')}), "
        f"{payload['num_samples']} sample paths, seed {payload['seed']}. Fine-tuned: lr "
        f"{DEFAULTS['lr']:g}, from scratch: lr {payload['scratch_lr']:g}; otherwise the same recipe: weights chosen by the WQL of "
        f"{DEFAULTS['validation_samples']} sampled paths on up to "
        f"{DEFAULTS['validation_windows']} rolling windows at the end of each training series "
        f"(at most {DEFAULTS['validation_series']} series); the tuned weights are kept when "
        f"they win on most windows and on the mean by more than max({DEFAULTS['min_gain']:.0%}, "
        f"{DEFAULTS['noise_factor']:g} x the sampling noise), the start when the gain is within "
        "the noise, else the quantile average of both (confirm: "
        f"{DEFAULTS['confirm']}); "
        f"patience {DEFAULTS['patience']} epochs of {DEFAULTS['num_batches_per_epoch']} batches, "
        f"EMA {DEFAULTS['ema_decay']}.",
        "## Per dataset\n\n"
        + markdown_table(
            relative[["dataset", "model", "WQL", "rel_WQL", "MASE", "runtime_s"]].sort_values(
                ["dataset", "model"], kind="stable"
            )
        ),
        "## Aggregate (geometric mean of score / seasonal-naive score)\n\n"
        + markdown_table(aggregate),
        f"Fine-tuned beats zero-shot in WQL on {better} of {len(pivot)} datasets; its worst "
        f"ratio to zero-shot is {worst:.3f}. Aggregate relative WQL: zero-shot "
        f"{agg[ZERO_SHOT]:.3f}, fine-tuned {agg[FINE_TUNED]:.3f} "
        f"({agg[FINE_TUNED] / agg[ZERO_SHOT] - 1:+.1%})"
        + (
            f", from scratch {agg[SCRATCH]:.3f} "
            f"(fine-tuned vs scratch {agg[FINE_TUNED] / agg[SCRATCH] - 1:+.1%})."
            if SCRATCH in agg
            else " (no training from scratch in this run)."
        ),
        rule_section(pivot),
        "## Training runs\n\n" + markdown_table(train_table),
        f"![relative WQL]({chart.name})",
        f"Total wall time {wall:.0f} s"
        + (
            f" over the parts {', '.join(payload['parts'])} (each a run of its own)."
            if payload.get("parts")
            else "."
        ),
    ]
    payload["aggregate"] = aggregate.to_dict(orient="records")
    write_results(output, payload, "\n\n".join(lines))


if __name__ == "__main__":
    main()
