"""The ``lagllama`` command line: subcommands, reports, exit codes and error messages."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lagllama.cli import main

H = 6


@pytest.fixture
def wide_csv(tmp_path: Path) -> Path:
    """Two monthly series (seasonality 12) in wide form, with one missing value."""
    t = np.arange(72)
    frame = pd.DataFrame(
        {
            "timestamp": pd.date_range("2015-01-01", periods=72, freq="MS"),
            "north": 50 + 10 * np.sin(2 * np.pi * t / 12) + 0.2 * t,
            "south": 30 + 5 * np.cos(2 * np.pi * t / 12),
        }
    )
    frame.loc[20, "north"] = np.nan
    path = tmp_path / "sales.csv"
    frame.to_csv(path, index=False)
    return path


def _error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("lagllama: error: ") and "\n" not in err, err
    return err


def test_backtest_file_writes_reports(wide_csv: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "report"
    args = ["backtest", "--file", str(wide_csv), "--prediction-length", str(H), "--windows", "2"]
    assert main([*args, "--models", "seasonal-naive,auto-theta", "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "auto-theta" in printed and "report written to" in printed
    table = pd.read_csv(out / "results.csv")
    assert set(table["model"]) == {"seasonal-naive", "auto-theta"}
    row = table[(table["dataset"] == "sales") & (table["model"] == "auto-theta")].iloc[0]
    # one series has a NaN, present in the inputs of both windows
    assert row["num_series"] == 2 and row["windows"] == 2 and row["imputed"] == 2
    config = json.loads((out / "report.json").read_text())["config"]
    assert config["datasets"][0] == {
        "name": "sales",
        "prediction_length": H,
        "freq": "M",
        "season_length": 12,
        "windows": 2,
        "too_short": [],
    }
    assert "# Backtest report" in (out / "report.md").read_text()


def test_backtest_named_dataset(shared_datasets: Path, capsys) -> None:
    args = ["backtest", "--dataset", "m1_quarterly", "--data-dir", str(shared_datasets)]
    assert main([*args, "--models", "seasonal-naive", "--no-download"]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.strip().startswith("m1_"))
    assert line.split()[2:4] == ["0.1495", "2.0776"]  # Chronos: 0.150 / 2.078


def test_datasets_lists_local_availability(shared_datasets: Path, capsys) -> None:
    assert main(["datasets", "--data-dir", str(shared_datasets)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"data folder: {shared_datasets}"
    status = dict(line.split() for line in lines[1:])
    assert status["m1_monthly"] == "available" and status["m5"] == "missing"
    assert main(["datasets", "--data-dir", str(shared_datasets), "--available"]) == 0
    listed = dict(line.split() for line in capsys.readouterr().out.splitlines()[1:])
    assert set(listed.values()) == {"available"} and "nn5_daily_with_missing" in listed


def test_plot_writes_png(wide_csv: Path, tmp_path: Path, capsys) -> None:
    image = tmp_path / "fan.png"
    args = ["plot", "--file", str(wide_csv), "--prediction-length", str(H), "--output", str(image)]
    assert main([*args, "--model", "seasonal-naive"]) == 0
    assert image.read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize(
    "args, message",
    [
        (["backtest"], "give at least one --dataset NAME or --file PATH"),
        (["backtest", "--file", "{csv}"], "--prediction-length is required"),
        (["backtest", "--file", "{csv}", "--prediction-length", "6", "--models", "x"], "'x'"),
        (["backtest", "--file", "{missing}", "--prediction-length", "6"], "no such file"),
        (["backtest", "--dataset", "nope", "--no-download"], "unknown dataset 'nope'"),
        (["backtest", "--file", "{notime}", "--prediction-length", "6"], "time column"),
        (["plot", "--file", "{csv}", "--prediction-length", "6", "--output", "x.gif"], ".gif"),
        (
            ["zero-shot", "--file", "{csv}", "--prediction-length", "6", "--checkpoint", "no.ckpt"],
            "checkpoint not found",
        ),
        (
            ["zero-shot", "--file", "{csv}", "--prediction-length", "6"]
            + ["--checkpoint", "lagllama-small+no.ckpt"],
            "checkpoint not found: no.ckpt",
        ),
        (
            ["fine-tune", "--file", "{csv}", "--prediction-length", "6"]
            + ["--checkpoint", "lagllama-small+nosuch"],
            "unknown model 'nosuch'",
        ),
    ],
)
def test_bad_input_exits_2_with_one_line(
    args: list[str], message: str, wide_csv: Path, tmp_path: Path, capsys
) -> None:
    notime = tmp_path / "notime.csv"
    notime.write_text("date,a\n2020-01-01,1\n2020-01-02,2\n2020-01-03,3\n")
    paths = {"csv": wide_csv, "missing": tmp_path / "missing.csv", "notime": notime}
    assert main([a.format(**paths) for a in args]) == 2
    assert message in _error_line(capsys)


def test_console_script_exit_code(tmp_path: Path) -> None:
    script = Path(sys.executable).with_name("lagllama")
    done = subprocess.run(
        [str(script), "backtest", "--file", str(tmp_path / "none.csv"), "--prediction-length", "3"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    assert done.stderr.strip() == f"lagllama: error: no such file: {tmp_path / 'none.csv'}"


def test_help_lists_every_subcommand(capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    for command in ("backtest", "plot", "datasets", "zero-shot", "train", "fine-tune"):
        assert command in out


# ------------------------------------------------------- Lag-Llama subcommands
TINY = ["--batch-size", "8", "--num-samples", "10", "--context-length", "12"]
TRAIN = ["--max-epochs", "1", "--num-batches-per-epoch", "2"]


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """A one-layer Lag-Llama checkpoint written by a 2-batch training run."""
    estimators = pytest.importorskip("lagllama.estimators.lag_llama")
    root = tmp_path_factory.mktemp("ckpt")
    t = np.arange(60, dtype=np.float32)
    series = [{"start": pd.Period("2015-01", "M"), "target": 50 + np.sin(t / 2) * 5}]
    estimator = estimators.LagLlamaEstimator(
        prediction_length=H,
        freq="M",
        context_length=12,
        n_layer=1,
        n_head=1,
        n_embd_per_head=8,
        batch_size=8,
        num_batches_per_epoch=2,
        trainer_kwargs={
            "max_epochs": 1,
            "accelerator": "cpu",
            "logger": False,
            "default_root_dir": str(root),
            "enable_progress_bar": False,
        },
    )
    estimator.train(series)
    (checkpoint,) = root.glob("**/*.ckpt")
    return checkpoint


def _scores(out: Path) -> pd.DataFrame:
    table = pd.read_csv(out / "results.csv")
    return table[table["dataset"] == "sales"].set_index("model")


def test_zero_shot_and_backtest_with_checkpoint(
    tiny_checkpoint: Path, wide_csv: Path, tmp_path: Path
) -> None:
    data = [
        "--file",
        str(wide_csv),
        "--prediction-length",
        str(H),
        "--checkpoint",
        str(tiny_checkpoint),
    ]
    assert main(["zero-shot", *data, *TINY, "--output", str(tmp_path / "zs")]) == 0
    zero_shot = _scores(tmp_path / "zs")
    assert list(zero_shot.index) == ["seasonal-naive", "lag-llama"]
    assert np.isfinite(
        zero_shot.loc["lag-llama", ["WQL", "MASE", "coverage_80"]].astype(float)
    ).all()
    args = ["backtest", *data, *TINY, "--models", "lag-llama", "--output", str(tmp_path / "bt")]
    assert main(args) == 0
    assert "lag-llama" in _scores(tmp_path / "bt").index
    plus = tmp_path / "a+b.ckpt"  # one file with a + in its name is one checkpoint
    shutil.copy(tiny_checkpoint, plus)
    data[-1] = str(plus)
    assert main(["zero-shot", *data, *TINY, "--output", str(tmp_path / "plus")]) == 0  # not a, b
    assert np.isfinite(_scores(tmp_path / "plus").loc["lag-llama", "WQL"])
    data[-1] = f"{tiny_checkpoint}+lagllama-small"  # an ensemble of two members
    assert main(["zero-shot", *data, *TINY, "--output", str(tmp_path / "ens")]) == 0
    ensemble = _scores(tmp_path / "ens").loc["lag-llama", "WQL"]
    assert np.isfinite(ensemble) and ensemble != zero_shot.loc["lag-llama", "WQL"]
    data[-1] = f"{tiny_checkpoint}+seasonal-naive"  # a hybrid: quantiles averaged
    assert main(["zero-shot", *data, *TINY, "--output", str(tmp_path / "hybrid")]) == 0
    assert np.isfinite(_scores(tmp_path / "hybrid").loc["lag-llama", "WQL"])
    data[-1] = str(tiny_checkpoint)
    bf16 = ["zero-shot", *data, *TINY, "--sampling-precision", "bf16"]
    assert main([*bf16, "--output", str(tmp_path / "bf16")]) == 0
    assert np.isfinite(_scores(tmp_path / "bf16").loc["lag-llama", "WQL"])


@pytest.mark.parametrize("command", ["train", "fine-tune"])
def test_train_and_fine_tune_save_predictors(
    command: str, tiny_checkpoint: Path, wide_csv: Path, tmp_path: Path
) -> None:
    out = tmp_path / command
    args = [command, "--file", str(wide_csv), "--prediction-length", str(H), *TINY, *TRAIN]
    if command == "fine-tune":
        args += ["--checkpoint", str(tiny_checkpoint)]
    assert main([*args, "--output", str(out)]) == 0
    name = "lag-llama-fine-tuned" if command == "fine-tune" else "lag-llama-trained"
    assert np.isfinite(_scores(out).loc[name, "WQL"])
    assert (out / "models" / "sales" / "predictor.json").exists()


def test_fine_tune_defaults_to_the_shipped_model_and_reports_the_recipe(
    wide_csv: Path, tmp_path: Path, capsys
) -> None:
    out = tmp_path / "ft"
    args = ["fine-tune", "--file", str(wide_csv), "--prediction-length", str(H)]
    args += ["--batch-size", "8", "--num-samples", "10", *TRAIN, "--output", str(out)]
    args += ["--accelerator", "cpu", "--devices", "1", "--precision", "32-true"]
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "fine-tuned sales: validation WQL" in err and "steps in" in err
    assert np.isfinite(_scores(out).loc["lag-llama-fine-tuned", "WQL"])


def test_unknown_checkpoint_names_the_shipped_models(wide_csv: Path, capsys) -> None:
    args = ["fine-tune", "--file", str(wide_csv), "--prediction-length", str(H)]
    assert main([*args, "--checkpoint", "lagllama-huge"]) == 2
    assert "lagllama-huge" in capsys.readouterr().err


@pytest.mark.parametrize("baseline", ["", "+seasonal-naive"])
def test_a_fine_tuning_run_that_keeps_the_start_forecasts_as_zero_shot(
    baseline: str, tiny_checkpoint: Path, wide_csv: Path, tmp_path: Path
) -> None:
    """Each tuned member of ``a+b`` draws its share of ``--num-samples`` (and of a hybrid's
    validation paths), as zero-shot does, with the same per-series seeds: a run that keeps
    the start forecasts exactly as zero-shot, weights of a hybrid included."""
    from lagllama.cli import build_parser
    from lagllama.cli.evaluate import load_tasks
    from lagllama.evaluation.predictors import lag_llama_factory

    second = tmp_path / "second.ckpt"
    shutil.copy(tiny_checkpoint, second)
    spec = f"{tiny_checkpoint}+{second}{baseline}"
    args = ["fine-tune", "--file", str(wide_csv), "--prediction-length", str(H), *TINY]
    args += ["--checkpoint", spec, "--max-steps", "0", "--output", str(tmp_path / "ft")]
    parsed = build_parser().parse_args(args)
    task = load_tasks(parsed)[0]
    inputs = list(task.train_data())
    zero_shot = next(lag_llama_factory(parsed)(task).predict(inputs))
    tuned = next(lag_llama_factory(parsed, train=True)(task).predict(inputs))
    if baseline:  # quantile forecasts of the hybrid, its weights fitted on the inputs
        np.testing.assert_allclose(tuned.forecast_array, zero_shot.forecast_array, rtol=1e-5)
    else:
        assert tuned.samples.shape == zero_shot.samples.shape == (10, H)
        np.testing.assert_allclose(tuned.samples, zero_shot.samples, rtol=1e-5)
