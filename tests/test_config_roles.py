"""The role of every ``LagLlamaConfig`` field is recorded once, on the field; the lists that
checkpoint loading, export and fine-tuning use are derived from it and must not drift."""

from __future__ import annotations

import inspect
from dataclasses import fields

import pytest

from lagllama.estimators.lag_llama import LagLlamaEstimator
from lagllama.estimators.lag_llama.config import ROLES, LagLlamaConfig
from lagllama.estimators.lag_llama.estimator import (
    ARCHITECTURE_ARGS,
    COVARIATE_ARGS,
    TRAINING_CONFIG_ARGS,
)
from lagllama.pretrained import portable_model_kwargs

ARCHITECTURE = {
    "lags_seq",
    "n_layer",
    "n_head",
    "n_embd_per_head",
    "scaling",
    "num_time_features",
    "observed_lag_features",
    "distr_output",
    "attention",
    "probsparse_factor",
    "distil",
    "ffn",
    "num_experts",
    "experts_top_k",
}
COVARIATE = {
    "num_feat_dynamic_real",
    "num_past_feat_dynamic_real",
    "num_feat_static_real",
    "num_feat_static_cat",
    "cardinality",
    "embedding_dimension",
}
TRAINING = {"dropout", "rope_scaling", "rope_factor", "aux_loss_weight", "loss", "huber_delta"}
INFERENCE = {"context_length", "prediction_length", "sampling_window"}
#: The original Lag-Llama's fields: every exported checkpoint stores them.
CORE = {
    "context_length",
    "prediction_length",
    "lags_seq",
    "n_layer",
    "n_head",
    "n_embd_per_head",
    "dropout",
    "scaling",
    "num_time_features",
    "observed_lag_features",
    "distr_output",
    "rope_scaling",
    "rope_factor",
}


def test_every_field_has_a_known_role() -> None:
    for f in fields(LagLlamaConfig):
        assert f.metadata.get("role") in ROLES, f"{f.name} has no known role: {f.metadata}"
        assert isinstance(f.metadata.get("core", False), bool), f.name


def test_roles_are_the_recorded_ones() -> None:
    expected = {
        "architecture": ARCHITECTURE,
        "covariate": COVARIATE,
        "training": TRAINING,
        "inference": INFERENCE,
    }
    assert set(expected) == set(ROLES)
    for role, names in expected.items():
        assert set(LagLlamaConfig.fields_with_role(role)) == names, role
    assert set(LagLlamaConfig.core_fields()) == CORE
    with pytest.raises(ValueError, match="unknown role"):
        LagLlamaConfig.fields_with_role("optimiser")


def test_derived_lists_are_unchanged() -> None:
    # the hand-kept lists these replaced (estimator.py and pretrained.CORE_CONFIG_KEYS)
    assert set(ARCHITECTURE_ARGS) == ARCHITECTURE - {"num_time_features"}
    assert set(COVARIATE_ARGS) == COVARIATE
    assert set(TRAINING_CONFIG_ARGS) == TRAINING
    assert len({*ARCHITECTURE_ARGS, *COVARIATE_ARGS, *TRAINING_CONFIG_ARGS}) == 25


def test_from_checkpoint_passes_only_constructor_arguments() -> None:
    """``from_checkpoint`` hands these fields to the constructor by name."""
    params = set(inspect.signature(LagLlamaEstimator.__init__).parameters)
    passed = {*ARCHITECTURE_ARGS, *COVARIATE_ARGS, *TRAINING_CONFIG_ARGS, *INFERENCE}
    assert passed <= params


def test_export_always_stores_the_core_fields() -> None:
    stored = portable_model_kwargs(LagLlamaConfig().to_dict())
    # fields without a plain default (a factory) or whose default __post_init__ changes
    # (embedding_dimension: None -> []) are stored too
    assert set(stored) == CORE | {"cardinality", "embedding_dimension"}
    options = portable_model_kwargs(LagLlamaConfig(ffn="moe", sampling_window=64).to_dict())
    assert set(options) - set(stored) == {"ffn", "sampling_window"}
