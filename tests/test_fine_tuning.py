"""Fine-tuning recipe: rolling validation windows carved before the test window, best weights
restored, the window rule (start, tuned or their quantile average) robust to a misleading
window, budgets respected."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import lightning.pytorch as pl
import numpy as np
import pandas as pd
import pytest
import torch
from gluonts.dataset.common import ListDataset
from gluonts.model.forecast import SampleForecast
from gluonts.model.predictor import Predictor

from lagllama.data.tasks import dataset_task
from lagllama.evaluation.backtest import WQL_QUANTILES
from lagllama.forecasting.ensembles import quantile_loss
from lagllama.training.fine_tuning import (
    BestWeights,
    ForecastScore,
    QuantileAverage,
    carve_windows,
    decide,
    fine_tune,
    quantile_average,
)

H = 6


def monthly_data(n: int = 12, length: int = 72, seed: int = 0) -> ListDataset:
    rng = np.random.default_rng(seed)
    t = np.arange(length)
    entries = [
        {
            "start": pd.Period("2000-01", "M"),
            "target": (50 + 10 * np.sin(2 * np.pi * t / 12 + i) + rng.normal(0, 1, length)).astype(
                np.float32
            ),
            "item_id": f"s{i}",
        }
        for i in range(n)
    ]
    return ListDataset(entries, freq="M")


def spiky_data(n: int = 12, length: int = 72, seed: int = 0) -> ListDataset:
    """A spike every 5 months: a pattern fine-tuning learns and the pretrained model lacks."""
    rng = np.random.default_rng(seed)
    t = np.arange(length)
    entries = [
        {
            "start": pd.Period("2000-01", "M"),
            "target": (50 + 40 * (t % 5 == i % 5) + rng.normal(0, 1, length)).astype(np.float32),
            "item_id": f"s{i}",
        }
        for i in range(n)
    ]
    return ListDataset(entries, freq="M")


def regime_data(n: int = 12, length: int = 72, seed: int = 0) -> ListDataset:
    """Spikes every 5 months, except in the two windows before the last validation window
    and in the test window: fine-tuning learns the spikes, which the last validation window
    rewards and the rest of the recent history, the test window included, punishes."""
    rng = np.random.default_rng(seed)
    t = np.arange(length)
    quiet = ((t >= length - 4 * H) & (t < length - 2 * H)) | (t >= length - H)
    entries = [
        {
            "start": pd.Period("2000-01", "M"),
            "target": (50 + 40 * ((t % 5 == i % 5) & ~quiet) + rng.normal(0, 1, length)).astype(
                np.float32
            ),
            "item_id": f"s{i}",
        }
        for i in range(n)
    ]
    return ListDataset(entries, freq="M")


def small_run(tmp_path: Path, **kwargs):
    values = {
        "batch_size": 8,
        "num_batches_per_epoch": 2,
        "max_epochs": 4,
        "num_parallel_samples": 20,
        "trainer_kwargs": {"default_root_dir": str(tmp_path), "enable_progress_bar": False},
    }
    return fine_tune(monthly_data(), H, freq="M", **{**values, **kwargs})


def run_on(data: ListDataset, tmp_path: Path, **kwargs):
    """The recipe on ``data`` without its test window, with settings that learn in 16 steps
    (no EMA, a large learning rate) and fixed seeds."""
    pl.seed_everything(0, verbose=False)
    values = {
        "freq": "M",
        "batch_size": 8,
        "num_batches_per_epoch": 4,
        "max_epochs": 4,
        "num_parallel_samples": 20,
        "validation_samples": 20,
        "lr": 3e-3,
        "ema_decay": None,
        "trainer_kwargs": {"default_root_dir": str(tmp_path), "enable_progress_bar": False},
    }
    return fine_tune(dataset_task("toy", data, H).train_data(), H, **{**values, **kwargs})


def wql_on_test_window(predictor: Predictor, data: ListDataset) -> float:
    """WQL of ``predictor`` on the test window of ``data``."""
    task = dataset_task("toy", data, H)
    torch.manual_seed(0)
    forecasts = list(predictor.predict(task.test_data().input))
    quantiles = np.stack([[f.quantile(q) for q in WQL_QUANTILES] for f in forecasts])
    labels = np.stack([e["target"] for e in task.test_data().label])
    return quantile_loss(quantiles, labels, WQL_QUANTILES)


def test_validation_windows_roll_back_from_the_test_window():
    data = monthly_data(n=4)
    task = dataset_task("toy", data, H)
    train, windows = carve_windows(task.train_data(), H, max_windows=3)
    full = {e["item_id"]: e["target"] for e in data}
    assert len(windows) == 3
    for entry in train:  # the test window and three validation windows carved off
        np.testing.assert_array_equal(entry["target"], full[entry["item_id"]][: -4 * H])
    for k, window in enumerate(windows):  # the last first, each the H points before the last
        assert len(window) == 4
        for entry in window:
            np.testing.assert_array_equal(entry["target"], full[entry["item_id"]][: -(k + 1) * H])
    short = ListDataset([{"start": pd.Period("2000", "Y"), "target": np.arange(5.0)}], freq="Y")
    with pytest.raises(ValueError, match="validation window of 6"):
        carve_windows(short, H)


def series(lengths: list[int], nan_last: bool = False) -> ListDataset:
    entries = [
        {"start": pd.Period("2000-01", "M"), "target": np.arange(n, dtype=float), "item_id": i}
        for i, n in enumerate(lengths)
    ]
    if nan_last:
        entries[-1]["target"][-H:] = np.nan
    return ListDataset(entries, freq="M")


def test_windows_are_as_many_as_half_of_the_series_reach():
    # three series long enough for 3 windows, two for 1, one for none
    train, windows = carve_windows(series([30, 30, 30, 10, 10, 5]), H, max_windows=3)
    assert [len(w) for w in windows] == [5, 3, 3]
    assert [len(e["target"]) for e in train] == [12, 12, 12, 4, 4, 5]  # the last trains whole
    # only two of five reach 3 windows: one window, every series keeps its other points
    train, windows = carve_windows(series([30, 30, 10, 10, 10]), H, max_windows=3)
    assert [len(w) for w in windows] == [5]
    assert [len(e["target"]) for e in train] == [24, 24, 4, 4, 4]
    # a series without an observed value in a window trains but does not score there
    train, windows = carve_windows(series([30, 30], nan_last=True), H, max_windows=2)
    assert [len(w) for w in windows] == [1, 2] and len(train) == 2


class RecordValidatedWeights(pl.Callback):
    """The weights each validation scored (no EMA: the module's own weights)."""

    def __init__(self) -> None:
        self.states: list[dict[str, torch.Tensor]] = []

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        self.states.append({k: v.clone() for k, v in pl_module.state_dict().items()})


def test_best_validated_weights_are_restored(tmp_path: Path):
    recorder = RecordValidatedWeights()
    result = run_on(
        spiky_data(),
        tmp_path,
        patience=0,
        min_gain=0.0,
        confirm=False,
        trainer_kwargs={"default_root_dir": str(tmp_path), "callbacks": [recorder]},
    )
    report = result.report
    scores = [loss for _, loss in report.history[1:]]
    assert len(scores) == len(recorder.states) == 4
    assert report.best_val_loss == min([report.start_val_loss, *scores])
    net = result.predictor.prediction_net.state_dict()
    assert report.decision == "tuned" and len(report.tuned_scores) == report.windows == 3
    best = recorder.states[int(np.argmin(scores))]
    for key, value in best.items():
        assert torch.equal(net[key], value), key


@pytest.mark.parametrize("validation", ["forecast", "loss"])
def test_a_run_that_never_improves_returns_the_starting_model(tmp_path: Path, validation: str):
    from lagllama.estimators.lag_llama import LagLlamaEstimator

    # a learning rate this large wrecks the model at the first step
    result = small_run(
        tmp_path, lr=5.0, warmup_steps=0, ema_decay=None, max_epochs=2, validation=validation
    )
    assert result.report.metric == ("WQL" if validation == "forecast" else "val_loss")
    assert result.report.decision == "start" and result.report.best_step == 0
    assert "kept the starting model (no epoch beat it on the mean)" in result.report.summary()
    assert result.alternatives == {}  # no tuned weights to choose
    assert all(loss > result.report.start_val_loss for _, loss in result.report.history[1:])
    zero_shot = LagLlamaEstimator.from_pretrained(
        H, freq="M", num_parallel_samples=20, batch_size=8
    ).create_zero_shot_predictor()
    inputs = list(dataset_task("toy", monthly_data(), H).test_data().input)
    paths = []
    for predictor in (result.predictor, zero_shot):
        torch.manual_seed(0)
        paths.append(np.stack([f.samples for f in predictor.predict(inputs)]))
    np.testing.assert_array_equal(paths[0], paths[1])


def test_tuned_weights_that_win_on_every_window_are_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    from lagllama.estimators.lag_llama import LagLlamaEstimator

    seen: dict[str, list] = {}
    original = LagLlamaEstimator.train_model

    def recording(self, train, *args, validation_data=None, **kwargs):
        seen["train"], seen["validation"] = list(train), list(validation_data)
        return original(self, train, *args, validation_data=validation_data, **kwargs)

    monkeypatch.setattr(LagLlamaEstimator, "train_model", recording)
    data = spiky_data()
    result = run_on(data, tmp_path)
    full = {e["item_id"]: e["target"] for e in data}
    for entry in seen["train"]:  # the test window and the three validation windows carved off
        np.testing.assert_array_equal(entry["target"], full[entry["item_id"]][: -4 * H])
    cut = sorted(len(full[e["item_id"]]) - len(e["target"]) for e in seen["validation"])
    assert cut == [H] * 12 + [2 * H] * 12 + [3 * H] * 12  # every series, cut at each window
    report = result.report
    assert report.decision == "tuned" and report.wins == report.windows == 3
    assert np.mean(report.start_scores) - np.mean(report.tuned_scores) > report.margin > 0
    assert report.noise is not None and report.margin >= 0.01 * np.mean(report.start_scores)
    assert "kept the tuned weights" in report.summary() and "3 of 3 windows" in report.rule
    assert result.predictor.prediction_net.state_dict().keys()  # a plain Lag-Llama predictor
    # what the other verdicts would have returned, for a benchmark to measure the rule by
    others = result.alternatives
    assert others["tuned"] is result.predictor and isinstance(others["average"], QuantileAverage)
    start = others["start"].prediction_net.state_dict()
    tuned = result.predictor.prediction_net.state_dict()
    assert any(not torch.equal(start[k], tuned[k]) for k in start)
    assert [
        m is n for m, n in zip(others["average"].members, (others["start"], others["tuned"]))
    ] == [True, True]


def test_a_misleading_last_window_does_not_let_worse_weights_through(tmp_path: Path):
    data = regime_data()
    # a single validation window (the old rule without its confirmation) takes the bait
    single = run_on(data, tmp_path / "single", validation_windows=1, confirm=False)
    assert single.report.decision == "tuned"
    result = run_on(data, tmp_path / "rule")
    report = result.report
    assert report.decision in ("start", "average"), report.summary()
    assert report.windows == 3 and report.summary().startswith(
        "kept the starting model" if report.decision == "start" else "averaged the start"
    )
    # the weights the single window kept are worse on the test window than what the rule kept
    worse = wql_on_test_window(single.predictor, data)
    assert worse > 1.1 * wql_on_test_window(result.predictor, data)


def test_weak_evidence_forecasts_with_the_average_of_start_and_tuned(tmp_path: Path):
    # tuning wins every window, but a margin of a million times the noise is out of reach
    result = run_on(spiky_data(), tmp_path, noise_factor=1e6)
    report, predictor = result.report, result.predictor
    assert report.decision == "average" and isinstance(predictor, QuantileAverage)
    assert "a gain within the margin" in report.rule and report.summary().startswith("averaged")
    # the average's quantile loss is at most the mean of its members', window by window
    mean = (np.array(report.start_scores) + np.array(report.tuned_scores)) / 2
    assert np.all(np.array(report.average_scores) <= mean + 1e-9)
    start, tuned = (m.prediction_net.state_dict() for m in predictor.members)
    assert any(not torch.equal(start[k], tuned[k]) for k in start)
    (tmp_path / "saved").mkdir()
    predictor.serialize(tmp_path / "saved")
    loaded = Predictor.deserialize(tmp_path / "saved")
    assert isinstance(loaded, QuantileAverage) and loaded.weights == [0.5, 0.5]
    assert wql_on_test_window(loaded, spiky_data()) == wql_on_test_window(predictor, spiky_data())


def test_window_rule():
    start = [1.0, 1.0, 1.0]
    assert decide(start, [0.9, 0.9, 0.9], noise=0.001)[0] == "tuned"
    decision, reason, margin = decide(start, [0.7, 1.05, 1.05], noise=0.001)
    assert decision == "average" and reason.startswith("not a majority of windows:")
    assert margin == pytest.approx(0.01)  # the floor: min_gain of the start's mean
    decision, reason, _ = decide(start, [0.998, 0.998, 0.998], noise=0.0)
    assert decision == "average" and reason.startswith("a gain within the margin:")
    decision, _, margin = decide(start, [0.9, 0.9, 0.9], noise=0.06, noise_factor=2.0)
    assert decision == "average" and margin == pytest.approx(0.12)  # the noise's
    decision, reason, _ = decide(start, [0.95, 0.95, 0.95], noise=0.06)  # within the noise
    assert decision == "start" and reason.startswith("no gain on the mean beyond the sampling")
    assert decide(start, [1.1, 0.95, 1.0], noise=0.0)[0] == "start"
    assert decide([1.0, 1.0], [0.5, 1.01], noise=0.0)[0] == "average"  # 1 of 2: no majority


class Fixed(Predictor):
    """Sample forecasts from fixed paths (paths, h), one per entry."""

    def __init__(self, paths: np.ndarray) -> None:
        super().__init__(prediction_length=paths.shape[1])
        self.paths = paths

    def predict(self, dataset, **kwargs):
        for entry in dataset:
            start = entry["start"] + len(entry["target"])
            yield SampleForecast(self.paths, start_date=start, item_id=entry.get("item_id"))


def test_quantile_average_averages_every_quantile_and_keeps_the_first_members_paths():
    rng = np.random.default_rng(0)
    a, b = rng.normal(0, 1, (50, 4)), rng.normal(5, 3, (50, 4))
    entries = [{"start": pd.Period("2000-01", "M"), "target": np.ones(10), "item_id": "x"}]
    (forecast,) = QuantileAverage([Fixed(a), Fixed(b)], [3, 1]).predict(entries)
    fa, fb = (next(Fixed(p).predict(entries)) for p in (a, b))
    for q in (0.01, 0.1, 0.5, 0.9, 0.99):
        np.testing.assert_allclose(
            forecast.quantile(q), 0.75 * fa.quantile(q) + 0.25 * fb.quantile(q)
        )
    np.testing.assert_allclose(forecast.mean, 0.75 * a.mean(axis=0) + 0.25 * b.mean(axis=0))
    ranks = np.argsort(np.argsort(a, axis=0), axis=0)
    np.testing.assert_array_equal(np.argsort(np.argsort(forecast.samples, axis=0), axis=0), ranks)
    other = SampleForecast(b, start_date=fa.start_date + 1, item_id="x")
    with pytest.raises(ValueError, match="disagree on the series"):
        quantile_average([fa, other], [0.5, 0.5])


def test_time_budget_is_respected(tmp_path: Path):
    result = small_run(tmp_path, max_epochs=10_000, max_minutes=0.1, patience=0)
    # Lightning checks max_time between batches: one batch and a validation may overrun
    assert result.report.wall_s < 6 + 15
    assert 0 < result.report.steps < 10_000 * 2


def test_cpu_budget_stops_training(tmp_path: Path):
    result = small_run(tmp_path, max_epochs=10_000, max_cpu_minutes=0.05, patience=0)
    assert result.report.cpu_s < 3 + 15 and result.report.steps < 10_000 * 2


def test_best_weights_needs_validation_data():
    with pytest.raises(ValueError, match="validation"):
        BestWeights().on_train_start(type("T", (), {"val_dataloaders": None})(), None)


def test_min_gain_guards_the_start_and_patience_stops():
    scores = iter([1.0, 0.995, 0.98, 0.985, 0.99])
    best = BestWeights(score=lambda module: next(scores), min_gain=0.01, patience=2)
    module = torch.nn.Linear(2, 2)
    trainer = SimpleNamespace(
        val_dataloaders=[], sanity_checking=False, global_step=0, should_stop=False
    )
    best.on_train_start(trainer, module)
    stops = []
    for step in range(1, 5):
        trainer.global_step = step
        with torch.no_grad():
            module.weight.fill_(step)
        best.on_validation_epoch_end(trainer, module)
        best.on_validation_end(trainer, module)
        stops.append(trainer.should_stop)
    # 0.995 is better than the start but not by 1%; 0.98 is; then two epochs without a new best
    assert (best.best_step, best.best_loss) == (2, 0.98)
    assert stops == [False, False, False, True]
    module.load_state_dict(best.best_state)
    assert torch.all(module.weight == 2)


def test_forecast_score_is_reproducible_and_leaves_the_random_state_alone():
    from lagllama.estimators.lag_llama import LagLlamaEstimator

    estimator = LagLlamaEstimator.from_pretrained(H, freq="M", batch_size=8)
    module = estimator.create_lightning_module()
    _, windows = carve_windows(monthly_data(n=6), H, max_windows=2)
    score = ForecastScore(
        windows,
        H,
        lambda m: estimator.create_predictor(estimator.create_transformation(), m),
        num_samples=20,
        max_series=4,
    )
    assert [len(data) for data in score.test_data] == [4, 4]
    torch.manual_seed(1)
    first = score(module)
    after = torch.rand(3)
    torch.manual_seed(1)
    again = score(module)
    assert np.array_equal(again.wql, first.wql) and torch.equal(torch.rand(3), after)
    assert first.wql.shape == (2,) and float(first) == first.wql.mean()
    assert not np.array_equal(score(module, seed=1).wql, first.wql)  # another seed: noise
    assert module.num_parallel_samples == 100 and module.training
    # the same number as GluonTS's evaluate_forecasts on the same draws
    from gluonts.ev.metrics import MeanWeightedSumQuantileLoss
    from gluonts.model.evaluation import evaluate_forecasts

    metric = MeanWeightedSumQuantileLoss(quantile_levels=WQL_QUANTILES)
    for k, data in enumerate(score.test_data):
        row = evaluate_forecasts(first.forecasts[k], test_data=data, metrics=[metric])
        gluonts = float(row["mean_weighted_sum_quantile_loss"].iloc[0])
        assert first.wql[k] == pytest.approx(gluonts, rel=1e-6)
    # a wrecked model scores worse on the same draws
    with torch.no_grad():
        for p in module.model.decoder.blocks.parameters():
            p.add_(torch.randn_like(p))
    assert float(score(module)) > float(first)


def test_windows_leave_the_series_something_to_train_on():
    """Car parts' shape: 39 points and h = 12. Three windows would leave 3 points, too few for
    a training window (1 + 12), so there are two and every series keeps 15."""
    h = 12
    data = ListDataset(
        [
            {"start": pd.Period("2000-01", "M"), "target": np.arange(39.0), "item_id": i}
            for i in range(4)
        ],
        freq="M",
    )
    assert len(carve_windows(data, h, max_windows=3)[1]) == 3  # no training length asked
    train, windows = carve_windows(data, h, max_windows=3, train_length=h + 1)
    assert len(windows) == 2 and [len(e["target"]) for e in train] == [15] * 4
