"""Speed at the released Lag-Llama architecture, at equal work with the official code.

    python -m benchmarks.official_arch_speed [--rounds 2]
        [--official-src W/src --official-python W/venv/bin/python] [--output NAME]

What the official code's timing scripts (``../shared/official_bench``) time, measured the same
way for ours: the released architecture (8 layers, 9 heads of 16, context 32, the
frequency-independent lag set, robust scaling, time features, Student-t head, random weights)
on m4_hourly, 2 torch threads.

- Sampling: 100 paths x horizon 48 through the GluonTS predictor, KV cache on, at predictor
  batch 16 (first 32 series) and 64 (first 64 series); seconds per series; in float32 and
  (where the CPU has bf16 instructions) with ``sampling_precision="bf16"``.
- Training step: forward, backward and AdamW step on a batch of 64 real training windows
  (context 32 + h = 48), Freq-Mask/Freq-Mix applied with the official recipe's rates,
  compute only (data loading excluded, as the official ``bench_train.py manual``); median of
  10 steps after 3 warm-ups, for float32 and bf16 autocast (where the CPU has bf16
  instructions), eager and ``torch.compile``d; plus a short training run whose loss under
  each setting is compared with float32's from the same seed and batches.

Every measurement is preceded by a matrix-multiply calibration (GFLOPS) and reported beside
its compute floor (matrix-multiply FLOPs / calibration). With ``--official-src`` (a checkout
of the official repository) and ``--official-python`` (an environment for it, see
``../shared/official_bench/README.md``, plus ``pip install 'setuptools<70'``: its Lightning
imports ``pkg_resources``) the official code runs in the same run, alternating
with ours round by round, and the report gives ratios; without it, the official figures of
issue 14's run (another machine, another day) are quoted and labelled as such.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from gluonts.dataset.repository import get_dataset
from gluonts.dataset.split import split

from benchmarks.calibration import gflops
from benchmarks.common import require_dataset, write_results
from lagllama.estimators.lag_llama import LagLlamaEstimator
from lagllama.nn.precision import cpu_has_bf16
from lagllama.settings import shared_datasets_dir

H = 48
PATHS = 100
TRAIN_BATCH = 64
SAMPLING_SETTINGS = ((16, 32), (64, 64))  # (predictor batch, series)
# the official recipe's augmentation (configs/lag_llama.json): with probability 0.5 a batch
# gets Freq-Mask at rate 0.5 and Freq-Mix at rate 0.25
AUGMENTATION = {
    "freq_mask_prob": 0.5,
    "freq_mask_rate": 0.5,
    "freq_mix_prob": 0.5,
    "freq_mix_rate": 0.25,
}
# issue 14's side-by-side run: AMD EPYC with avx512_bf16, 2 threads, gluonts 0.14.4
OTHER_RUN = {
    "sampling_s_per_series": {"16": (2.04, 1.93), "64": (5.16, 4.76)},
    "train_step_s": (0.69, 0.73),
    "machine": "AMD EPYC (avx512_bf16), 2 threads, another run",
}


def released(prediction_length: int = H, batch_size: int = 16, **extra: Any) -> LagLlamaEstimator:
    """The released Lag-Llama architecture as our estimator."""
    return LagLlamaEstimator(
        prediction_length=prediction_length,
        freq="h",
        context_length=32,
        lags_seq="lag-llama",
        n_layer=8,
        n_head=9,
        n_embd_per_head=16,
        batch_size=batch_size,
        num_parallel_samples=PATHS,
        **extra,
    )


# ----------------------------------------------------------------------- FLOP counts
def matmul_flops_per_token(module: torch.nn.Module) -> int:
    """2 x the weights of every linear layer: the FLOPs of one token's matrix products."""
    return 2 * sum(m.weight.numel() for m in module.modules() if isinstance(m, torch.nn.Linear))


def attention_flops(n_layer: int, n_embd: int, queries: int, keys: float) -> float:
    """Scores and weighted sum: 4 x n_embd FLOPs per (query, key) pair and layer."""
    return 4.0 * n_layer * n_embd * queries * keys


# ------------------------------------------------------------------------ ours
def inputs_m4_hourly(root: Path) -> list[dict]:
    """The official scripts' inputs: m4_hourly test series cut one window back."""
    _, test = split(get_dataset("m4_hourly", path=root).test, offset=-H)
    return list(test.generate_instances(H, windows=1).input)


