"""Shared helpers for benchmark scripts: data location, machine description, result files."""

from __future__ import annotations

import json
import os
import platform
import sys
from pathlib import Path
from typing import Any

import torch

from lagllama.settings import shared_datasets_dir

RESULTS = Path(__file__).resolve().parent / "results"


def require_dataset(name: str) -> Path:
    """The shared data folder holding ``name``, or exit cleanly (status 0) when it is absent."""
    root = shared_datasets_dir()
    if not (root / name).exists():
        print(f"skipped: dataset {name!r} not found under {root} (set LAGLLAMA_SHARED_DATASETS)")
        sys.exit(0)
    return root


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def write_results(name: str, payload: dict[str, Any], markdown: str) -> None:
    """Write ``results/<name>.json`` and ``results/<name>.md`` and echo the markdown."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    payload = {"machine": machine(), **payload}
    (RESULTS / f"{name}.json").write_text(json.dumps(payload, indent=2, default=str) + "\n")
    info = payload["machine"]
    footer = f"\n\nMachine: {info['cpu']}, {info['cores']} cores, torch {info['torch']}, no GPU.\n"
    (RESULTS / f"{name}.md").write_text(markdown.rstrip() + footer)
    print(markdown + footer)
