"""GluonTS estimator for Time-LLM (frozen language model, trainable reprogramming adapter)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import lightning.pytorch as pl
import torch
from gluonts.core.component import validated
from gluonts.dataset.common import Dataset
from gluonts.dataset.field_names import FieldName
from gluonts.dataset.loader import as_stacked_batches
from gluonts.itertools import Cyclic
from gluonts.model.forecast_generator import SampleForecastGenerator
from gluonts.torch.model.estimator import PyTorchLightningEstimator
from gluonts.torch.model.predictor import PyTorchPredictor
from gluonts.transform import (
    AddObservedValuesIndicator,
    ExpectedNumInstanceSampler,
    InstanceSampler,
    InstanceSplitter,
    SelectFields,
    TestSplitSampler,
    Transformation,
    ValidationSplitSampler,
)

from .backbone import MINILM_ALIAS
from .lightning_module import LR_SCHEDULES, TimeLLMLightningModule
from .module import TimeLLMConfig
from .prompt import DEFAULT_DESCRIPTION

PREDICTION_INPUT_NAMES = ["past_target", "past_observed_values"]
TRAINING_INPUT_NAMES = PREDICTION_INPUT_NAMES + ["future_target", "future_observed_values"]


class TimeLLMEstimator(PyTorchLightningEstimator):
    """Time-LLM (Jin et al., 2024) as a GluonTS estimator, point or probabilistic.

    A frozen pretrained language model (``backbone``: any ``AutoModel`` name or path of
    the LLaMA, GPT-2 or BERT families; default: the offline MiniLM package) is fed a
    Prompt-as-Prefix followed by patches reprogrammed onto text prototypes; only the
    adapter (patch embedding, reprogramming, output projection) is trained. Serialized
    predictors reference the backbone by ``backbone`` and do not contain its weights.

    Parameters
    ----------
    prediction_length
        Forecast horizon.
    context_length
        Input length (default ``512``).
    backbone, llm_layers, backbone_init, patch_len, stride, d_model, n_heads, d_ff, num_prototypes,
    attention_scale, description, top_k_lags, max_prompt_length, dropout, num_parallel_samples
        See :class:`~lagllama.estimators.time_llm.module.TimeLLMConfig`.
    head
        ``"student_t"`` (default; NLL, sample-path forecasts) or ``"point"`` (MSE; a
        forecast holding the point prediction as its single sample).
    loss_space
        ``"normalized"`` (default) or ``"data"``; see ``TimeLLMConfig``.
    lr, weight_decay, lr_schedule, pct_start
        Adam settings and the learning-rate schedule (see ``TimeLLMLightningModule``).
    batch_size, num_batches_per_epoch
        Training batches.
    trainer_kwargs
        Extra ``lightning.pytorch.Trainer`` arguments (e.g. ``max_epochs``, ``max_time``).
    train_sampler, validation_sampler
        Window samplers.
    """

    @validated()
    def __init__(
        self,
        prediction_length: int,
        context_length: int = 512,
        backbone: str = MINILM_ALIAS,
        llm_layers: int | None = None,
        backbone_init: str = "pretrained",
        patch_len: int = 16,
        stride: int = 8,
        d_model: int = 32,
        n_heads: int = 8,
        d_ff: int = 32,
        num_prototypes: int = 1000,
        attention_scale: float | None = None,
        description: str = DEFAULT_DESCRIPTION,
        top_k_lags: int = 5,
        max_prompt_length: int = 256,
        head: str = "student_t",
        loss_space: str = "normalized",
        num_parallel_samples: int = 100,
        dropout: float = 0.1,
        lr: float = 1e-3,
        weight_decay: float = 1e-8,
        lr_schedule: str = "onecycle",
        pct_start: float = 0.2,
        batch_size: int = 32,
        num_batches_per_epoch: int = 50,
        trainer_kwargs: dict[str, Any] | None = None,
        train_sampler: InstanceSampler | None = None,
        validation_sampler: InstanceSampler | None = None,
    ) -> None:
        default_trainer_kwargs: dict[str, Any] = {"max_epochs": 10, "gradient_clip_val": 10.0}
        if trainer_kwargs is not None:
            default_trainer_kwargs.update(trainer_kwargs)
        super().__init__(trainer_kwargs=default_trainer_kwargs)

        self.prediction_length = prediction_length
        self.context_length = context_length
        self.model_kwargs = {
            "prediction_length": prediction_length,
            "context_length": context_length,
            "backbone": backbone,
            "llm_layers": llm_layers,
            "backbone_init": backbone_init,
            "patch_len": patch_len,
            "stride": stride,
            "d_model": d_model,
            "n_heads": n_heads,
            "d_ff": d_ff,
            "num_prototypes": num_prototypes,
            "attention_scale": attention_scale,
            "description": description,
            "top_k_lags": top_k_lags,
            "max_prompt_length": max_prompt_length,
            "head": head,
            "loss_space": loss_space,
            "num_parallel_samples": num_parallel_samples,
            "dropout": dropout,
        }
        TimeLLMConfig(**self.model_kwargs)  # bad options fail here, not at train
        if lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}, got {lr_schedule!r}")
        self.lr = lr
        self.weight_decay = weight_decay
        self.lr_schedule = lr_schedule
        self.pct_start = pct_start
        self.batch_size = batch_size
        self.num_batches_per_epoch = num_batches_per_epoch
        self.train_sampler = train_sampler or ExpectedNumInstanceSampler(
            num_instances=1.0, min_future=prediction_length
        )
        self.validation_sampler = validation_sampler or ValidationSplitSampler(
            min_future=prediction_length
        )

    def create_transformation(self) -> Transformation:
        return SelectFields(
            [FieldName.ITEM_ID, FieldName.INFO, FieldName.START, FieldName.TARGET],
            allow_missing=True,
        ) + AddObservedValuesIndicator(
            target_field=FieldName.TARGET, output_field=FieldName.OBSERVED_VALUES
        )

    def create_lightning_module(self) -> pl.LightningModule:
        return TimeLLMLightningModule(
            model_kwargs=dict(self.model_kwargs),
            lr=self.lr,
            weight_decay=self.weight_decay,
            lr_schedule=self.lr_schedule,
            pct_start=self.pct_start,
            num_batches_per_epoch=self.num_batches_per_epoch,
        )

    def _create_instance_splitter(self, module: TimeLLMLightningModule, mode: str):
        assert mode in ["training", "validation", "test"]
        instance_sampler = {
            "training": self.train_sampler,
            "validation": self.validation_sampler,
            "test": TestSplitSampler(),
        }[mode]
        return InstanceSplitter(
            target_field=FieldName.TARGET,
            is_pad_field=FieldName.IS_PAD,
            start_field=FieldName.START,
            forecast_start_field=FieldName.FORECAST_START,
            instance_sampler=instance_sampler,
            past_length=self.context_length,
            future_length=self.prediction_length,
            time_series_fields=[FieldName.OBSERVED_VALUES],
            dummy_value=0.0,
        )

    def create_training_data_loader(
        self,
        data: Dataset,
        module: TimeLLMLightningModule,
        shuffle_buffer_length: int | None = None,
        **kwargs,
    ) -> Iterable:
        instances = self._create_instance_splitter(module, "training").apply(
            Cyclic(data).stream(), is_train=True
        )
        return as_stacked_batches(
            instances,
            batch_size=self.batch_size,
            shuffle_buffer_length=shuffle_buffer_length,
            field_names=TRAINING_INPUT_NAMES,
            output_type=torch.tensor,
            num_batches_per_epoch=self.num_batches_per_epoch,
        )

    def create_validation_data_loader(
        self, data: Dataset, module: TimeLLMLightningModule, **kwargs
    ) -> Iterable:
        instances = self._create_instance_splitter(module, "validation").apply(data, is_train=True)
        return as_stacked_batches(
            instances,
            batch_size=self.batch_size,
            field_names=TRAINING_INPUT_NAMES,
            output_type=torch.tensor,
        )

    def create_predictor(
        self, transformation: Transformation, module: TimeLLMLightningModule
    ) -> PyTorchPredictor:
        return PyTorchPredictor(
            input_transform=transformation + self._create_instance_splitter(module, "test"),
            input_names=PREDICTION_INPUT_NAMES,
            prediction_net=module,
            forecast_generator=SampleForecastGenerator(),
            batch_size=self.batch_size,
            prediction_length=self.prediction_length,
            device="auto",
        )


# With postponed annotations GluonTS's pydantic model of ``__init__`` cannot resolve the
# sampler type by itself, and passing a sampler would fail with a ForwardRef error.
TimeLLMEstimator.__init__.Model.update_forward_refs(InstanceSampler=InstanceSampler)
