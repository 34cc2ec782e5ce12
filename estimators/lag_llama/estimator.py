"""``LagLlamaEstimator``: GluonTS transformations, instance splitters, loaders and predictor."""

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
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
    AddTimeFeatures,
    AsNumpyArray,
    Chain,
    ExpectedNumInstanceSampler,
    InstanceSampler,
    InstanceSplitter,
    MapTransformation,
    TestSplitSampler,
    Transformation,
    ValidationSplitSampler,
)
from lightning.pytorch.callbacks import EMAWeightAveraging

from lagllama.data.frequency import default_time_features, resolve_lags, validate_freq
from lagllama.estimators.lag_llama.config import LagLlamaConfig
from lagllama.estimators.lag_llama.lightning_module import LagLlamaLightningModule
from lagllama.estimators.lag_llama.module import COVARIATE_INPUTS
from lagllama.nn.precision import check_sampling_precision

TIME_FEAT = "time_feat"
#: Constructor arguments that define the network; a checkpoint fixes them (the estimator
#: takes ``time_features`` rather than ``num_time_features``).
ARCHITECTURE_ARGS = tuple(
    k for k in LagLlamaConfig.fields_with_role("architecture") if k != "num_time_features"
)
#: Covariate arguments: a checkpoint without covariates may gain them (their input weights
#: start at zero); one with covariates fixes them.
COVARIATE_ARGS = LagLlamaConfig.fields_with_role("covariate")
#: Config fields a checkpoint carries that a fine-tuning run may change.
TRAINING_CONFIG_ARGS = LagLlamaConfig.fields_with_role("training")


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a Lightning checkpoint of a Lag-Llama model, or raise naming what is wrong."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # pickle/zip errors differ across torch versions
        raise ValueError(f"{path} is not a readable torch checkpoint: {err}") from err
    hparams = ckpt.get("hyper_parameters", {}) if isinstance(ckpt, dict) else {}
    if "state_dict" not in ckpt or "model_kwargs" not in hparams:
        raise ValueError(f"{path} is not a Lag-Llama checkpoint (no model_kwargs/state_dict)")
    LagLlamaConfig.from_dict(hparams["model_kwargs"])  # validates the architecture
    return ckpt


def load_weights(module: LagLlamaLightningModule, state: dict[str, torch.Tensor]) -> None:
    """Load a checkpoint's weights; a checkpoint without covariates may lack exactly the
    covariate weights of a model built with them (those keep their init: a zero projection)."""
    missing, unexpected = module.load_state_dict(state, strict=False)
    new = [k for k in missing if k.startswith(("model.covariate_proj.", "model.embedder."))]
    if unexpected or len(new) != len(missing):
        raise ValueError(
            "the checkpoint does not fit this model: "
            f"missing {sorted(set(missing) - set(new))}, unexpected {sorted(unexpected)}"
        )


class CheckCovariates(MapTransformation):
    """Every entry carries the covariates the model was built with, in the right shape and
    finite, or an error names the series and the field (GluonTS would fail deep in batching)."""

    @validated()
    def __init__(self, model_kwargs: dict, prediction_length: int) -> None:
        self.config = LagLlamaConfig.from_dict(model_kwargs)
        self.prediction_length = prediction_length

    def map_transform(self, data: dict[str, Any], is_train: bool) -> dict[str, Any]:
        c, T = self.config, len(data[FieldName.TARGET])
        future = 0 if is_train else self.prediction_length
        item = data.get(FieldName.ITEM_ID, "?")
        dynamic = (
            (FieldName.FEAT_DYNAMIC_REAL, c.num_feat_dynamic_real, T + future),
            (FieldName.PAST_FEAT_DYNAMIC_REAL, c.num_past_feat_dynamic_real, T),
        )
        for name, size, length in dynamic:
            if not size:
                continue
            value = np.asarray(self._field(data, name, item), dtype=np.float32)
            if value.ndim == 1 and size == 1:
                value = value[None, :]
            if value.ndim != 2 or value.shape[0] != size or value.shape[1] < length:
                raise ValueError(
                    f"series {item}: {name} must have shape ({size}, >= {length}) "
                    f"(covariates x {'history' if length == T else 'history + horizon'}), "
                    f"got {value.shape}"
                )
            bad = ~np.isfinite(value[:, :length])
            if bad.any():
                row, step = np.argwhere(bad)[0]
                raise ValueError(f"series {item}: {name}[{row}] is not finite at step {step}")
            data[name] = value
        statics = (
            (FieldName.FEAT_STATIC_REAL, c.num_feat_static_real, np.float32),
            (FieldName.FEAT_STATIC_CAT, c.num_feat_static_cat, np.int64),
        )
        for name, size, dtype in statics:
            if not size:
                continue
            value = np.asarray(self._field(data, name, item), dtype=dtype).reshape(-1)
            if value.shape != (size,):
                raise ValueError(f"series {item}: {name} must hold {size} values, got {value}")
            if name == FieldName.FEAT_STATIC_CAT:
                for i, (code, cardinality) in enumerate(zip(value, c.cardinality)):
                    if not 0 <= code < cardinality:
                        raise ValueError(
                            f"series {item}: feat_static_cat[{i}] = {code} is outside the "
                            f"cardinality {cardinality} the model was built with"
                        )
            data[name] = value
        return data

    @staticmethod
    def _field(data: dict[str, Any], name: str, item: Any) -> Any:
        if name not in data:
            raise ValueError(f"series {item} has no {name}, which this model was built with")
        return data[name]


