"""Lightning wrapper of :class:`LagLlamaModel`: loss, augmentation, optimiser, sampling."""

import math
import warnings
from collections.abc import Callable
from typing import Any

import lightning.pytorch as pl
import torch
from gluonts.core.component import validated

from lagllama.estimators.lag_llama.config import LagLlamaConfig
from lagllama.estimators.lag_llama.module import COVARIATE_INPUTS, LagLlamaModel
from lagllama.nn.augmentation import AugmentationConfig, augment
from lagllama.nn.precision import check_sampling_precision, warn_slow_bf16_training
from lagllama.training.schedules import planned_steps, warmup_cosine


class LagLlamaLightningModule(pl.LightningModule):
    """Trains a Lag-Llama model; its ``forward`` draws sample paths for GluonTS predictors.

    ``model_kwargs`` holds the :class:`LagLlamaConfig` fields as plain values, so checkpoints
    carry the architecture and load with ``torch.load(weights_only=True)``.

    ``schedule_offset`` continues a warm-up + cosine schedule from that step (a run resumed
    from weights only, with a fresh optimiser), with ``rewarmup_steps`` of linear warm-up.
    ``torch_compile`` compiles the loss with ``torch.compile`` (fused kernels, faster steps);
    if compiling fails (no C++ compiler, an unsupported op) training warns once and runs
    eagerly.
    """

    @validated()
    def __init__(
        self,
        model_kwargs: dict,
        lr: float = 1e-3,
        weight_decay: float = 1e-8,
        warmup_steps: int = 0,
        augmentation: dict | None = None,
        num_parallel_samples: int = 100,
        use_kv_cache: bool = True,
        num_batches_per_epoch: int | None = None,
        schedule_offset: int = 0,
        rewarmup_steps: int = 0,
        torch_compile: bool = False,
        sampling_precision: str = "32",
    ) -> None:
        super().__init__()
        self.config = LagLlamaConfig.from_dict(model_kwargs)
        self.model = LagLlamaModel(self.config)
        self.lr = lr
        self.weight_decay = weight_decay
        self.warmup_steps = warmup_steps
        self.augmentation = AugmentationConfig(**(augmentation or {}))
        self.num_parallel_samples = num_parallel_samples
        self.use_kv_cache = use_kv_cache
        self.num_batches_per_epoch = num_batches_per_epoch
        self.schedule_offset = schedule_offset
        self.rewarmup_steps = rewarmup_steps
        self.torch_compile = torch_compile
        self.sampling_precision = check_sampling_precision(sampling_precision)
        self._compiled_loss: Callable[..., torch.Tensor] | None = None
        self.save_hyperparameters(
            {
                "model_kwargs": self.config.to_dict(),
                "lr": lr,
                "weight_decay": weight_decay,
                "warmup_steps": warmup_steps,
                "augmentation": augmentation,
                "num_parallel_samples": num_parallel_samples,
                "use_kv_cache": use_kv_cache,
                "num_batches_per_epoch": num_batches_per_epoch,
                "schedule_offset": schedule_offset,
                "rewarmup_steps": rewarmup_steps,
                "torch_compile": torch_compile,
                "sampling_precision": sampling_precision,
            }
        )

    def forward(
        self,
        past_target: torch.Tensor,
        past_observed_values: torch.Tensor,
        past_time_feat: torch.Tensor | None = None,
        future_time_feat: torch.Tensor | None = None,
        sample_seed: torch.Tensor | None = None,
        **covariates: torch.Tensor,
    ) -> torch.Tensor:
        """Sample paths (B, num_parallel_samples, prediction_length); with ``sample_seed``
        (B,) each series draws from its own generator (see :meth:`LagLlamaModel.sample`);
        ``covariates``: the inputs of ``COVARIATE_INPUTS`` the model was built with."""
        return self.model.sample(
            past_target,
            past_observed_values,
            past_time_feat,
            future_time_feat,
            num_samples=self.num_parallel_samples,
            use_kv_cache=self.use_kv_cache,
            seeds=sample_seed,
            precision=self.sampling_precision,
            covariates=covariates or None,
        )

    def on_fit_start(self) -> None:
        """Warn before a slow run: bf16 training on a CPU without bf16 instructions."""
        warn_slow_bf16_training(self.trainer.precision, self.device)

    def _loss(self, batch: dict[str, torch.Tensor], train: bool) -> torch.Tensor:
        past, future = batch["past_target"], batch["future_target"]
        past_obs, future_obs = batch["past_observed_values"], batch["future_observed_values"]
        if train and self.augmentation.active:
            window = torch.cat((past, future), dim=1)
            complete = torch.cat((past_obs, future_obs), dim=1).bool().all(dim=1)
            window = augment(window, self.augmentation, eligible=complete)
            past, future = window[:, : past.shape[1]], window[:, past.shape[1] :]
        args = (past, past_obs, future, future_obs)
        args += (batch.get("past_time_feat"), batch.get("future_time_feat"))
        covariates = {k: batch[k] for k in COVARIATE_INPUTS if k in batch}
        return self._model_loss(*args, covariates or None).mean()

    def _model_loss(self, *args: Any) -> torch.Tensor:
        """``model.loss``, compiled on first use when ``torch_compile`` (eager if that fails)."""
        if not self.torch_compile:
            return self.model.loss(*args)
        if self._compiled_loss is None:
            compiled = torch.compile(self.model.loss)
            try:
                loss = compiled(*args)
            except Exception as err:  # any compiler failure: run eagerly
                warnings.warn(
                    f"torch.compile failed ({type(err).__name__}: {err}); training runs eagerly",
                    stacklevel=2,
                )
                self.torch_compile = False
                return self.model.loss(*args)
            self._compiled_loss = compiled
            return loss
        return self._compiled_loss(*args)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = self._loss(batch, train=True)
        self.log("train_loss", loss, on_epoch=True, on_step=False, prog_bar=True)
        if self.config.ffn == "moe":
            aux = self.model.decoder.aux_loss().detach()
            self.log("moe_aux_loss", aux, on_epoch=True, on_step=False)
        return loss

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = self._loss(batch, train=False)
        self.log("val_loss", loss, on_epoch=True, on_step=False, prog_bar=True)
        return loss

    def configure_optimizers(self) -> dict[str, Any]:
        """AdamW; linear warm-up, then cosine decay when the run length is known."""
        optimizer = torch.optim.AdamW(self.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        total = (
            planned_steps(self.trainer, self.num_batches_per_epoch)
            if self._trainer is not None
            else math.inf
        )
        offset, rewarmup = self.schedule_offset, self.rewarmup_steps

        def factor(step: int) -> float:
            ramp = min(1.0, (step + 1) / rewarmup) if rewarmup else 1.0
            return ramp * warmup_cosine(step + offset, self.warmup_steps, total + offset)

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }
