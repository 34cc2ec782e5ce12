"""Chunked, resumable Lightning pretraining of one frequency-independent Lag-Llama.

``run_pretraining(config)`` trains until ``config.steps`` optimiser steps are done or the
chunk's time is up (``max_minutes``), checkpointing to ``OUTPUT/checkpoints/last.ckpt``;
calling it again with the same config resumes from that checkpoint (optimiser, scheduler
and step counter included). Lightning's ``devices``/``num_nodes``/``strategy`` scale it to
many GPUs or nodes; every process draws different windows (seeded by its rank).

With ``snapshot_dir`` every chunk also exports a weights-only snapshot (safetensors, with
the step and the chunk log) meant to be committed: on a new machine, where the run folder
is gone, the run restarts from the snapshot's weights and step with a fresh optimiser and
a short re-warm-up, so at most one chunk is lost. With ``validation_share`` whole real
series are held out and a validation loss on fixed windows of them is logged.
"""

from __future__ import annotations

import itertools
import json
import time
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from gluonts.dataset.loader import as_stacked_batches
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger

from lagllama.estimators.lag_llama.lightning_module import LagLlamaLightningModule
from lagllama.pretraining.chunks import (
    LAST,
    OFFSET,
    ChunkTimer,
    KeepWeights,
    cpu_seconds,
    record_chunk,
    run_offset,
    steps_done,
    training_totals,
)
from lagllama.pretraining.config import PretrainConfig
from lagllama.pretraining.corpus import build_corpus, make_entry, split_holdout
from lagllama.pretraining.dataset import PretrainingMixture
from lagllama.pretraining.mixup import TSMixup
from lagllama.pretraining.synthetic import SeriesSampler

#: Validation windows are drawn with this seed whatever the run's seed, so runs compare.
VALIDATION_SEED = 12345
#: Sources made on demand rather than read.
GENERATED_SOURCES = ("synthetic", "tsmixup")


def make_estimator(cfg: PretrainConfig):
    """The ``LagLlamaEstimator`` being pretrained (frequency-independent lags)."""
    from gluonts.transform import ValidationSplitSampler

    from lagllama.estimators.lag_llama import LagLlamaEstimator

    return LagLlamaEstimator(
        prediction_length=cfg.prediction_length,
        context_length=cfg.context_length,
        lags_seq="lag-llama",
        n_layer=cfg.n_layer,
        n_head=cfg.n_head,
        n_embd_per_head=cfg.n_embd_per_head,
        dropout=cfg.dropout,
        scaling=cfg.scaling,
        time_features=cfg.time_features,
        observed_lag_features=cfg.observed_lag_features,
        distr_output=cfg.distr_output,
        augmentation=cfg.augmentation or None,
        lr=cfg.lr,
        weight_decay=cfg.weight_decay,
        warmup_steps=cfg.warmup_steps,
        batch_size=cfg.batch_size,
        num_batches_per_epoch=cfg.steps_per_epoch,
        torch_compile=cfg.torch_compile,
        # each mixture entry is cut so that exactly its last h points are the future
        train_sampler=ValidationSplitSampler(min_future=cfg.prediction_length),
    )


def load_corpus(cfg: PretrainConfig, cache_dir: Path | None = None) -> dict[str, list[dict]]:
    """The corpus of the config; synthetic series are cached in ``cache_dir`` (slow to draw)."""
    real = [s for s in cfg.sources if s not in GENERATED_SOURCES and cfg.sources[s] > 0]
    corpus = build_corpus(real, cfg.data_dir, broad_holdout=cfg.broad_holdout) if real else {}
    if cfg.sources.get("synthetic", 0) > 0:
        corpus["synthetic"] = _synthetic(cfg, cache_dir)
    return corpus


def _synthetic(cfg: PretrainConfig, cache_dir: Path | None) -> list[dict]:
    cache = None
    if cache_dir is not None:
        cache = cache_dir / f"synthetic_{cfg.synthetic_series}_seed{cfg.seed}.npz"
        if cache.exists():
            data = np.load(cache)
            meta = json.loads(str(data["meta"]))
            parts = np.split(data["values"], data["offsets"][1:-1])
            return [make_entry(v, f, i) for v, (f, i) in zip(parts, meta)]
    (entries,) = build_corpus(
        ["synthetic"], synthetic_series=cfg.synthetic_series, seed=cfg.seed
    ).values()
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        values = [e["target"] for e in entries]
        offsets = np.cumsum([0] + [len(v) for v in values])
        meta = [(e["start"].freqstr, e["item_id"]) for e in entries]
        tmp = cache.with_suffix(".tmp.npz")
        np.savez(tmp, values=np.concatenate(values), offsets=offsets, meta=json.dumps(meta))
        tmp.replace(cache)
    return entries


