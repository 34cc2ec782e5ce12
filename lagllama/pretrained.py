"""Pretrained Lag-Llama weights shipped inside the package (``lagllama/checkpoints/``).

A shipped model ``NAME`` is two files: ``NAME.safetensors`` (the Lightning module's state
dict) and ``NAME.json`` (the architecture ``model_kwargs``, the weights' SHA-256 and how the
model was trained). Loading always verifies the SHA-256, so a truncated or corrupted file
fails with a clear error instead of producing silently wrong forecasts.

    from lagllama.estimators import LagLlamaEstimator
    predictor = LagLlamaEstimator.from_pretrained(prediction_length=12, freq="M").create_zero_shot_predictor()
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

#: The names a user needs (``lagllama models``), each the weights of a shipped checkpoint:
#: a fast single model (the best single member of the default, by ``benchmarks/dev_broad.py``)
#: and the most accurate one. Every checkpoint's own name loads too.
ALIASES = {"lagllama-fast": "lagllama-v3-small-seed1", "lagllama-large": "lagllama-v2-large"}
#: The one network ``LagLlamaEstimator.from_pretrained()`` loads: the default's best member.
DEFAULT_NAME = "lagllama-fast"
#: Folder of the shipped checkpoints (package data).
CHECKPOINTS_DIR = Path(__file__).resolve().parent / "checkpoints"
#: Where Lightning-format copies for ``init_checkpoint`` are materialised.
CACHE_ENV = "LAGLLAMA_CACHE_DIR"


def portable_model_kwargs(model_kwargs: dict[str, Any]) -> dict[str, Any]:
    """``model_kwargs`` without optional fields left at their defaults: the original
    Lag-Llama's fields (``LagLlamaConfig.core_fields()``) are always stored, options added
    later only when set, so a checkpoint stays loadable by versions with and without them."""
    from dataclasses import MISSING, fields

    from lagllama.estimators.lag_llama.config import LagLlamaConfig

    core = LagLlamaConfig.core_fields()
    defaults = {}
    for f in fields(LagLlamaConfig):
        if f.default is not MISSING:
            defaults[f.name] = f.default
    return {
        k: v for k, v in model_kwargs.items() if k in core or k not in defaults or v != defaults[k]
    }


class ChecksumError(ValueError):
    """The weights file does not match the SHA-256 recorded in its config."""


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def available_models(directory: str | Path | None = None) -> list[str]:
    """Names of the checkpoints in ``directory`` (default: the shipped ones)."""
    folder = Path(directory) if directory is not None else CHECKPOINTS_DIR
    return sorted(
        p.stem for p in folder.glob("*.json") if (folder / f"{p.stem}.safetensors").exists()
    )


def available_names() -> list[str]:
    """What a model may be called: the aliases, then every shipped checkpoint's name."""
    return [*ALIASES, *available_models()]


def _files(name: str, directory: str | Path | None) -> tuple[Path, Path]:
    folder = Path(directory) if directory is not None else CHECKPOINTS_DIR
    name = ALIASES.get(name, name)
    config, weights = folder / f"{name}.json", folder / f"{name}.safetensors"
    if not config.is_file() or not weights.is_file():
        known = available_models(folder)
        raise FileNotFoundError(
            f"no pretrained model {name!r} in {folder} (need {config.name} and {weights.name}); "
            f"available: {known or 'none'}"
        )
    return config, weights


def read_card(name: str = DEFAULT_NAME, directory: str | Path | None = None) -> dict[str, Any]:
    """The config JSON of a shipped model (architecture, SHA-256, training metadata)."""
    config, _ = _files(name, directory)
    return json.loads(config.read_text())


def load_pretrained(
    name: str = DEFAULT_NAME, directory: str | Path | None = None
) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """``(config, state_dict)`` of a shipped model, after checking the weights' SHA-256.

    ``config["model_kwargs"]`` rebuilds the network (:class:`LagLlamaConfig`); the state dict
    belongs to :class:`LagLlamaLightningModule`. Raises :class:`ChecksumError` (a
    ``ValueError``) when the weights file is corrupted or not the one the config describes.
    """
    from safetensors.torch import load_file

    from lagllama.estimators.lag_llama.config import LagLlamaConfig

    config_path, weights = _files(name, directory)
    config = json.loads(config_path.read_text())
    expected = config.get("sha256")
    actual = sha256_file(weights)
    if expected != actual:
        raise ChecksumError(
            f"SHA-256 mismatch for {weights}: expected {expected}, got {actual}; the file is "
            "corrupted or does not belong to this config -- reinstall the package or re-export"
        )
    LagLlamaConfig.from_dict(config["model_kwargs"])  # validates the architecture
    return config, load_file(weights)


