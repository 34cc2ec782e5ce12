"""Pretraining: corpus hygiene (no evaluation data), synthetic data, mixture windows,
chunked/resumable training (also DDP with 2 CPU processes) and the shipped checkpoint."""

from __future__ import annotations

import dataclasses
import functools
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lagllama.pretraining.config import PretrainConfig
from lagllama.pretraining.corpus import (
    EVAL_DATASETS,
    PRETRAINING_SOURCES,
    RETIRED_SOURCES,
    build_corpus,
    load_source,
    make_entry,
    read_jsonl,
    series_fingerprint,
)
from lagllama.pretraining.dataset import PretrainingMixture
from lagllama.pretraining.synthetic import synthetic_dataset
from lagllama.settings import shared_datasets_dir

DATA = shared_datasets_dir()
needs_data = pytest.mark.skipif(
    not (DATA / "corpus").is_dir(), reason=f"shared datasets not found under {DATA}"
)


@functools.cache
def real_corpus() -> dict[str, list[dict]]:
    real = [s for s in (*PRETRAINING_SOURCES, *RETIRED_SOURCES) if s != "synthetic"]
    return build_corpus(real, DATA)


# ------------------------------------------------------------ corpus hygiene
def test_eval_datasets_refused_by_name():
    assert not set(PRETRAINING_SOURCES) & set(EVAL_DATASETS)
    for name in EVAL_DATASETS:
        with pytest.raises(ValueError, match="evaluation dataset"):
            load_source(name)
        with pytest.raises(ValueError, match="evaluation dataset"):
            PretrainConfig(sources={name: 1.0})


@pytest.mark.parametrize(
    "path", sorted((Path(__file__).parents[1] / "configs").glob("*.json")), ids=lambda p: p.name
)
def test_shipped_configs_load_and_use_only_the_checked_corpus(path: Path):
    """Every config in configs/ parses, and its real sources are the ones the decontamination
    test checks (plus the generated ones)."""
    cfg = PretrainConfig.load(path)
    assert set(cfg.sources) <= {*PRETRAINING_SOURCES, *RETIRED_SOURCES, "tsmixup"}
    assert cfg.name == path.stem.replace("pretrain_", "lagllama-").replace("_", "-")


def _float32_windows_key(values: np.ndarray, k: int) -> np.ndarray:
    """uint64 key of every length-``k`` window of ``values`` (float32 bit patterns)."""
    bits = values.astype(np.float32).view(np.uint32).astype(np.uint64)
    windows = np.lib.stride_tricks.sliding_window_view(bits, k)
    powers = np.uint64(1000003) ** np.arange(k, dtype=np.uint64)
    with np.errstate(over="ignore"):
        return (windows * powers).sum(axis=1, dtype=np.uint64)


@needs_data
def test_no_eval_series_in_pretraining_corpus():
    """By content: no evaluation series' first 50 values start, or occur inside, a corpus series."""
    from lagllama.data.datasets import load_dataset

    corpus = [e["target"] for entries in real_corpus().values() for e in entries]
    starts = {series_fingerprint(t) for t in corpus}
    k = 8
    keys, heads = [], []
    checked = 0
    for name in EVAL_DATASETS:
        if not (DATA / name).is_dir():
            continue
        for entry in load_dataset(name, DATA, download=False).test:
            target = np.asarray(entry["target"], dtype=np.float32)
            head = target[:50]
            if len(np.unique(head)) >= 3:  # e.g. 50 zeros of intermittent demand say nothing
                assert series_fingerprint(target) not in starts, f"{name} {entry.get('item_id')}"
            if len(head) >= 12 and np.isfinite(head).all() and len(np.unique(head[:k])) >= 3:
                keys.append(_float32_windows_key(head[:k], k)[0])
                heads.append(head)
            checked += 1
    assert checked > 4000
    keys = np.array(keys, dtype=np.uint64)
    for series in corpus:
        if len(series) < 12:
            continue
        windows = _float32_windows_key(np.nan_to_num(series, nan=np.inf), k)
        for pos in np.flatnonzero(np.isin(windows, keys)):
            for head in heads:
                stretch = series[pos : pos + len(head)].astype(np.float32)
                assert not np.array_equal(stretch, head), "an evaluation series is in the corpus"