class MixtureLoader:
    """Picklable training loader (``ddp_spawn`` ships it to each process): builds the
    GluonTS pipeline lazily in the process that iterates it; each epoch is the next
    ``num_batches_per_epoch`` batches of one endless stream."""

    def __init__(self, estimator, mixture: PretrainingMixture) -> None:
        self.estimator = estimator
        self.mixture = mixture
        self._batches = None

    def __len__(self) -> int:
        return self.estimator.num_batches_per_epoch

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_batches": None}

    def __iter__(self):
        if self._batches is None:
            est = self.estimator
            data = est.create_transformation().apply(self.mixture, is_train=True)
            instances = est._splitter("training").apply(data, is_train=True)
            self._batches = iter(
                as_stacked_batches(
                    instances,
                    batch_size=est.batch_size,
                    field_names=est.training_input_names,
                    output_type=torch.tensor,
                )
            )
        return itertools.islice(self._batches, len(self))


def _start_from_snapshot(cfg: PretrainConfig, out: Path) -> dict[str, torch.Tensor] | None:
    """Weights of the run's snapshot when the run folder has no checkpoint (a new machine);
    records the snapshot's step as the offset and carries its chunk log over."""
    if cfg.snapshot_dir is None or (out / "checkpoints" / LAST).exists():
        return None
    from lagllama.pretrained import available_models, load_pretrained

    if cfg.name not in available_models(cfg.snapshot_dir):
        return None
    card, state = load_pretrained(cfg.name, cfg.snapshot_dir)
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    (out / OFFSET).write_text(json.dumps({"step": card["training"]["steps"]}) + "\n")
    with (out / "chunks.jsonl").open("w") as log:
        for row in card.get("chunks", []):
            log.write(json.dumps(row) + "\n")
    return state


def export_snapshot(cfg: PretrainConfig, out: Path) -> list[Path]:
    """Weights-only snapshot of the run's last checkpoint into ``cfg.snapshot_dir``."""
    from lagllama.pretrained import export_checkpoint

    log = out / "chunks.jsonl"
    chunks = [json.loads(x) for x in log.read_text().splitlines() if x.strip()]
    return export_checkpoint(
        out / "checkpoints" / LAST,
        cfg.snapshot_dir,
        name=cfg.name,
        steps=steps_done(out / "checkpoints" / LAST),
        extra={"chunks": chunks, "totals": training_totals(out)},
        dtype=getattr(torch, cfg.snapshot_dtype),
    )


def validation_batches(
    estimator, held_out: dict[str, list[dict]], cfg: PretrainConfig, past_length: int
) -> torch.utils.data.DataLoader:
    """Fixed validation batches: ``cfg.validation_windows`` windows of held-out series, every
    source equally likely, drawn with :data:`VALIDATION_SEED`."""
    mixture = PretrainingMixture(
        held_out,
        past_length=past_length,
        prediction_length=cfg.prediction_length,
        min_past=cfg.min_past,
        short_history_prob=cfg.short_history_prob,
        seed=VALIDATION_SEED,
    )
    entries = list(itertools.islice(mixture, cfg.validation_windows))
    data = estimator.create_transformation().apply(entries, is_train=True)
    instances = estimator._splitter("training").apply(data, is_train=True)
    batches = as_stacked_batches(
        instances,
        batch_size=estimator.batch_size,
        field_names=estimator.training_input_names,
        output_type=torch.tensor,
    )
    return torch.utils.data.DataLoader(list(batches), batch_size=None)


