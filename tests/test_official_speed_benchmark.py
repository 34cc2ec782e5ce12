"""The official-code speed benchmark's plumbing: its runner lays out the official scripts and
parses their RESULT lines; its FLOP count is the linear layers' weights."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from benchmarks.official_arch_speed import Official, matmul_flops_per_token


def fake_official(tmp_path: Path) -> tuple[Path, Path]:
    """A stand-in official checkout and bench folder whose scripts print RESULT lines."""
    src = tmp_path / "src"
    (src / "lag_llama").mkdir(parents=True)
    bench = tmp_path / "bench"
    bench.mkdir()
    (bench / "common.py").write_text("PRED_LEN = 48\n")
    (bench / "bench_train.py").write_text(
        "import os, sys\n"
        "assert os.path.isdir('src/lag_llama') and os.environ['SHARED_DATASETS']\n"
        "print('batch shapes ...')\n"
        "print(f'RESULT manual batches_timed={sys.argv[2]} compute_mean=0.8 compute_median=0.75')\n"
    )
    return src, bench


def test_official_runner_reads_the_training_result(tmp_path: Path) -> None:
    src, bench = fake_official(tmp_path)
    official = Official(src, Path(sys.executable), bench, tmp_path)
    folder = official.folder
    try:
        assert (folder / "official_predict.py").exists() and (folder / "calibration.py").exists()
        result = official.training()
    finally:
        official.close()
    assert result["step_s"] == 0.75 and result["calib_gflops"] > 0
    assert not folder.exists()


def test_official_runner_names_a_failing_script(tmp_path: Path) -> None:
    src, bench = fake_official(tmp_path)
    (bench / "bench_train.py").write_text("raise SystemExit('no lightning here')\n")
    official = Official(src, Path(sys.executable), bench, tmp_path)
    try:
        with pytest.raises(RuntimeError, match="(?s)official bench_train.py failed.*no lightning"):
            official.training()
    finally:
        official.close()


def test_official_runner_rejects_a_folder_without_the_package(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="no lag_llama"):
        Official(tmp_path, Path(sys.executable), tmp_path, tmp_path)


def test_matmul_flops_count_every_linear_weight() -> None:
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    assert matmul_flops_per_token(net) == 2 * (3 * 4 + 4 * 2)