def time_sampling(
    inputs: list[dict], batch: int, n: int, precision: str = "32"
) -> dict[str, float]:
    torch.manual_seed(0)
    estimator = released(batch_size=batch, sampling_precision=precision)
    module = estimator.create_lightning_module()
    predictor = estimator.create_predictor(estimator.create_transformation(), module)
    torch.manual_seed(1)
    list(predictor.predict(inputs[:1]))  # warm-up
    calibration = gflops()
    torch.manual_seed(123)
    start = time.perf_counter()
    forecasts = list(predictor.predict(inputs[:n]))
    seconds = time.perf_counter() - start
    assert forecasts[0].samples.shape == (PATHS, H)
    return {"per_series": seconds / n, "calib_gflops": calibration}


def training_batches(root: Path, count: int) -> list[dict[str, torch.Tensor]]:
    """``count`` real training batches of 64 windows (context 32 + 48) from m4_hourly."""
    estimator = released(batch_size=TRAIN_BATCH, num_batches_per_epoch=count)
    data = get_dataset("m4_hourly", path=root).train
    transformed = estimator.create_transformation().apply(data, is_train=True)
    torch.manual_seed(0)
    loader = estimator.create_training_data_loader(transformed, estimator.create_lightning_module())
    batches = []
    for batch in loader:
        batches.append(batch)
        if len(batches) == count:
            return batches
    raise RuntimeError("m4_hourly gave fewer training batches than asked for")


def _autocast(bf16: bool):
    return torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()


def train_losses(
    batches: list[dict[str, torch.Tensor]], bf16: bool, compile_: bool, seed: int = 0
) -> tuple[list[float], list[float]]:
    """Losses and step times of one training run over ``batches`` (same seed: same start,
    same augmentation draws)."""
    torch.manual_seed(seed)
    module = released(
        batch_size=TRAIN_BATCH, augmentation=AUGMENTATION, torch_compile=compile_, lr=1e-4
    ).create_lightning_module()
    module.train()
    optimizer = torch.optim.AdamW(module.parameters(), lr=1e-4, weight_decay=0.0)
    losses, times = [], []
    for batch in batches:
        start = time.perf_counter()
        with _autocast(bf16):
            loss = module._loss(batch, train=True)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        times.append(time.perf_counter() - start)
        losses.append(loss.item())
    return losses, times


def time_training(batches: list[dict], bf16: bool, compile_: bool, warmup: int = 3) -> dict:
    calibration = gflops()
    _, times = train_losses(batches[: warmup + 10], bf16, compile_)
    return {"step_s": statistics.median(times[warmup:]), "calib_gflops": calibration}


