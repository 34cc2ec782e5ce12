"""The scaling benchmark reads a weights-only snapshot by name (a run's committed snapshot)."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.scaling import describe
from lagllama.pretrained import checkpoint_path, export_checkpoint


def test_describe_reads_a_snapshot_by_name(tmp_path: Path) -> None:
    ckpt = checkpoint_path("lagllama-small")  # a shipped model, as a Lightning checkpoint
    export_checkpoint(ckpt, tmp_path, name="renamed", steps=1234)
    info = describe("renamed", cpu_hours=None, directory=tmp_path)
    assert info["run"] == "renamed" and info["step"] == 1234
    assert info["parameters"] == 275075
    with pytest.raises(FileNotFoundError, match="no pretrained model 'renamed'"):
        describe("renamed", cpu_hours=None)  # not a shipped model
