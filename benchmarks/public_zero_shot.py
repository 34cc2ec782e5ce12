"""Published zero-shot scores of public models on our 7 datasets, from the fev benchmark.

    python -m benchmarks.public_zero_shot --fev PATH   # a checkout (or git dir) of autogluon/fev

Reads the per-dataset results of ``benchmarks/chronos_zeroshot/results/*.csv`` in the public
autogluon/fev repository (https://github.com/autogluon/fev; Chronos Benchmark II, one window,
WQL over quantiles 0.1..0.9, MASE) and aggregates them in our convention: the geometric mean
over the 7 datasets of each model's score relative to seasonal naive's (fev's own
seasonal-naive rows). Writes ``results/public_zero_shot.{md,json}``; the zero-shot
benchmark and the README quote them. None of fev's code or data is copied here.
"""

from __future__ import annotations

import argparse
import io
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.common import RESULTS, write_results
from lagllama.evaluation.backtest import markdown_table

RESULTS_DIR = "benchmarks/chronos_zeroshot/results"
#: fev task name -> our dataset name (the 7 with published numbers)
TASKS = {
    "monash_m1_monthly": "m1_monthly",
    "monash_m1_quarterly": "m1_quarterly",
    "monash_m1_yearly": "m1_yearly",
    "monash_hospital": "hospital",
    "nn5": "nn5_daily_with_missing",
    "exchange_rate": "exchange_rate",
    "ETTh": "ett_small_1h",
}
#: fev result file -> name and parameter count in the table
MODELS = {
    "chronos_bolt_mini": ("Chronos-Bolt-mini", "21M"),
    "chronos_bolt_small": ("Chronos-Bolt-small", "48M"),
    "chronos_bolt_base": ("Chronos-Bolt-base", "205M"),
    "tirex": ("TiRex", "35M"),
    "timecopilot": ("TimeCopilot (median of TiRex and Chronos)", ""),
    "timesfm-2.0": ("TimesFM-2.0", "500M"),
    "moirai_base": ("Moirai-base", "91M"),
    "auto_arima": ("AutoARIMA", ""),
    "auto_theta": ("AutoTheta", ""),
    "auto_ets": ("AutoETS", ""),
}
OUTPUT = RESULTS / "public_zero_shot.json"


def read_results(fev: Path, stem: str) -> tuple[pd.DataFrame, str]:
    """One model's result rows and the commit they were read at (a work tree or a git dir)."""
    relative = f"{RESULTS_DIR}/{stem}.csv"
    git = ["git", f"--git-dir={fev / '.git'}" if (fev / ".git").exists() else f"--git-dir={fev}"]
    commit = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True)
    if (fev / relative).exists():
        text = (fev / relative).read_text()
    else:
        text = subprocess.run(
            [*git, "show", f"HEAD:{relative}"], capture_output=True, text=True, check=True
        ).stdout
    return pd.read_csv(io.StringIO(text)), commit.stdout.strip()


def aggregate(fev: Path) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """(per-dataset scores, relative aggregates, fev commit)."""
    naive, commit = read_results(fev, "seasonal_naive")
    naive = naive.set_index("task_name").loc[list(TASKS), ["WQL", "MASE"]]
    rows, aggregates = [], []
    for stem, (name, params) in MODELS.items():
        table = read_results(fev, stem)[0].set_index("task_name")
        if not set(TASKS) <= set(table.index):
            continue
        scores = table.loc[list(TASKS), ["WQL", "MASE"]]
        for task, row in scores.iterrows():
            rows.append({"model": name, "dataset": TASKS[task], **row.to_dict()})
        ratio = scores / naive
        aggregates.append(
            {
                "model": name,
                "params": params,
                "rel_WQL": float(np.exp(np.log(ratio["WQL"]).mean())),
                "rel_MASE": float(np.exp(np.log(ratio["MASE"]).mean())),
            }
        )
    return pd.DataFrame(rows), pd.DataFrame(aggregates), commit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fev", type=Path, required=True, help="autogluon/fev checkout")
    args = parser.parse_args()
    per_dataset, agg, commit = aggregate(args.fev)
    source = f"https://github.com/autogluon/fev/tree/{commit}/{RESULTS_DIR}"
    markdown = "\n\n".join(
        [
            "# Public zero-shot models on the 7 datasets (fev's published results)",
            f"Source: {source}. One window per series, WQL over quantiles 0.1..0.9, MASE; "
            "aggregate = geometric mean over the 7 datasets of the score relative to fev's "
            "seasonal naive (our convention).",
            markdown_table(agg),
            "## Per dataset\n\n" + markdown_table(per_dataset),
        ]
    )
    payload = {
        "source": source,
        "aggregate": agg.to_dict(orient="records"),
        "per_dataset": per_dataset.to_dict(orient="records"),
    }
    write_results("public_zero_shot", payload, markdown)


if __name__ == "__main__":
    main()
