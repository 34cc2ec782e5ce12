"""The chunk log of a pretraining run: how far it got, what each chunk cost, and the
callbacks that end a chunk and keep weights along the way.

Every chunk appends a row to ``OUTPUT/chunks.jsonl`` (steps before and after, wall and CPU
seconds, threads, devices), so CPU-hours can be read at any step (:func:`cpu_hours_at`); a run
restarted from a snapshot records the step it began at in ``OUTPUT/offset.json``.
"""

from __future__ import annotations

import json
import resource
import time
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.utilities.exceptions import SIGTERMException

LAST = "last.ckpt"
#: Step a run restarted from a snapshot began at (Lightning counts from 0 again).
OFFSET = "offset.json"


def cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


class ChunkTimer(pl.Callback):
    """Stop after ``seconds`` of wall time (decided on rank 0, broadcast to all ranks) and
    always leave ``checkpoints/last.ckpt`` behind, so the next run resumes."""

    def __init__(self, seconds: float, stop_at_step: int | None = None) -> None:
        self.seconds = seconds
        self.stop_at_step = stop_at_step
        self.start = time.monotonic()

    def on_train_start(self, trainer, pl_module) -> None:
        self.start = time.monotonic()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        over = time.monotonic() - self.start > self.seconds
        if self.stop_at_step is not None and trainer.global_step >= self.stop_at_step:
            over = True
        if trainer.world_size > 1:
            over = bool(trainer.strategy.broadcast(over, src=0))
        if over:
            trainer.should_stop = True

    def on_train_end(self, trainer, pl_module) -> None:
        trainer.save_checkpoint(Path(trainer.default_root_dir) / "checkpoints" / LAST)

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        # SIGTERM (e.g. a cluster's time limit) arrives between steps: keep the progress
        if isinstance(exception, SIGTERMException) and trainer.world_size == 1:
            self.on_train_end(trainer, pl_module)


class KeepWeights(pl.Callback):
    """Weights-only ``OUTPUT/steps/step-N.ckpt`` every ``every`` optimiser steps, N counted
    from the start of the run (snapshot offset included); loadable by ``from_checkpoint``."""

    def __init__(self, folder: Path, every: int, offset: int) -> None:
        self.folder, self.every, self.offset = folder, every, offset

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        step = self.offset + trainer.global_step
        if trainer.global_rank != 0 or step % self.every:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"step-{step}.ckpt"
        payload = {
            "state_dict": {k: v.detach().cpu() for k, v in pl_module.state_dict().items()},
            "hyper_parameters": {"model_kwargs": pl_module.config.to_dict()},
            "global_step": step,
        }
        torch.save(payload, path.with_suffix(".tmp"))
        path.with_suffix(".tmp").replace(path)


def cpu_hours_at(output_dir: str | Path, step: int) -> float:
    """CPU-hours a run had spent when it reached ``step`` (from ``chunks.jsonl``; steps
    within a chunk are taken as equally expensive). A step past the last logged chunk (one
    still running logs itself when it ends) is an error, not an undercount."""
    path = Path(output_dir) / "chunks.jsonl"
    rows = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
    logged = max((row["steps"] for row in rows), default=0)
    if step > logged:
        raise ValueError(
            f"step {step} is past the chunks logged in {path} (up to step {logged}): its chunk "
            "has not finished; measure after it ends, or give the CPU-hours explicitly"
        )
    seconds = 0.0
    for row in sorted(rows, key=lambda r: r["steps_before"]):
        done = row["steps"] - row["steps_before"]
        if done <= 0:
            continue
        share = min(1.0, max(0.0, (step - row["steps_before"]) / done))
        seconds += share * row["cpu_s"]
    return seconds / 3600.0


def run_offset(out: Path) -> int:
    """Step at which a run restarted from a snapshot began (0 for a run from scratch)."""
    path = out / OFFSET
    return int(json.loads(path.read_text())["step"]) if path.exists() else 0


def steps_done(path: Path) -> int:
    """Optimiser steps behind ``OUTPUT/checkpoints/last.ckpt`` (plus a snapshot's offset)."""
    out = path.parent.parent
    if not path.exists():
        return run_offset(out)
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    return run_offset(out) + int(ckpt.get("global_step", 0))


def record_chunk(cfg, out, last, done, wall0, cpu0, world_size, verbose) -> dict[str, Any]:
    steps = steps_done(last)
    summary = {
        "chunk_start": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(wall0)),
        "steps_before": done,
        "steps": steps,
        "finished": steps >= cfg.steps,
        "wall_s": round(time.time() - wall0, 1),
        "cpu_s": round(cpu_seconds() - cpu0, 1),
        "torch_threads": torch.get_num_threads(),
        "world_size": world_size,
        "devices": cfg.devices,
        "strategy": cfg.strategy,
        "checkpoint": str(last),
    }
    with (out / "chunks.jsonl").open("a") as log:
        log.write(json.dumps(summary) + "\n")
    if verbose:
        print(json.dumps(summary))
    return summary


def training_totals(output_dir: str | Path) -> dict[str, float]:
    """Sum of wall and CPU time over all chunks of a run (from ``chunks.jsonl``)."""
    path = Path(output_dir) / "chunks.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {
        "chunks": len(rows),
        "steps": max((r["steps"] for r in rows), default=0),
        "wall_s": sum(r["wall_s"] for r in rows),
        "cpu_s": sum(r["cpu_s"] for r in rows),
    }