@needs_data
def test_corpus_reads_every_pretraining_source():
    corpus = real_corpus()
    # 640 TSDL series less the evaluation overlaps and the broad dev holdouts
    assert 500 < {k: len(v) for k, v in corpus.items()}["corpus/tsdl"] < 600
    freqs = {e["start"].freqstr for entries in corpus.values() for e in entries}
    assert {"h", "M", "D"} <= freqs and len(freqs) >= 5
    unknown = [e for e in corpus["corpus/nngc1"] if e["start"].freqstr == "D"]
    assert unknown  # freq null -> default freq with the fixed start
    # tsibbledata carries real start dates: World Bank yearly series begin in 1960 or later
    gdp = [e for e in corpus["corpus/tsibbledata"] if e["item_id"].endswith(":GDP")]
    assert len(gdp) > 150 and all(e["start"].freqstr == "Y-DEC" for e in gdp)  # a quarter held out
    assert {e["start"].year for e in gdp} <= set(range(1960, 2018))
    assert "corpus/nn3" not in corpus  # M3 test windows: never pretrain on them


def test_jsonl_missing_values_and_unknown_freq(tmp_path: Path):
    path = tmp_path / "toy.jsonl"
    rows = [
        {"item_id": "a", "target": [1.0, None, 3.0], "frequency": 12, "freq": "M"},
        {"item_id": "b", "target": [1.0, 2.0], "frequency": 1, "freq": None},
        {"item_id": "c", "target": [5.0, 6.0], "freq": "Q", "start": "1991-07-01 00:00:00"},
        {"item_id": "d", "target": [5.0, 6.0], "freq": "Y", "start": "1960"},
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows))
    a, b, c, d = read_jsonl(path, prefix="toy")
    assert np.isnan(a["target"][1]) and a["start"].freqstr == "M" and a["item_id"] == "toy:a"
    assert b["start"] == pd.Period("2000-01-01", "D")
    assert c["start"] == pd.Period("1991Q3", "Q") and d["start"] == pd.Period("1960", "Y")
    with pytest.raises(ValueError, match="'e'.*start"):
        make_entry([1.0], "M", "e", start="not a date")


# ------------------------------------------------------------- synthetic data
def test_synthetic_is_seeded_finite_and_varied():
    a = synthetic_dataset(60, seed=3)
    b = synthetic_dataset(60, seed=3)
    assert all(np.array_equal(x["target"], y["target"]) for x, y in zip(a, b))
    assert all(np.isfinite(x["target"]).all() for x in a)
    assert {x["item_id"].split(":")[1] for x in a} == {"kernel", "structural", "intermittent"}
    assert len({x["freq"] for x in a}) >= 4
    lengths = [len(x["target"]) for x in a]
    assert min(lengths) >= 32 and max(lengths) <= 1024
    intermittent = [x["target"] for x in a if ":intermittent:" in x["item_id"]]
    assert all((t == 0).any() and (t >= 0).all() for t in intermittent)