# -------------------------------------------------------------------- official
class Official:
    """Runs the official code's timing scripts in its own environment (a subprocess)."""

    def __init__(self, src: Path, python: Path, bench: Path, datasets: Path) -> None:
        if not (src / "lag_llama").is_dir():
            raise SystemExit(f"--official-src {src}: no lag_llama/ package inside")
        if not python.exists():
            raise SystemExit(f"--official-python {python} does not exist")
        self.python = python
        self.folder = Path(tempfile.mkdtemp(prefix="official_bench_"))
        for name in ("common.py", "bench_train.py"):
            shutil.copy(bench / name, self.folder / name)
        for name in ("calibration.py", "official_predict.py"):
            shutil.copy(Path(__file__).with_name(name), self.folder / name)
        (self.folder / "src").symlink_to(src.resolve())
        self.env = {
            **os.environ,
            "SHARED_DATASETS": str(datasets.resolve()),
            "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1",
        }

    def _run(self, *args: str) -> dict[str, float]:
        result = subprocess.run(
            [str(self.python), *args],
            cwd=self.folder,
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
        )
        lines = [line for line in result.stdout.splitlines() if line.startswith("RESULT")]
        if result.returncode or not lines:
            raise RuntimeError(f"official {args[0]} failed:\n{result.stderr[-2000:]}")
        return {k: float(v) for k, v in re.findall(r"(\w+)=([0-9.]+)(?=\s|$)", lines[-1])}

    def sampling(self, batch: int, n: int) -> dict[str, float]:
        values = self._run("official_predict.py", str(n), str(batch))
        return {"per_series": values["per_series"], "calib_gflops": values["calib_gflops"]}

    def training(self) -> dict[str, float]:
        calibration = gflops()
        values = self._run("bench_train.py", "manual", "10", "3")
        return {"step_s": values["compute_median"], "calib_gflops": calibration}

    def close(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


# ---------------------------------------------------------------------- report
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--official-src", type=Path, default=None)
    parser.add_argument("--official-python", type=Path, default=None)
    parser.add_argument(
        "--official-bench",
        type=Path,
        default=shared_datasets_dir().parent / "official_bench",
        help="the official-code timing scripts (default: ../shared/official_bench)",
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--loss-steps", type=int, default=60)
    parser.add_argument(
        "--output",
        default="official_arch_speed",
        help="results/<output>.{md,json} (another name keeps another machine's run)",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    root = require_dataset("m4_hourly")
    inputs = inputs_m4_hourly(root)
    batches = training_batches(root, max(13, args.loss_steps))
    official = None
    if args.official_src is not None:
        python = args.official_python or args.official_src.parent / "venv" / "bin" / "python"
        official = Official(args.official_src, python, args.official_bench, shared_datasets_dir())

    bf16 = cpu_has_bf16()
    variants = [("fp32", False, False), ("fp32+compile", False, True)]
    if bf16:
        variants += [("bf16", True, False), ("bf16+compile", True, True)]
    runs: dict[str, list[dict]] = {}

    def record(key: str, value: dict) -> None:
        runs.setdefault(key, []).append(value)
        print(key, value, flush=True)

    try:
        for _ in range(args.rounds):  # official and ours alternate, round by round
            for batch, n in SAMPLING_SETTINGS:
                if official is not None:
                    record(f"official/sampling/{batch}", official.sampling(batch, n))
                record(f"ours/sampling/{batch}", time_sampling(inputs, batch, n))
                if bf16:
                    record(f"ours/sampling-bf16/{batch}", time_sampling(inputs, batch, n, "bf16"))
            if official is not None:
                record("official/train", official.training())
            for name, use_bf16, compile_ in variants:
                record(f"ours/train/{name}", time_training(batches, use_bf16, compile_))
    finally:
        if official is not None:
            official.close()

    # the loss check: the same short run under each setting, against float32
    reference, _ = train_losses(batches[: args.loss_steps], False, False)
    loss_check = {}
    for name, use_bf16, compile_ in variants[1:]:
        losses, _ = train_losses(batches[: args.loss_steps], use_bf16, compile_)
        tail = slice(-10, None)
        mean_ref, mean = statistics.mean(reference[tail]), statistics.mean(losses[tail])
        loss_check[name] = {
            "mean_loss_last10": mean,
            "fp32_mean_loss_last10": mean_ref,
            "relative_difference": abs(mean - mean_ref) / abs(mean_ref),
            "max_step_relative_difference": max(
                abs(a - b) / abs(b) for a, b in zip(losses, reference)
            ),
        }

    estimator = released()
    model = estimator.create_lightning_module().model
    config = model.config
    per_token = matmul_flops_per_token(model)
    # sampling: prefill (context 32 + 1 tokens, once per series) is negligible beside the
    # 100 paths x 48 decode tokens; each decode token attends to ~33 + t/2 keys on average
    decode_keys = config.context_length + 1 + H / 2
    sampling_flops = (
        PATHS * H * (per_token + attention_flops(config.n_layer, config.n_embd, 1, decode_keys))
    )
    tokens = TRAIN_BATCH * (config.context_length + H)
    train_flops = 3 * (
        tokens * per_token
        + attention_flops(config.n_layer, config.n_embd, tokens, (config.context_length + H) / 2)
    )

    def summary(key: str, field: str) -> dict[str, Any] | None:
        if key not in runs:
            return None
        values = [r[field] for r in runs[key]]
        calib = [r["calib_gflops"] for r in runs[key]]
        return {"values": values, "median": statistics.median(values), "calib_gflops": calib}

    results: dict[str, Any] = {"sampling": {}, "train": {}}
    for batch, _n in SAMPLING_SETTINGS:
        ours = summary(f"ours/sampling/{batch}", "per_series")
        theirs = summary(f"official/sampling/{batch}", "per_series")
        floor = sampling_flops / (statistics.median(ours["calib_gflops"]) * 1e9)
        results["sampling"][str(batch)] = {
            "ours": ours,
            "ours_bf16": summary(f"ours/sampling-bf16/{batch}", "per_series"),
            "official": theirs,
            "floor_s": floor,
        }
    train_official = summary("official/train", "step_s")
    for name, *_ in variants:
        ours = summary(f"ours/train/{name}", "step_s")
        floor = train_flops / (statistics.median(ours["calib_gflops"]) * 1e9)
        results["train"][name] = {"ours": ours, "floor_fp32_s": floor}

    payload = {
        "parameters": sum(p.numel() for p in model.parameters()),
        "threads": args.threads,
        "rounds": args.rounds,
        "loss_steps": args.loss_steps,
        "cpu_bf16": bf16,
        "official_in_this_run": official is not None,
        "official_other_run": None if official is not None else OTHER_RUN,
        "sampling_gflop_per_series": sampling_flops / 1e9,
        "train_step_gflop": train_flops / 1e9,
        "results": results,
        "train_official": train_official,
        "loss_check": loss_check,
        "targets": {"sampling_s_per_series": 0.2, "train_step_s": 0.36},
    }
    write_results(args.output, payload, markdown(payload))


def _fmt(values: list[float], digits: int = 3) -> str:
    return " / ".join(f"{v:.{digits}f}" for v in values)


def markdown(p: dict[str, Any]) -> str:
    here = p["official_in_this_run"]
    source = "this run, alternating with ours" if here else OTHER_RUN["machine"]
    lines = [
        "# Speed at the released Lag-Llama architecture, at equal work with the official code",
        "",
        f"8 layers, 9 heads x 16, context 32, robust scaling, time features, Student-t: "
        f"{p['parameters']:,} parameters, random weights; m4_hourly; {p['threads']} torch "
        f"threads on both sides; {p['rounds']} rounds (one figure per round). Official code: "
        f"{source}. Compute floor = matrix-multiply FLOPs / the calibration of the same round "
        f"(sampling {p['sampling_gflop_per_series']:.1f} GFLOP per series, training step "
        f"{p['train_step_gflop']:.1f} GFLOP).",
        "",
        "## Sampling: 100 paths x horizon 48, KV cache on, seconds per series",
        "",
        'ours fp32: the default, plain float32; ours bf16: `sampling_precision="bf16"` '
        "(bf16 autocast of the decoder blocks; CPUs with bf16 instructions only).",
        "",
        "| predictor batch, series | official | ours fp32 | ratio | ours bf16 | ratio "
        "| floor (fp32) | calibration GFLOPS |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for batch, n in SAMPLING_SETTINGS:
        r = p["results"]["sampling"][str(batch)]
        ours = r["ours"]
        if r["official"] is not None:
            theirs = r["official"]["values"]
            calib = _fmt(r["official"]["calib_gflops"] + ours["calib_gflops"], 0)
        else:
            theirs = list(OTHER_RUN["sampling_s_per_series"][str(batch)])
            calib = _fmt(ours["calib_gflops"], 0)
        ratio = statistics.median(theirs) / ours["median"]
        half = r.get("ours_bf16")
        half_cells = "n/a | n/a"
        if half is not None:
            half_cells = (
                f"{_fmt(half['values'])} | {statistics.median(theirs) / half['median']:.1f}x"
            )
        lines.append(
            f"| {batch}, {n} | {_fmt(theirs)} | {_fmt(ours['values'])} | {ratio:.1f}x | "
            f"{half_cells} | {r['floor_s']:.3f} | {calib} |"
        )
    official = p["train_official"]
    theirs = official["values"] if official else list(OTHER_RUN["train_step_s"])
    lines += [
        "",
        f"## Training step: batch {TRAIN_BATCH}, context 32 + h = {H}, seconds (compute only)",
        "",
        f"Official: {_fmt(theirs)} s (float32, eager).",
        "",
        "| ours | seconds | official / ours | floor (fp32) | loss vs fp32 (last 10 steps) |",
        "|---|---|---|---|---|",
    ]
    for name, r in p["results"]["train"].items():
        check = p["loss_check"].get(name)
        diff = f"{100 * check['relative_difference']:.2f}%" if check else "reference"
        lines.append(
            f"| {name} | {_fmt(r['ours']['values'])} | "
            f"{statistics.median(theirs) / r['ours']['median']:.2f}x | "
            f"{r['floor_fp32_s']:.3f} | {diff} |"
        )
    lines += [
        "",
        f"Loss check: the same {p['loss_steps']}-step training run (same seed, batches and "
        "augmentation draws) under each setting; the column gives the relative difference of "
        "its mean loss over the last 10 steps from float32's.",
        f"CPU bf16 instructions: {'yes' if p['cpu_bf16'] else 'no (bf16 rows skipped)'}.",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
