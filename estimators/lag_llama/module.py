"""The Lag-Llama network: lag features in, a decoder, a distribution head out.

Token ``t`` of a window predicts the value at time ``t`` from the values at ``t - lag`` for
every lag (all >= 1), so the model is causal by construction. Values are scaled once per
series from the context window; ``log1p|loc|`` and ``log scale`` ride along on every token.
Sampling prefills the context once per series, then decodes one token per step for every
sample path, the paths of a series sharing its cached context (never copied).

Options from the config: ProbSparse attention and sparse MoE feed-forward layers (see
:mod:`lagllama.nn.decoder`); causal distilling (sampling then recomputes the window instead of
using the cache); ``loss="huber"`` (Huber on the location head in scaled units, plus the
likelihood of the other head parameters with the location detached, so samples keep a
trained spread); the MoE load-balancing loss is added with ``aux_loss_weight``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from gluonts.torch.distributions import DistributionOutput
from torch import nn
from torch.distributions import Distribution

from lagllama.distributions import make_distr_output, sample_with_generators
from lagllama.estimators.lag_llama.config import LagLlamaConfig
from lagllama.nn.decoder import Decoder
from lagllama.nn.kv_cache import KVCache
from lagllama.nn.precision import check_sampling_precision, float32_region, sampling_autocast
from lagllama.scaling import make_scaler


class LagLlamaModel(nn.Module):
    """Lag-Llama: a LLaMA-style decoder over lagged, scaled values with a distribution head."""

    def __init__(self, config: LagLlamaConfig) -> None:
        super().__init__()
        self.config = config
        self.scaler = make_scaler(config.scaling)
        self.distr_output: DistributionOutput = make_distr_output(config.distr_output)
        self.decoder = Decoder(
            in_features=config.in_features,
            n_layer=config.n_layer,
            n_head=config.n_head,
            n_embd_per_head=config.n_embd_per_head,
            max_position=config.context_length + config.prediction_length,
            dropout=config.dropout,
            rope_scaling=config.rope_scaling,
            rope_factor=config.rope_factor,
            attention=config.attention,
            probsparse_factor=config.probsparse_factor,
            ffn=config.ffn,
            num_experts=config.num_experts,
            experts_top_k=config.experts_top_k,
            distil_prefix=config.context_length if config.distil else None,
        )
        self.args_proj = self.distr_output.get_args_proj(config.n_embd)
        self.register_buffer("lags", torch.tensor(config.lags_seq), persistent=False)

    # ----------------------------------------------------------------- inputs
    def scale(
        self, past_target: torch.Tensor, past_observed_values: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``loc`` and ``scale`` (B, 1) from the observed values of the context window."""
        C = self.config.context_length
        _, loc, scale = self.scaler(past_target[:, -C:], past_observed_values[:, -C:])
        return loc, scale

    @staticmethod
    def normalise(
        target: torch.Tensor, observed: torch.Tensor, loc: torch.Tensor, scale: torch.Tensor
    ) -> torch.Tensor:
        """Scaled values; missing and padded positions become 0 (the series' location)."""
        return torch.where(observed.bool(), (target - loc) / scale, torch.zeros_like(target))

    def token_features(
        self,
        series: torch.Tensor,
        observed: torch.Tensor,
        positions: torch.Tensor,
        loc: torch.Tensor,
        scale: torch.Tensor,
        time_feat: torch.Tensor | None,
    ) -> torch.Tensor:
        """Features ``(B, T, in_features)`` of the tokens at ``positions`` of ``series`` (B, N)."""
        index = positions[:, None] - self.lags[None, :]
        parts = [series[:, index]]
        if self.config.observed_lag_features:
            parts.append(observed[:, index])
        stats = torch.cat((loc.abs().log1p(), scale.log()), dim=-1)
        parts.append(stats[:, None, :].expand(-1, len(positions), -1))
        if self.config.num_time_features:
            if time_feat is None:
                raise ValueError(
                    "this model was built with time features: pass past/future_time_feat"
                )
            parts.append(time_feat)
        return torch.cat(parts, dim=-1)

    def num_parameters(self) -> tuple[int, int]:
        """Total parameters and parameters active for one token (MoE: only top-k experts)."""
        total = sum(p.numel() for p in self.parameters())
        inactive = 0
        for block in self.decoder.blocks:
            mlp = block.mlp
            if hasattr(mlp, "active_parameters"):
                inactive += sum(p.numel() for p in mlp.parameters()) - mlp.active_parameters()
        return total, total - inactive

    def head_args(self, hidden: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The distribution's parameters from hidden states, in float32 even under autocast."""
        with float32_region(hidden.device):
            return self.args_proj(hidden.float())

    def distribution(
        self,
        hidden: torch.Tensor,
        loc: torch.Tensor,
        scale: torch.Tensor,
        args: tuple[torch.Tensor, ...] | None = None,
    ) -> Distribution:
        """Predictive distribution in the data's units for hidden states (B, T, n_embd)."""
        args = self.head_args(hidden) if args is None else args
        loc = loc if self.config.distr_output != "negative_binomial" else None
        return self.distr_output.distribution(args, loc=loc, scale=scale)

    # ---------------------------------------------------------------- training
    def window_hidden(
        self,
        past_target: torch.Tensor,
        past_observed_values: torch.Tensor,
        future_target: torch.Tensor,
        future_observed_values: torch.Tensor,
        past_time_feat: torch.Tensor | None = None,
        future_time_feat: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """Hidden states (B, C + h, n_embd) of every context and future step (teacher forcing),
        with the targets they predict (raw and scaled), their observed mask, loc and scale."""
        C, P = self.config.context_length, past_target.shape[1]
        h = future_target.shape[1]
        target = torch.cat((past_target, future_target), dim=1)
        observed = torch.cat((past_observed_values, future_observed_values), dim=1)
        loc, scale = self.scale(past_target, past_observed_values)
        series = self.normalise(target, observed, loc, scale)
        positions = torch.arange(P - C, P + h, device=target.device)
        time_feat = None
        if self.config.num_time_features:
            time_feat = torch.cat((past_time_feat[:, P - C :], future_time_feat), dim=1)
        features = self.token_features(series, observed, positions, loc, scale, time_feat)
        return {
            "hidden": self.decoder(features),
            "target": target[:, positions],
            "scaled_target": series[:, positions],
            "mask": observed[:, positions],
            "loc": loc,
            "scale": scale,
        }

    def window_distribution(
        self,
        past_target: torch.Tensor,
        past_observed_values: torch.Tensor,
        future_target: torch.Tensor,
        future_observed_values: torch.Tensor,
        past_time_feat: torch.Tensor | None = None,
        future_time_feat: torch.Tensor | None = None,
    ) -> tuple[Distribution, torch.Tensor, torch.Tensor]:
        """One-step-ahead distributions for every context and future step (teacher forcing).

        Returns the distribution (batch shape ``(B, C + h)``), the targets it predicts and
        their observed mask.
        """
        w = self.window_hidden(
            past_target,
            past_observed_values,
            future_target,
            future_observed_values,
            past_time_feat,
            future_time_feat,
        )
        return self.distribution(w["hidden"], w["loc"], w["scale"]), w["target"], w["mask"]

    def loss(
        self,
        past_target: torch.Tensor,
        past_observed_values: torch.Tensor,
        future_target: torch.Tensor,
        future_observed_values: torch.Tensor,
        past_time_feat: torch.Tensor | None = None,
        future_time_feat: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Loss per window (B,), averaged over observed context+future steps.

        ``loss="nll"``: negative log-likelihood. ``loss="huber"``: Huber loss of the location
        head against the target in scaled units, plus the negative log-likelihood with the
        location detached (so it trains only the spread: samples stay calibrated-ish). With
        MoE layers, ``aux_loss_weight`` times the load-balancing loss is added.
        """
        w = self.window_hidden(
            past_target,
            past_observed_values,
            future_target,
            future_observed_values,
            past_time_feat,
            future_time_feat,
        )
        hidden, loc, scale, mask = w["hidden"], w["loc"], w["scale"], w["mask"]
        if self.config.loss == "huber":
            args = self.head_args(hidden)
            i = list(self.distr_output.args_dim).index("loc")
            huber = F.huber_loss(
                args[i], w["scaled_target"], reduction="none", delta=self.config.huber_delta
            )
            args = tuple(a.detach() if j == i else a for j, a in enumerate(args))
            per_step = huber - self.distribution(hidden, loc, scale, args).log_prob(w["target"])
        else:
            per_step = -self.distribution(hidden, loc, scale).log_prob(w["target"])
        loss = (per_step * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
        if self.config.ffn == "moe" and self.config.aux_loss_weight:
            loss = loss + self.config.aux_loss_weight * self.decoder.aux_loss()
        return loss

    # ---------------------------------------------------------------- sampling
    @torch.inference_mode()
    def sample(
        self,
        past_target: torch.Tensor,
        past_observed_values: torch.Tensor,
        past_time_feat: torch.Tensor | None = None,
        future_time_feat: torch.Tensor | None = None,
        num_samples: int = 100,
        prediction_length: int | None = None,
        use_kv_cache: bool = True,
        seeds: torch.Tensor | None = None,
        precision: str = "32",
    ) -> torch.Tensor:
        """``num_samples`` coherent sample paths (B, num_samples, prediction_length).

        Scale and lag buffer are built once per forecast. With the KV cache each step costs
        one token; without it the whole window is recomputed (kept for checking and timing).
        ``seeds`` (B,) int64: each series draws from its own ``torch.Generator``, so its paths
        do not depend on the batch it is in; without them torch's global RNG is used.
        ``precision="bf16"`` runs the decoder blocks' matrix products in bfloat16 (autocast;
        the input embedding, attention on the CPU, the scaler and the distribution head stay
        in float32): faster on GPUs and on CPUs with bf16 instructions, slightly different
        paths; ``"32"`` (default) is plain float32.
        """
        check_sampling_precision(precision)
        if self.training:  # never sample with dropout on
            self.eval()
            try:
                return self.sample(
                    past_target,
                    past_observed_values,
                    past_time_feat,
                    future_time_feat,
                    num_samples,
                    prediction_length,
                    use_kv_cache,
                    seeds,
                    precision,
                )
            finally:
                self.train()
        h = prediction_length or self.config.prediction_length
        use_kv_cache = use_kv_cache and not self.config.distil  # distilled layers: no cache
        C, P = self.config.context_length, past_target.shape[1]
        B, S = past_target.shape[0], num_samples
        loc, scale = self.scale(past_target, past_observed_values)
        series = torch.zeros(B, P + h, dtype=past_target.dtype, device=past_target.device)
        series[:, :P] = self.normalise(past_target, past_observed_values, loc, scale)
        observed = torch.ones_like(series)
        observed[:, :P] = past_observed_values
        time_feat = None
        if self.config.num_time_features:
            time_feat = torch.cat((past_time_feat[:, P - C :], future_time_feat[:, :h]), dim=1)
        seq_len = C + h  # fixed for the whole generation, so dynamic RoPE is consistent

        def features(positions: torch.Tensor) -> torch.Tensor:
            tf = None if time_feat is None else time_feat[:, positions - (P - C)]
            return self.token_features(series, observed, positions, loc, scale, tf)

        def decode(x: torch.Tensor, cache: KVCache | None = None, **kwargs: int) -> torch.Tensor:
            with sampling_autocast(x.device, precision):
                return self.decoder(x, cache, **kwargs)

        def expand() -> None:  # one row per (series, sample), samples of a series adjacent
            nonlocal series, observed, loc, scale, time_feat
            series, observed = series.repeat_interleave(S, 0), observed.repeat_interleave(S, 0)
            loc, scale = loc.repeat_interleave(S, 0), scale.repeat_interleave(S, 0)
            if time_feat is not None:
                time_feat = time_feat.repeat_interleave(S, 0)

        prefix = torch.arange(P - C, P + 1, device=series.device)
        if use_kv_cache:
            cache = self.decoder.new_cache(B, seq_len, series)
            hidden = decode(features(prefix), cache)[:, -1:]
            cache = cache.expand(S)
            hidden = hidden.repeat_interleave(S, 0)
            expand()
        else:
            expand()
            hidden = decode(features(prefix), seq_len=seq_len)[:, -1:]

        generators = None
        if seeds is not None:
            generators = [
                torch.Generator(series.device).manual_seed(int(s)) for s in seeds.tolist()
            ]
        paths = torch.empty(B * S, h, dtype=series.dtype, device=series.device)
        for i in range(h):
            distr = self.distribution(hidden, loc, scale)
            if generators is None:
                value = distr.sample()[:, 0]
            else:
                value = sample_with_generators(distr, generators)[:, 0]
            paths[:, i] = value
            series[:, P + i] = ((value - loc[:, 0]) / scale[:, 0]).nan_to_num(0.0)
            if i + 1 == h:
                break
            if use_kv_cache:
                position = torch.tensor([P + i + 1], device=series.device)
                hidden = decode(features(position), cache)
            else:
                positions = torch.arange(P - C, P + i + 2, device=series.device)
                hidden = decode(features(positions), seq_len=seq_len)[:, -1:]
        return paths.view(B, S, h)