# ----------------------------------------------------------- mixture windows
def test_mixture_windows_pad_short_series_and_use_own_freq():
    from lagllama.pretraining.train import make_estimator

    corpus = {
        "short": [make_entry(np.arange(6.0), "Y", "y")],
        "long": [make_entry(np.sin(np.arange(3000.0)), "h", "h")],
    }
    cfg = PretrainConfig(context_length=16, prediction_length=8, sources={"short": 1, "long": 1})
    estimator = make_estimator(cfg)
    past = 16 + 1093
    mixture = PretrainingMixture(corpus, past, 8, source_weights={"short": 1, "long": 3}, seed=1)
    it = iter(mixture)
    entries = [next(it) for _ in range(200)]
    short = [e for e in entries if e["item_id"] == "y"]
    assert 20 < len(short) < 100  # source weights 1:3
    for e in short:
        assert np.isnan(e["target"][-8:]).sum() >= 2  # padded future (6 points, h = 8)
    assert all(len(e["target"]) <= past + 8 for e in entries)
    splitter = estimator._splitter("training")
    windows = list(
        splitter.apply(estimator.create_transformation().apply(entries[:40], is_train=True))
    )
    assert len(windows) == 40
    for w, e in zip(windows, entries[:40]):
        assert w["past_target"].shape == (past,) and w["future_target"].shape == (8,)
        hour = w["past_time_feat"][:, 1]  # (time, feature); feature 1 = hour_of_day
        if e["item_id"] == "h":
            assert hour[-24:].std() > 0.1  # hourly series: hour of day changes
        else:
            assert w["past_observed_values"][:-6].sum() == 0  # heavy padding, masked
            assert np.all(hour[-5:] == hour[-1])  # yearly series: constant hour


def test_freq_weights_match_anchored_periods_and_refuse_unknown_keys():
    cfg = PretrainConfig(freq_weights={"Q": 0, "A": 2.0, "W-SUN": 1})
    assert cfg.freq_weights == {"Q": 0.0, "Y": 2.0, "W": 1.0}
    with pytest.raises(ValueError, match="not a pandas frequency"):
        PretrainConfig(freq_weights={"quarterly": 1})
    corpus = {
        "mixed": [
            make_entry(np.arange(80.0), "Q", "quarterly"),  # periods spell it Q-DEC
            make_entry(np.arange(80.0), "W", "weekly"),  # W-SUN
            make_entry(np.arange(80.0), "M", "monthly"),
        ]
    }
    it = iter(PretrainingMixture(corpus, 40, 5, freq_weights=cfg.freq_weights, seed=0))
    ids = [next(it)["item_id"] for _ in range(300)]
    assert "quarterly" not in ids and {"weekly", "monthly"} <= set(ids)


def test_mixture_seeds_differ_by_offset():
    corpus = {"s": [make_entry(np.arange(500.0), "D", "s")]}

    def draws(offset: int) -> list[int]:
        it = iter(PretrainingMixture(corpus, 100, 5, seed=0, offset=offset))
        return [len(next(it)["target"]) for _ in range(20)]

    assert draws(0) == draws(0)  # reproducible
    assert draws(0) != draws(10)  # a resumed run draws new windows


def test_mixture_refresh_makes_new_series_and_keeps_callers_pool():
    pool = [make_entry(np.zeros(50), "D", f"old{i}") for i in range(5)]
    made = []

    def maker(rng: np.random.Generator) -> dict:
        made.append(f"new{len(made)}")
        return make_entry(rng.normal(size=60), "M", made[-1])

    mixture = PretrainingMixture(
        {"pool": pool}, 100, 5, refresh={"pool": (maker, 0.5)}, seed=0, min_past=1
    )
    it = iter(mixture)
    ids = [next(it)["item_id"] for _ in range(400)]
    assert 120 < len(made) < 280  # about half the draws are new series
    assert set(made) <= set(ids)  # every new series is used as it is made
    assert all(e["item_id"].startswith("old") for e in pool)  # the caller's list untouched
    assert all(e["item_id"].startswith("new") for e in mixture.corpus["pool"])  # replaced


def test_tsmixup_is_a_scaled_convex_combination_of_one_frequency():
    from lagllama.pretraining.mixup import TSMixup

    rng = np.random.default_rng(0)
    monthly = [make_entry(rng.uniform(1, 5, 120) * 10**i, "M", f"m{i}") for i in range(4)]
    hourly = [make_entry(rng.normal(size=500), "h", "h0")]
    mix = TSMixup({"a": monthly, "b": hourly}, max_components=3, length_range=(40, 60))
    by_id = {e["item_id"]: e for e in monthly + hourly}
    seen_k = set()
    for _ in range(60):
        entry = mix(rng)
        parts = entry["item_id"].removeprefix("tsmixup:").split("+")
        seen_k.add(len(parts))
        freqs = {by_id[p]["start"].freqstr for p in parts}
        assert len(freqs) == 1 and entry["start"].freqstr in freqs  # never mixes frequencies
        assert 40 <= len(entry["target"]) <= 60 and np.isfinite(entry["target"]).all()
        if freqs == {"M"}:
            # every monthly part is in [1, 5] * 10**i: scaled by its mean |x| each part lies
            # in [1/5, 5], and so does any convex combination of them, whatever the scales
            assert 0.19 < entry["target"].min() and entry["target"].max() < 5.01
    assert seen_k == {1, 2, 3}
    single = TSMixup({"a": monthly[:1]}, max_components=1, length_range=(120, 120))(rng)
    target = monthly[0]["target"]
    np.testing.assert_allclose(single["target"], target / np.abs(target).mean(), rtol=1e-5)
    assert single["start"] == monthly[0]["start"]


def test_holdout_split_is_by_whole_series_and_stable():
    from lagllama.pretraining.corpus import split_holdout

    corpus = {
        "real": [make_entry(np.arange(10.0), "D", f"s{i}") for i in range(2000)],
        "synthetic": [make_entry(np.arange(10.0), "D", f"x{i}") for i in range(50)],
    }
    train, held = split_holdout(corpus, 0.05)
    ids = {e["item_id"] for e in held["real"]}
    assert 60 < len(ids) < 140 and "synthetic" not in held
    assert not ids & {e["item_id"] for e in train["real"]}
    assert len(train["real"]) + len(ids) == 2000 and len(train["synthetic"]) == 50
    shuffled = {"real": corpus["real"][::-1]}
    assert {e["item_id"] for e in split_holdout(shuffled, 0.05)[1]["real"]} == ids


def test_schedule_offset_continues_the_cosine_after_a_rewarmup():
    from lagllama.training.schedules import warmup_cosine

    assert warmup_cosine(0, 10, 100) == 0.1 and warmup_cosine(10, 10, 100) == 1.0
    assert warmup_cosine(100, 10, 100) == pytest.approx(0.1)
    assert warmup_cosine(55, 10, float("inf")) == 1.0
    values = [warmup_cosine(s, 10, 100) for s in range(10, 101)]
    assert all(a >= b for a, b in zip(values, values[1:]))  # decays monotonically


# ---------------------------------------------------------------- training
def _tiny_config(tmp_path: Path, **changes) -> PretrainConfig:
    values = {
        "output_dir": str(tmp_path / "run"),
        "context_length": 8,
        "prediction_length": 4,
        "n_layer": 1,
        "n_head": 1,
        "n_embd_per_head": 8,
        "sources": {"synthetic": 1.0},
        "synthetic_series": 12,
        "steps": 2,
        "batch_size": 4,
        "steps_per_epoch": 2,
        "warmup_steps": 0,
    }
    return PretrainConfig.from_dict({**values, **changes})