def run_pretraining(
    cfg: PretrainConfig,
    max_minutes: float | None = None,
    verbose: bool = True,
    stop_at_step: int | None = None,
) -> dict[str, Any]:
    """Train one chunk (or to the end) and return a summary; re-run to continue.

    ``stop_at_step`` ends this chunk at that optimiser step (the learning-rate schedule
    still follows ``cfg.steps``): it reproduces a checkpoint taken in the middle of a run.
    """
    out = Path(cfg.output_dir)
    ckpt_dir = out / "checkpoints"
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2) + "\n")
    last = ckpt_dir / LAST
    snapshot = _start_from_snapshot(cfg, out)
    offset = run_offset(out)
    done = steps_done(last)
    if done >= min(cfg.steps, stop_at_step or cfg.steps):
        if verbose:
            print(f"already finished: {done} of {cfg.steps} steps in {last}")
        return {"steps": done, "finished": True, "checkpoint": str(last), "wall_s": 0.0}

    wall0, cpu0 = time.time(), cpu_seconds()
    pl.seed_everything(cfg.seed + done, workers=True, verbose=False)
    estimator = make_estimator(cfg)
    module = LagLlamaLightningModule(
        model_kwargs=estimator.model_kwargs,
        num_batches_per_epoch=estimator.num_batches_per_epoch,
        schedule_offset=offset,
        rewarmup_steps=cfg.rewarmup_steps if offset else 0,
        **estimator.module_kwargs,
    )
    if snapshot is not None:
        module.load_state_dict(snapshot)
    past_length = module.config.past_length
    corpus = load_corpus(cfg, cache_dir=out / "cache")
    corpus, held_out = split_holdout(corpus, cfg.validation_share)
    makers, refresh = {}, {}
    if cfg.sources.get("tsmixup", 0) > 0:
        real = {k: v for k, v in corpus.items() if k not in GENERATED_SOURCES}
        makers["tsmixup"] = TSMixup(real, cfg.tsmixup_max_components, cfg.tsmixup_alpha)
    if cfg.synthetic_refresh > 0 and "synthetic" in corpus:
        draw = SeriesSampler()

        def new_synthetic(rng: np.random.Generator) -> dict:
            series = draw(rng)
            return make_entry(series["target"], series["freq"], series["item_id"])

        refresh["synthetic"] = (new_synthetic, cfg.synthetic_refresh)
    if verbose:
        sizes = {k: len(v) for k, v in corpus.items()}
        held = {k: len(v) for k, v in held_out.items()}
        params = sum(p.numel() for p in module.parameters())
        print(f"corpus {sizes}, held out {held}; model {params} parameters; at step {done}")
    mixture = PretrainingMixture(
        corpus,
        past_length=past_length,
        prediction_length=cfg.prediction_length,
        source_weights=cfg.sources,
        freq_weights=cfg.freq_weights,
        min_past=cfg.min_past,
        short_history_prob=cfg.short_history_prob,
        seed=cfg.seed,
        offset=done,
        makers=makers,
        refresh=refresh,
    )
    val = validation_batches(estimator, held_out, cfg, past_length) if held_out else None
    loader = MixtureLoader(estimator, mixture)
    minutes = cfg.chunk_minutes if max_minutes is None else max_minutes
    trainer = pl.Trainer(
        max_steps=cfg.steps - offset,
        max_epochs=-1,
        accelerator=cfg.accelerator,
        devices=cfg.devices,
        num_nodes=cfg.num_nodes,
        strategy=cfg.strategy,
        precision=cfg.precision,
        gradient_clip_val=cfg.gradient_clip_val,
        default_root_dir=str(out),
        logger=CSVLogger(str(out), name="logs"),
        callbacks=[
            ModelCheckpoint(
                dirpath=str(ckpt_dir), save_last=True, save_top_k=1, enable_version_counter=False
            ),
            ChunkTimer(minutes * 60.0, None if stop_at_step is None else stop_at_step - offset),
            *(
                [KeepWeights(out / "steps", cfg.keep_every_steps, offset)]
                if cfg.keep_every_steps
                else []
            ),
        ],
        limit_val_batches=None if val else 0,
        check_val_every_n_epoch=cfg.val_every_steps // cfg.steps_per_epoch,
        num_sanity_val_steps=0,
        enable_progress_bar=False,
        enable_model_summary=False,
        log_every_n_steps=max(1, min(50, cfg.steps_per_epoch)),
        use_distributed_sampler=False,
    )
    try:
        trainer.fit(
            module,
            train_dataloaders=loader,
            val_dataloaders=val,
            ckpt_path=str(last) if last.exists() else None,
        )
    finally:  # also record (and snapshot) a chunk ended by SIGTERM
        summary = record_chunk(cfg, out, last, done, wall0, cpu0, trainer.world_size, verbose)
        if cfg.snapshot_dir is not None and trainer.global_rank == 0 and last.exists():
            summary["snapshot"] = [str(p) for p in export_snapshot(cfg, out)]
    return summary
