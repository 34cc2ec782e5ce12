"""Lightning wrapper of :class:`TimeLLMModel` (GluonTS style: ``model_kwargs`` dict)."""

from __future__ import annotations

import lightning.pytorch as pl
import torch
from gluonts.core.component import validated
from gluonts.itertools import select

from .module import TimeLLMModel


class TimeLLMLightningModule(pl.LightningModule):
    """Trains the adapter of a ``TimeLLMModel``; the backbone is frozen and never saved.

    Parameters
    ----------
    model_kwargs
        Keyword arguments of ``TimeLLMModel`` (see ``TimeLLMConfig``).
    lr
        Learning rate of Adam.
    weight_decay
        Weight decay of Adam.
    """

    @validated()
    def __init__(self, model_kwargs: dict, lr: float = 1e-3, weight_decay: float = 1e-8) -> None:
        super().__init__()
        self.model = TimeLLMModel(**model_kwargs)
        self.lr = lr
        self.weight_decay = weight_decay
        self.inputs = self.model.describe_inputs()

    def forward(self, *args, **kwargs):
        return self.model.forward(*args, **kwargs)

    def _loss(self, batch) -> torch.Tensor:
        return self.model.loss(
            **select(self.inputs, batch),
            future_target=batch["future_target"],
            future_observed_values=batch["future_observed_values"],
        ).mean()

    def training_step(self, batch, batch_idx: int):  # type: ignore[override]
        loss = self._loss(batch)
        self.log("train_loss", loss, on_epoch=True, on_step=False, prog_bar=True)
        return loss

    def validation_step(self, batch, batch_idx: int):  # type: ignore[override]
        loss = self._loss(batch)
        self.log("val_loss", loss, on_epoch=True, on_step=False, prog_bar=True)
        return loss

    def configure_optimizers(self):
        params = [p for p in self.model.parameters() if p.requires_grad]
        return torch.optim.Adam(params, lr=self.lr, weight_decay=self.weight_decay)