def test_pretrain_cli_checkpoints_and_resumes(tmp_path: Path, capsys):
    from lagllama.cli import main

    cfg = _tiny_config(tmp_path)
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps(cfg.to_dict()))
    assert main(["pretrain", "--config", str(path)]) == 0
    run = Path(cfg.output_dir)
    assert (run / "checkpoints" / "last.ckpt").exists()
    assert list((run / "logs").rglob("metrics.csv"))
    cfg.steps = 4  # same run, longer: continues from step 2
    path.write_text(json.dumps(cfg.to_dict()))
    export = tmp_path / "export"
    assert main(["pretrain", "--config", str(path), "--export", str(export)]) == 0
    chunks = [json.loads(x) for x in (run / "chunks.jsonl").read_text().splitlines()]
    assert [(c["steps_before"], c["steps"]) for c in chunks] == [(0, 2), (2, 4)]
    card = json.loads((export / "lagllama-small.json").read_text())
    assert card["training"]["steps"] == 4
    assert main(["pretrain", "--config", str(path)]) == 0  # finished: nothing to do
    assert "already finished" in capsys.readouterr().out


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_snapshot_restart_on_a_new_machine_continues_the_run(tmp_path: Path, dtype: str):
    """A snapshot after every chunk; with the run folder gone, the run restarts from the
    snapshot's weights and step, and its schedule continues rather than restarting. A
    float16 snapshot is half the size and restarts from its weights cast to float32."""
    import torch

    from lagllama.pretrained import load_pretrained
    from lagllama.pretraining.train import run_pretraining

    snapshots = tmp_path / "snapshots"
    cfg = _tiny_config(
        tmp_path,
        steps=8,
        warmup_steps=2,
        snapshot_dir=str(snapshots),
        rewarmup_steps=2,
        keep_every_steps=2,
        snapshot_dtype=dtype,
    )
    first = run_pretraining(cfg, verbose=False, stop_at_step=4)
    assert first["steps"] == 4 and not first["finished"] and first["snapshot"]
    card, weights = load_pretrained(cfg.name, snapshots)
    assert card["training"]["steps"] == 4 and card["chunks"][0]["steps"] == 4
    assert {str(v.dtype) for v in weights.values() if v.is_floating_point()} == {f"torch.{dtype}"}
    shutil.rmtree(cfg.output_dir)  # a new machine: the run folder is lost

    # lr 0 in the second chunk: its weights stay exactly the ones it started from
    second = run_pretraining(dataclasses.replace(cfg, lr=0.0), verbose=False)
    assert second["steps_before"] == 4 and second["steps"] == 8 and second["finished"]
    card, _ = load_pretrained(cfg.name, snapshots)
    assert card["training"]["steps"] == 8 and len(card["chunks"]) == 2
    ckpt = torch.load(Path(cfg.output_dir) / "checkpoints" / "last.ckpt", weights_only=True)
    hp = ckpt["hyper_parameters"]
    assert hp["schedule_offset"] == 4 and hp["rewarmup_steps"] == 2
    assert ckpt["global_step"] == 4  # Lightning counted the 4 new steps only
    assert set(weights) == set(ckpt["state_dict"])
    for key, value in weights.items():  # started from the snapshot, not from scratch
        assert torch.equal(value.to(ckpt["state_dict"][key].dtype), ckpt["state_dict"][key]), key
    # weights kept along the way are numbered from the start of the run
    kept = sorted(p.name for p in (Path(cfg.output_dir) / "steps").glob("*.ckpt"))
    assert kept == ["step-6.ckpt", "step-8.ckpt"]  # the first chunk's folder was lost
    from lagllama.estimators.lag_llama import LagLlamaEstimator
    from lagllama.pretraining.chunks import cpu_hours_at, training_totals

    step6 = Path(cfg.output_dir) / "steps" / "step-6.ckpt"
    assert LagLlamaEstimator.from_checkpoint(step6, 4).create_zero_shot_predictor()
    total = training_totals(cfg.output_dir)["cpu_s"] / 3600
    assert cpu_hours_at(cfg.output_dir, 4) < cpu_hours_at(cfg.output_dir, 6)
    assert cpu_hours_at(cfg.output_dir, 8) == pytest.approx(total)
    with pytest.raises(ValueError, match="past the chunks logged"):
        cpu_hours_at(cfg.output_dir, 9)  # a chunk still running has not logged its CPU time


def test_pretrain_validation_loss_on_held_out_series(tmp_path: Path):
    from lagllama.pretraining.train import run_pretraining

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    rng = np.random.default_rng(0)
    rows = [
        {"item_id": f"r{i}", "target": list(rng.normal(size=80)), "freq": "M"} for i in range(60)
    ]
    (corpus / "toy.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    cfg = _tiny_config(
        tmp_path,
        data_dir=str(tmp_path),
        sources={"synthetic": 1.0, "corpus/toy": 1.0, "tsmixup": 1.0},
        synthetic_refresh=0.5,
        validation_share=0.2,
        validation_windows=10,
        val_every_steps=2,
        steps=4,
    )
    summary = run_pretraining(cfg, verbose=False)
    assert summary["finished"]
    metrics = pd.read_csv(next((Path(cfg.output_dir) / "logs").rglob("metrics.csv")))
    val = metrics["val_loss"].dropna()
    assert len(val) == 2 and np.isfinite(val).all()