def _cache_dir() -> Path:
    env = os.environ.get(CACHE_ENV)
    folder = Path(env) if env else Path.home() / ".cache" / "lagllama"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / ".write-test"
        probe.touch()
        probe.unlink()
    except OSError:
        folder = Path(tempfile.gettempdir()) / "lagllama-cache"
        folder.mkdir(parents=True, exist_ok=True)
    return folder


def checkpoint_path(name: str = DEFAULT_NAME, directory: str | Path | None = None) -> Path:
    """A Lightning-format ``.ckpt`` (``weights_only``-loadable) of a shipped model, for
    ``LagLlamaEstimator.from_checkpoint`` / ``init_checkpoint``; verified, then cached by hash."""
    from lagllama.estimators.lag_llama.config import LagLlamaConfig

    config, state = load_pretrained(name, directory)
    # all fields of this code version's config, so from_checkpoint finds every key it reads
    model_kwargs = LagLlamaConfig.from_dict(config["model_kwargs"]).to_dict()
    version = hashlib.sha256(json.dumps(model_kwargs, sort_keys=True).encode()).hexdigest()
    path = _cache_dir() / f"{name}-{config['sha256'][:16]}-{version[:8]}.ckpt"
    if not path.exists():
        payload = {
            "state_dict": state,
            "hyper_parameters": {"model_kwargs": model_kwargs},
            "global_step": config.get("training", {}).get("steps", 0),
        }
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        torch.save(payload, tmp)
        os.replace(tmp, path)
    return path


def default_checkpoint_path() -> Path:
    """The checkpoint ``lagllama zero-shot`` uses when no ``--checkpoint`` is given."""
    return checkpoint_path(DEFAULT_NAME)


def export_checkpoint(
    ckpt_path: str | Path,
    directory: str | Path,
    name: str = DEFAULT_NAME,
    extra: dict[str, Any] | None = None,
    steps: int | None = None,
    dtype: torch.dtype | None = None,
) -> list[Path]:
    """Write ``NAME.safetensors`` and ``NAME.json`` (with SHA-256) from a Lightning checkpoint;
    ``dtype`` stores floating-point weights in it (a smaller snapshot).

    ``steps`` overrides the checkpoint's step count (a run restarted from a snapshot counts
    from the snapshot's step). Both files are written to temporary names and then renamed.
    """
    from safetensors.torch import save_file

    ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    state = {
        k: (v.to(dtype) if dtype is not None and v.is_floating_point() else v)
        .detach()
        .contiguous()
        .clone()
        for k, v in ckpt["state_dict"].items()
    }
    hparams = ckpt["hyper_parameters"]
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    weights = folder / f"{name}.safetensors"
    tmp_weights = folder / f".{name}.safetensors.tmp"
    save_file(state, str(tmp_weights), metadata={"format": "pt", "name": name})
    training = {
        "steps": int(ckpt.get("global_step", 0)) if steps is None else int(steps),
        "parameters": int(sum(v.numel() for v in state.values())),
        **{
            k: hparams[k]
            for k in ("lr", "weight_decay", "warmup_steps", "augmentation")
            if k in hparams
        },
    }
    run_config = Path(ckpt_path).resolve().parent.parent / "config.json"
    if run_config.exists():
        training["pretrain_config"] = json.loads(run_config.read_text())
    card = {
        "name": name,
        "format": "safetensors state_dict of lagllama.estimators.lag_llama.LagLlamaLightningModule",
        "model_kwargs": portable_model_kwargs(hparams["model_kwargs"]),
        "sha256": sha256_file(tmp_weights),
        "training": training,
        **(extra or {}),
    }
    config = folder / f"{name}.json"
    tmp_config = folder / f".{name}.json.tmp"
    tmp_config.write_text(json.dumps(card, indent=2) + "\n")
    os.replace(tmp_weights, weights)
    os.replace(tmp_config, config)
    return [weights, config]
