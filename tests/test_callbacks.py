"""CPU-time budget callback: training stops once the budget is spent, not before."""

from __future__ import annotations

import time

import lightning.pytorch as pl
import pytest
import torch


class Tiny(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(64, 64)

    def training_step(self, batch: torch.Tensor, batch_idx: int) -> torch.Tensor:
        return self.layer(batch).pow(2).mean()

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=1e-3)


def test_cpu_time_budget_stops_training_once_spent() -> None:
    from lagllama.training.callbacks import CPUTimeBudget

    budget = 0.5
    data = torch.utils.data.DataLoader(torch.randn(256, 64), batch_size=8)
    trainer = pl.Trainer(
        max_epochs=10_000,
        callbacks=[CPUTimeBudget(budget)],
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    start = time.process_time()
    trainer.fit(Tiny(), data)
    spent = time.process_time() - start
    assert spent >= budget
    assert trainer.current_epoch < 9_999  # stopped by the budget, not by max_epochs
    assert spent < budget + 5.0
    with pytest.raises(ValueError, match="budget"):
        CPUTimeBudget(0)