def test_pretrain_config_toml_and_errors(tmp_path: Path):
    path = tmp_path / "c.toml"
    path.write_text('steps = 7\n[sources]\nsynthetic = 1.0\n"corpus/tsibbledata" = 0.5\n')
    cfg = PretrainConfig.load(path)
    assert cfg.steps == 7 and cfg.sources == {"synthetic": 1.0, "corpus/tsibbledata": 0.5}
    path.write_text("stepz = 7\n")
    with pytest.raises(ValueError, match="unknown pretraining config keys"):
        PretrainConfig.load(path)


@pytest.mark.slow
def test_pretrain_ddp_two_cpu_processes(tmp_path: Path):
    """Lightning DDP (ddp_spawn, gloo) with 2 CPU processes: two steps, one checkpoint."""
    from lagllama.pretraining.train import run_pretraining

    cfg = _tiny_config(tmp_path, strategy="ddp_spawn", devices=2, accelerator="cpu")
    summary = run_pretraining(cfg, verbose=False)
    assert summary["steps"] == 2 and summary["finished"] and summary["world_size"] == 2
    assert (Path(cfg.output_dir) / "checkpoints" / "last.ckpt").exists()


# ------------------------------------------------------ shipped checkpoint
SHIPPED = Path(__file__).resolve().parent.parent / "lagllama" / "checkpoints"
needs_shipped = pytest.mark.skipif(
    not (SHIPPED / "lagllama-small.safetensors").exists(), reason="no shipped checkpoint"
)


@needs_shipped
@pytest.mark.parametrize("name", sorted(p.stem for p in SHIPPED.glob("*.safetensors")))
def test_shipped_checkpoint_verifies_and_forecasts(tmp_path: Path, monkeypatch, name: str):
    from lagllama.estimators.lag_llama import LagLlamaEstimator
    from lagllama.pretrained import load_pretrained

    monkeypatch.setenv("LAGLLAMA_CACHE_DIR", str(tmp_path / "cache"))
    assert (SHIPPED / f"{name}.safetensors").stat().st_size < 20 * 2**20
    assert (SHIPPED / f"{name}.json").exists()
    config, state = load_pretrained(name)
    assert config["model_kwargs"]["lags_seq"][-1] == 1093 and state
    estimator = LagLlamaEstimator.from_pretrained(
        prediction_length=12, name=name, freq="M", num_parallel_samples=20
    )
    predictor = estimator.create_zero_shot_predictor()
    series = 100 + 10 * np.sin(np.arange(30) * 2 * np.pi / 12)
    data = [{"start": pd.Period("2015-01", "M"), "target": series, "item_id": "x"}]
    forecast = next(iter(predictor.predict(data)))
    assert forecast.samples.shape == (20, 12) and np.isfinite(forecast.samples).all()
    assert 50 < np.median(forecast.samples) < 150


@needs_shipped
def test_corrupted_checkpoint_copy_fails_clearly(tmp_path: Path):
    from lagllama.pretrained import ALIASES, DEFAULT_NAME, ChecksumError, load_pretrained

    for suffix in (".json", ".safetensors"):  # the default's files, under their own name
        shutil.copy(SHIPPED / f"{ALIASES[DEFAULT_NAME]}{suffix}", tmp_path)
    weights = tmp_path / f"{ALIASES[DEFAULT_NAME]}.safetensors"
    load_pretrained(directory=tmp_path)  # the intact copy loads
    blob = bytearray(weights.read_bytes())
    blob[-10] ^= 0xFF
    weights.write_bytes(bytes(blob))
    with pytest.raises(ChecksumError, match="SHA-256 mismatch"):
        load_pretrained(directory=tmp_path)
    with pytest.raises(FileNotFoundError, match="no pretrained model"):
        load_pretrained("nope", directory=tmp_path)
