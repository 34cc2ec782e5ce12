"""``lagllama pretrain``: one resumable chunk of pretraining from a config file."""

from __future__ import annotations

import argparse
from pathlib import Path

from lagllama.cli.arguments import hardware_arguments


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``pretrain``."""
    p = sub.add_parser(
        "pretrain",
        help="pretrain one frequency-independent Lag-Llama on a corpus (resumable, chunked)",
        description="Pretrain Lag-Llama from a JSON/TOML config (model size, data mix, steps, "
        "batch size, lr, devices/num_nodes/strategy, output dir). Each run stops after "
        "--max-minutes and checkpoints; re-running the same command resumes from "
        "OUTPUT/checkpoints/last.ckpt. Example: lagllama pretrain --config configs/pretrain_small.json",
    )
    p.add_argument("--config", type=Path, required=True, help="pretraining config (.json/.toml)")
    p.add_argument(
        "--max-minutes",
        type=float,
        help="wall-clock minutes for this chunk (default: the config's chunk_minutes, 45)",
    )
    p.add_argument(
        "--stop-at-step",
        type=int,
        metavar="N",
        help="end this chunk at optimiser step N (the lr schedule still follows `steps`)",
    )
    p.add_argument(
        "--seed",
        type=int,
        help="another pretraining seed of the config's recipe: its name and output folder "
        "get a -seedN suffix",
    )
    p.add_argument(
        "--export",
        type=Path,
        metavar="DIR",
        help="after training, export the last checkpoint (safetensors + config JSON) into DIR",
    )
    hardware_arguments(p)
    p.set_defaults(func=cmd_pretrain)


def cmd_pretrain(args: argparse.Namespace) -> None:
    """``lagllama pretrain``: one resumable chunk of pretraining (optionally export it)."""
    from lagllama.pretraining.config import PretrainConfig
    from lagllama.pretraining.train import run_pretraining

    config = PretrainConfig.load(args.config)
    for key in ("accelerator", "devices", "precision"):
        if getattr(args, key) is not None:
            value = getattr(args, key)
            setattr(config, key, int(value) if key == "devices" and value.isdigit() else value)
    if args.seed is not None and args.seed != config.seed:
        config.seed = args.seed
        config.name = f"{config.name}-seed{args.seed}"
        config.output_dir = f"{config.output_dir}-seed{args.seed}"
    summary = run_pretraining(config, max_minutes=args.max_minutes, stop_at_step=args.stop_at_step)
    if args.export is not None:
        from lagllama.pretrained import export_checkpoint

        files = export_checkpoint(summary["checkpoint"], args.export, name=config.name)
        print("exported " + ", ".join(str(f) for f in files))