class _FinalEMA(EMAWeightAveraging):
    """Lightning's EMA callback, remembering the averaged weights it leaves at fit end."""

    final_state: dict[str, torch.Tensor] | None = None

    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        super().on_train_end(trainer, pl_module)
        self.final_state = {k: v.detach().clone() for k, v in pl_module.state_dict().items()}


class LagLlamaEstimator(PyTorchLightningEstimator):
    """Lag-Llama (Rasul et al., 2023) as a GluonTS estimator.

    ``freq`` selects GluonTS's lags for the data; ``lags_seq="lag-llama"`` uses the
    frequency-independent union of the paper, and so does giving neither (as the official
    estimator, which has no ``freq``, does); calendar features always come from each
    series' own ``start`` period, so one model serves every frequency. ``context_length=None`` uses
    ``max(32, prediction_length)``. Series shorter than ``context_length + max(lags)`` are
    padded and masked, never dropped. ``trainer_kwargs`` go to ``lightning.Trainer``.

    Informer / Time-MoE options (defaults: the plain Lag-Llama): ``attention="probsparse"``
    with ``probsparse_factor`` c (causal ProbSparse attention, u = c ln L active queries),
    ``distil=True`` (causal distilling of the context tokens between blocks; sampling then
    recomputes the window instead of using the KV cache), ``ffn="moe"`` with ``num_experts``,
    ``experts_top_k`` and ``aux_loss_weight`` (sparse MoE with a shared expert and the
    load-balancing loss), ``loss="huber"`` with ``huber_delta`` (Huber on the location).

    ``ema_decay`` (e.g. 0.995) keeps an exponential moving average of the weights
    (Lightning's ``EMAWeightAveraging``); the trained predictor uses the final average,
    which makes short autoregressive training runs far less noisy. ``torch_compile``
    compiles the training loss (faster steps; falls back to eager with a warning).
    ``sampling_precision="bf16"`` samples with the decoder's matrix products in bfloat16
    (faster on GPUs and CPUs with bf16 instructions; default ``"32"``, plain float32).
    """

    @validated()
    def __init__(
        self,
        prediction_length: int,
        freq: str | None = None,
        context_length: int | None = None,
        lags_seq: Sequence[int] | str | None = None,
        n_layer: int = 4,
        n_head: int = 4,
        n_embd_per_head: int = 16,
        dropout: float = 0.0,
        scaling: str = "robust",
        time_features: bool = True,
        observed_lag_features: bool = False,
        distr_output: str = "student_t",
        rope_scaling: str | None = None,
        rope_factor: float = 1.0,
        sampling_window: int | None = None,
        attention: str = "full",
        probsparse_factor: float = 5.0,
        distil: bool = False,
        ffn: str = "swiglu",
        num_experts: int = 8,
        experts_top_k: int = 2,
        aux_loss_weight: float = 0.01,
        loss: str = "nll",
        huber_delta: float = 2.0,
        num_feat_dynamic_real: int = 0,
        num_past_feat_dynamic_real: int = 0,
        num_feat_static_real: int = 0,
        num_feat_static_cat: int = 0,
        cardinality: Sequence[int] | None = None,
        embedding_dimension: Sequence[int] | None = None,
        augmentation: dict | None = None,
        lr: float = 1e-3,
        weight_decay: float = 1e-8,
        warmup_steps: int = 0,
        batch_size: int = 64,
        num_batches_per_epoch: int = 50,
        num_parallel_samples: int = 100,
        use_kv_cache: bool = True,
        sampling_precision: str = "32",
        ema_decay: float | None = None,
        torch_compile: bool = False,
        train_sampler: InstanceSampler | None = None,
        validation_sampler: InstanceSampler | None = None,
        trainer_kwargs: dict[str, Any] | None = None,
        init_checkpoint: str | None = None,
    ) -> None:
        trainer_kwargs = {"max_epochs": 50, "gradient_clip_val": 10.0, **(trainer_kwargs or {})}
        super().__init__(trainer_kwargs=trainer_kwargs)
        if prediction_length < 1:
            raise ValueError(f"prediction_length must be >= 1, got {prediction_length}")
        self.freq = validate_freq(freq) if freq is not None else None
        self.prediction_length = prediction_length
        self.context_length = context_length or max(32, prediction_length)
        self.time_features = default_time_features() if time_features else []
        self.model_kwargs = LagLlamaConfig(
            context_length=self.context_length,
            prediction_length=prediction_length,
            lags_seq=resolve_lags(lags_seq, freq),
            n_layer=n_layer,
            n_head=n_head,
            n_embd_per_head=n_embd_per_head,
            dropout=dropout,
            scaling=scaling,
            num_time_features=len(self.time_features),
            observed_lag_features=observed_lag_features,
            distr_output=distr_output,
            rope_scaling=rope_scaling,
            rope_factor=rope_factor,
            sampling_window=sampling_window,
            attention=attention,
            probsparse_factor=probsparse_factor,
            distil=distil,
            ffn=ffn,
            num_experts=num_experts,
            experts_top_k=experts_top_k,
            aux_loss_weight=aux_loss_weight,
            loss=loss,
            huber_delta=huber_delta,
            num_feat_dynamic_real=num_feat_dynamic_real,
            num_past_feat_dynamic_real=num_past_feat_dynamic_real,
            num_feat_static_real=num_feat_static_real,
            num_feat_static_cat=num_feat_static_cat,
            cardinality=list(cardinality or []),
            embedding_dimension=None if embedding_dimension is None else list(embedding_dimension),
        ).to_dict()
        self.module_kwargs = {
            "lr": lr,
            "weight_decay": weight_decay,
            "warmup_steps": warmup_steps,
            "augmentation": augmentation,
            "num_parallel_samples": num_parallel_samples,
            "use_kv_cache": use_kv_cache,
            "sampling_precision": check_sampling_precision(sampling_precision),
            "torch_compile": torch_compile,
        }
        self.batch_size = batch_size
        self.num_batches_per_epoch = num_batches_per_epoch
        self.init_checkpoint = init_checkpoint
        self._window_from_checkpoint = False  # set by from_checkpoint; widened by training
        if ema_decay is not None and not 0.0 < ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in (0, 1), got {ema_decay}")
        self.ema_decay = ema_decay
        self.train_sampler = train_sampler or ExpectedNumInstanceSampler(
            num_instances=1.0, min_past=1, min_future=prediction_length
        )
        self.validation_sampler = validation_sampler or ValidationSplitSampler(
            min_future=prediction_length
        )

    @classmethod
    def from_checkpoint(
        cls, path: str | Path, prediction_length: int, **overrides: Any
    ) -> "LagLlamaEstimator":
        """An estimator whose architecture and initial weights come from a checkpoint.

        Use it to fine-tune (``.train``) or for zero-shot forecasts
        (``.create_zero_shot_predictor()``). Architecture arguments cannot be overridden;
        training arguments (lr, trainer_kwargs, context_length, ...) can.
        """
        saved = load_checkpoint(path)["hyper_parameters"]["model_kwargs"]
        # checkpoints written before a field existed get that field's default
        model_kwargs = {**LagLlamaConfig().to_dict(), **saved}
        clash = sorted(
            key
            for key in ARCHITECTURE_ARGS
            if key in overrides and overrides[key] != model_kwargs[key]
        )
        if clash:
            raise ValueError(f"the checkpoint fixes {clash}; drop these arguments")
        if any(model_kwargs[key] for key in COVARIATE_ARGS):  # lists are empty without counts
            fixed = {k: model_kwargs[k] for k in COVARIATE_ARGS}
            clash = sorted(k for k in COVARIATE_ARGS if k in overrides and overrides[k] != fixed[k])
            if clash:
                raise ValueError(
                    f"the checkpoint was trained with covariates {fixed}; drop {clash}"
                )
            overrides = {**overrides, **fixed}
        arch = {key: model_kwargs[key] for key in ARCHITECTURE_ARGS}
        arch["time_features"] = model_kwargs["num_time_features"] > 0
        arch.setdefault("context_length", model_kwargs["context_length"])
        for key in TRAINING_CONFIG_ARGS:
            arch[key] = model_kwargs[key]
        arch.update({k: v for k, v in overrides.items() if k not in ARCHITECTURE_ARGS})
        inherit_window = "sampling_window" not in overrides
        if inherit_window:  # never attend over more than was trained on
            trained = model_kwargs["sampling_window"] or (
                model_kwargs["context_length"] + model_kwargs["prediction_length"]
            )
            arch["sampling_window"] = max(trained, (arch["context_length"] or 0) + 1)
        estimator = cls(prediction_length=prediction_length, init_checkpoint=str(path), **arch)
        estimator._window_from_checkpoint = inherit_window
        return estimator

    def train_model(self, *args: Any, **kwargs: Any) -> Any:
        """GluonTS training, plus the EMA callback; ``trainer_kwargs`` survive the call
        (GluonTS pops their callbacks, so a second ``train`` would silently lose them).

        With ``ema_decay`` the returned network holds the final averaged weights (GluonTS
        reloads its weights-only "best" checkpoint, which holds the raw weights).
        A window inherited from a checkpoint widens to the one trained here, so a model
        fine-tuned on a longer horizon samples with all the context it was trained with.
        """
        saved, model_kwargs = dict(self.trainer_kwargs), self.model_kwargs
        callbacks = list(saved.get("callbacks", []))
        ema = _FinalEMA(decay=self.ema_decay) if self.ema_decay is not None else None
        self.trainer_kwargs = {**saved, "callbacks": callbacks + ([ema] if ema else [])}
        if self._window_from_checkpoint:
            trained = self.context_length + self.prediction_length
            window = max(model_kwargs["sampling_window"], trained)
            self.model_kwargs = {**model_kwargs, "sampling_window": window}
        try:
            out = super().train_model(*args, **kwargs)
        finally:
            self.trainer_kwargs, self.model_kwargs = saved, model_kwargs
        if ema is not None and ema.final_state is not None:
            out.trained_net.load_state_dict(ema.final_state)  # the predictor shares this net
        return out

    # ------------------------------------------------------------------ data
    def create_transformation(self) -> Transformation:
        steps: list[Transformation] = [
            AsNumpyArray(field=FieldName.TARGET, expected_ndim=1, dtype=np.float32),
            AddObservedValuesIndicator(
                target_field=FieldName.TARGET, output_field=FieldName.OBSERVED_VALUES
            ),
        ]
        if self.config.num_covariate_features:
            steps.append(CheckCovariates(self.model_kwargs, self.prediction_length))
        if self.time_features:
            steps.append(
                AddTimeFeatures(
                    start_field=FieldName.START,
                    target_field=FieldName.TARGET,
                    output_field=TIME_FEAT,
                    time_features=self.time_features,
                    pred_length=self.prediction_length,
                )
            )
        return Chain(steps)

    def _splitter(self, mode: str) -> InstanceSplitter:
        sampler = {
            "training": self.train_sampler,
            "validation": self.validation_sampler,
            "test": TestSplitSampler(),
        }[mode]
        config = self.config
        fields = [FieldName.OBSERVED_VALUES] + ([TIME_FEAT] if self.time_features else [])
        # past-only first: splitting feat_dynamic_real writes its past part to the name
        # "past_feat_dynamic_real", which must be free by then
        if config.num_past_feat_dynamic_real:
            fields.append(FieldName.PAST_FEAT_DYNAMIC_REAL)
        if config.num_feat_dynamic_real:
            fields.append(FieldName.FEAT_DYNAMIC_REAL)
        return InstanceSplitter(
            target_field=FieldName.TARGET,
            is_pad_field=FieldName.IS_PAD,
            start_field=FieldName.START,
            forecast_start_field=FieldName.FORECAST_START,
            instance_sampler=sampler,
            past_length=config.past_length,
            future_length=self.prediction_length,
            time_series_fields=fields,
            dummy_value=0.0,
        )

    @property
    def config(self) -> LagLlamaConfig:
        """The network's architecture, from ``model_kwargs``."""
        return LagLlamaConfig.from_dict(self.model_kwargs)

    @property
    def prediction_input_names(self) -> list[str]:
        config = self.config
        names = ["past_target", "past_observed_values"]
        names += ["past_time_feat", "future_time_feat"] if self.time_features else []
        counts = (
            config.num_feat_dynamic_real,
            config.num_feat_dynamic_real,
            config.num_past_feat_dynamic_real,
            config.num_feat_static_real,
            config.num_feat_static_cat,
        )
        return names + [name for name, n in zip(COVARIATE_INPUTS, counts) if n]

    @property
    def training_input_names(self) -> list[str]:
        return self.prediction_input_names + ["future_target", "future_observed_values"]

    def create_training_data_loader(
        self,
        data: Dataset,
        module: LagLlamaLightningModule,
        shuffle_buffer_length: int | None = None,
        **kwargs: Any,
    ) -> Iterable:
        instances = self._splitter("training").apply(Cyclic(data).stream(), is_train=True)
        return as_stacked_batches(
            instances,
            batch_size=self.batch_size,
            shuffle_buffer_length=shuffle_buffer_length,
            field_names=self.training_input_names,
            output_type=torch.tensor,
            num_batches_per_epoch=self.num_batches_per_epoch,
        )

    def create_validation_data_loader(
        self, data: Dataset, module: LagLlamaLightningModule, **kwargs: Any
    ) -> Iterable:
        instances = self._splitter("validation").apply(data, is_train=True)
        return as_stacked_batches(
            instances,
            batch_size=self.batch_size,
            field_names=self.training_input_names,
            output_type=torch.tensor,
        )

    # ----------------------------------------------------------------- model
    def create_lightning_module(self) -> LagLlamaLightningModule:
        module = LagLlamaLightningModule(
            model_kwargs=self.model_kwargs,
            num_batches_per_epoch=self.num_batches_per_epoch,
            **self.module_kwargs,
        )
        if self.init_checkpoint is not None:
            load_weights(module, load_checkpoint(self.init_checkpoint)["state_dict"])
        return module

    def create_predictor(
        self, transformation: Transformation, module: LagLlamaLightningModule
    ) -> PyTorchPredictor:
        return PyTorchPredictor(
            input_names=self.prediction_input_names,
            prediction_net=module,
            batch_size=self.batch_size,
            prediction_length=self.prediction_length,
            input_transform=transformation + self._splitter("test"),
            forecast_generator=SampleForecastGenerator(),
            device="auto",
        )

    def create_zero_shot_predictor(self) -> PyTorchPredictor:
        """A predictor from the initial weights (a checkpoint), without any training."""
        if self.init_checkpoint is None:
            raise ValueError("no checkpoint to predict from: use LagLlamaEstimator.from_checkpoint")
        return self.create_predictor(self.create_transformation(), self.create_lightning_module())

    @classmethod
    def from_pretrained(
        cls, prediction_length: int, name: str | None = None, **overrides: Any
    ) -> "LagLlamaEstimator":
        """An estimator from a checkpoint shipped with the package (SHA-256 verified);
        ``name`` defaults to the package's default model (``lagllama.pretrained.DEFAULT_NAME``).

        ``LagLlamaEstimator.from_pretrained(12, freq="M").create_zero_shot_predictor()``
        forecasts without training; ``.train(data)`` fine-tunes. See :mod:`lagllama.pretrained`.
        """
        from lagllama.pretrained import DEFAULT_NAME, checkpoint_path

        path = checkpoint_path(DEFAULT_NAME if name is None else name)
        return cls.from_checkpoint(path, prediction_length, **overrides)
