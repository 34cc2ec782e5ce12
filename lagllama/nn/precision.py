"""Mixed precision: the parts of a network that stay in float32 under autocast.

Under bf16/fp16 autocast the decoder blocks' matrix products run in half precision (fast on
GPUs and on CPUs with bf16 units), while the input embedding (raw lag values, whose relative
precision matters), the distribution head (log-likelihoods) and, on the CPU, attention stay
in float32. Sampling takes the same autocast on request (``sampling_precision="bf16"``);
its default is plain float32. On a CPU without bf16 instructions bf16 is emulated and slower
than float32: sampling and training (:func:`warn_slow_bf16_training`) say so.
"""

from __future__ import annotations

import contextlib
import functools
import warnings
from pathlib import Path

import torch

HALF = (torch.bfloat16, torch.float16)


def float32_region(device: torch.device) -> contextlib.AbstractContextManager:
    """A context in which autocast is off for ``device`` (so ops run in their inputs' dtype)."""
    return torch.autocast(device.type, enabled=False)


#: ``LagLlamaModel.sample``'s precisions: plain float32, or bf16 autocast of the decoder
SAMPLING_PRECISIONS = ("32", "bf16")


def check_sampling_precision(precision: str) -> str:
    """``precision`` if it is one of :data:`SAMPLING_PRECISIONS`, else a ValueError naming it."""
    if precision not in SAMPLING_PRECISIONS:
        raise ValueError(
            f"unknown sampling_precision {precision!r}; choose one of {SAMPLING_PRECISIONS}"
        )
    return precision


@functools.cache
def cpu_has_bf16() -> bool:
    """Whether this CPU has native bf16 arithmetic (AVX-512 BF16 or AMX; read on Linux)."""
    with contextlib.suppress(OSError):
        flags = Path("/proc/cpuinfo").read_text()
        return "avx512_bf16" in flags or "amx_bf16" in flags
    return False


def sampling_autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """bf16 autocast for ``precision="bf16"``; for ``"32"`` a context that changes nothing.

    Warns on a CPU without bf16 instructions, where bf16 is emulated and slower than float32.
    """
    if precision != "bf16":
        return contextlib.nullcontext()
    if device.type == "cpu" and not cpu_has_bf16():
        warnings.warn(
            "sampling_precision='bf16' on a CPU without bf16 instructions (avx512_bf16 or "
            "AMX): expect slower sampling than float32",
            RuntimeWarning,
            stacklevel=2,
        )
    return torch.autocast(device.type, dtype=torch.bfloat16)


def warn_slow_bf16_training(precision: object, device: torch.device) -> None:
    """Warn when a Lightning ``precision`` in bf16 (``bf16-mixed``, ``bf16-true``) trains on a
    CPU without bf16 instructions, where bf16 is emulated (about 13x slower than float32).

    Called by the Lag-Llama and Time-LLM Lightning modules when fitting starts, so ``train``,
    ``fine-tune``, ``pretrain`` and the estimators' ``train`` all warn.
    """
    if device.type == "cpu" and str(precision).startswith("bf16") and not cpu_has_bf16():
        warnings.warn(
            f"precision={str(precision)!r} on a CPU without bf16 instructions (avx512_bf16 or "
            "AMX): bf16 is emulated, expect training much slower than with 32-true (about 13x "
            "measured)",
            RuntimeWarning,
            stacklevel=2,
        )
