"""Mixed precision: the parts of a network that stay in float32 under autocast.

Under bf16/fp16 autocast the decoder blocks' matrix products run in half precision (fast on
GPUs and on CPUs with bf16 units), while the input embedding (raw lag values, whose relative
precision matters), the distribution head (log-likelihoods) and, on the CPU, attention stay
in float32.
"""

from __future__ import annotations

import contextlib

import torch

HALF = (torch.bfloat16, torch.float16)


def float32_region(device: torch.device) -> contextlib.AbstractContextManager:
    """A context in which autocast is off for ``device`` (so ops run in their inputs' dtype)."""
    return torch.autocast(device.type, enabled=False)
