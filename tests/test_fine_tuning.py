"""Fine-tuning recipe: validation carved before the test window, best weights restored, the
starting model kept when nothing beats it, budgets respected."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import lightning.pytorch as pl
import numpy as np
import pandas as pd
import pytest
import torch
from gluonts.dataset.common import ListDataset

from lagllama.data.tasks import dataset_task
from lagllama.training.fine_tuning import BestWeights, ForecastScore, carve_validation, fine_tune

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


def small_run(tmp_path: Path, **kwargs):
    values = {
        "batch_size": 8,
        "num_batches_per_epoch": 2,
        "max_epochs": 4,
        "num_parallel_samples": 20,
        "trainer_kwargs": {"default_root_dir": str(tmp_path), "enable_progress_bar": False},
    }
    return fine_tune(monthly_data(), H, freq="M", **{**values, **kwargs})


def test_validation_window_is_before_the_test_window():
    data = monthly_data(n=4)
    task = dataset_task("toy", data, H)
    train, validation = carve_validation(task.train_data(), H)
    full = {e["item_id"]: e["target"] for e in data}
    for entry in train:
        np.testing.assert_array_equal(entry["target"], full[entry["item_id"]][: -2 * H])
    for entry in validation:
        # the validation window is the H points just before the test window
        np.testing.assert_array_equal(entry["target"], full[entry["item_id"]][:-H])
    short = ListDataset([{"start": pd.Period("2000", "Y"), "target": np.arange(5.0)}], freq="Y")
    with pytest.raises(ValueError, match="validation window of 6"):
        carve_validation(short, H)


class RecordValidatedWeights(pl.Callback):
    """The weights each validation scored (no EMA: the module's own weights)."""

    def __init__(self) -> None:
        self.states: list[dict[str, torch.Tensor]] = []

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        self.states.append({k: v.clone() for k, v in pl_module.state_dict().items()})


def test_best_validated_weights_are_restored(tmp_path: Path):
    recorder = RecordValidatedWeights()
    result = small_run(
        tmp_path,
        ema_decay=None,
        lr=3e-3,
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
    if report.kept_start:
        pytest.skip("no epoch beat the starting model in this run")
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
    assert result.report.kept_start and result.report.best_step == 0
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


def test_confirmation_window_is_never_trained_or_selected_on_and_decides(
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
    task = dataset_task("toy", data, H)  # its train data ends before the test window
    result = fine_tune(
        task.train_data(),
        H,
        freq="M",
        batch_size=8,
        num_batches_per_epoch=4,
        max_epochs=4,
        num_parallel_samples=20,
        lr=3e-3,
        min_gain=0.0,
        trainer_kwargs={"default_root_dir": str(tmp_path), "enable_progress_bar": False},
    )
    full = {e["item_id"]: e["target"] for e in data}
    for entry in seen["train"]:  # test, confirmation and selection windows all carved off
        np.testing.assert_array_equal(entry["target"], full[entry["item_id"]][: -3 * H])
    for entry in seen["validation"]:  # weights are chosen on the window before the last
        np.testing.assert_array_equal(entry["target"], full[entry["item_id"]][: -2 * H])
    report = result.report
    beaten = any(loss < report.start_val_loss for _, loss in report.history[1:])
    assert beaten, "no epoch beat the start: the confirmation was not exercised"
    assert report.confirm_best is not None and report.confirm_start is not None
    assert report.kept_start == (report.confirm_best >= report.confirm_start)


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
    best.restore(module)
    assert torch.all(module.weight == 2)


def test_forecast_score_is_reproducible_and_leaves_the_random_state_alone():
    from lagllama.estimators.lag_llama import LagLlamaEstimator

    estimator = LagLlamaEstimator.from_pretrained(H, freq="M", batch_size=8)
    module = estimator.create_lightning_module()
    _, validation = carve_validation(monthly_data(n=6), H)
    score = ForecastScore(
        validation,
        H,
        lambda m: estimator.create_predictor(estimator.create_transformation(), m),
        num_samples=20,
        max_series=4,
    )
    assert len(score.test_data) == 4
    torch.manual_seed(1)
    first = score(module)
    after = torch.rand(3)
    torch.manual_seed(1)
    assert score(module) == first and torch.equal(torch.rand(3), after)
    assert module.num_parallel_samples == 100 and module.training
    # the same number as GluonTS's evaluate_forecasts on the same draws
    from gluonts.ev.metrics import MeanWeightedSumQuantileLoss
    from gluonts.model.evaluation import evaluate_forecasts

    from lagllama.evaluation.backtest import WQL_QUANTILES

    module.num_parallel_samples = 20
    torch.manual_seed(0)
    forecasts = list(
        estimator.create_predictor(estimator.create_transformation(), module).predict(
            score.test_data.input
        )
    )
    module.num_parallel_samples = 100
    metric = MeanWeightedSumQuantileLoss(quantile_levels=WQL_QUANTILES)
    row = evaluate_forecasts(forecasts, test_data=score.test_data, metrics=[metric])
    assert first == pytest.approx(float(row["mean_weighted_sum_quantile_loss"].iloc[0]), rel=1e-6)
    # a wrecked model scores worse on the same draws
    with torch.no_grad():
        for p in module.model.decoder.blocks.parameters():
            p.add_(torch.randn_like(p))
    assert score(module) > first
