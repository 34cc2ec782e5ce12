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
from gluonts.torch.modules.feature import FeatureEmbedder
from torch import nn
from torch.distributions import Distribution

from lagllama.estimators.lag_llama.config import LagLlamaConfig
from lagllama.nn.decoder import Decoder
from lagllama.nn.distributions import make_distr_output, sample_with_generators
from lagllama.nn.kv_cache import KVCache
from lagllama.nn.precision import check_sampling_precision, float32_region, sampling_autocast
from lagllama.nn.scaling import make_scaler

#: Input names of the trained covariates (GluonTS's fields, as the instance splitter names them).
COVARIATE_INPUTS = (
    "past_feat_dynamic_real",
    "future_feat_dynamic_real",
    "past_past_feat_dynamic_real",
    "feat_static_real",
    "feat_static_cat",
)
#: Standardised dynamic covariates are clipped to this many standard deviations, so a flag
#: that is rare (or absent) in the history cannot swamp the token.
COVARIATE_CLIP = 5.0


def standardise(values: torch.Tensor, history: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``values`` (B, T, K) centred and scaled by the mean and standard deviation of
    ``history`` (B, P, K) over its observed steps (``weight`` (B, P, 1)), then clipped: units
    do not matter, and a covariate constant over the history reads 0 there."""
    total = weight.sum(dim=1, keepdim=True).clamp(min=1.0)
    mean = (history * weight).sum(dim=1, keepdim=True) / total
    var = ((history - mean).square() * weight).sum(dim=1, keepdim=True) / total
    std = var.sqrt().clamp(min=1e-3)
    return ((values - mean) / std).clamp(-COVARIATE_CLIP, COVARIATE_CLIP)


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
        if config.num_covariate_features:
            if config.num_feat_static_cat:
                self.embedder = FeatureEmbedder(config.cardinality, config.embedding_dimension)
            # zero: a model fine-tuned with covariates starts as the model it came from
            self.covariate_proj = nn.Linear(
                config.num_covariate_features, config.n_embd, bias=False
            )
            nn.init.zeros_(self.covariate_proj.weight)
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

    def covariate_series(
        self,
        past_observed_values: torch.Tensor,
        h: int,
        covariates: dict[str, torch.Tensor] | None,
    ) -> torch.Tensor | None:
        """Covariates ``(B, P + h, num_covariate_features)`` of every step of the window (None
        for a model without them). Token ``t`` reads the known-future values at ``t``, the
        past-only values at ``t - 1`` while that is in the history (0 and a flag of 0 after),
        and the static features."""
        c = self.config
        if not c.num_covariate_features:
            return None
        covariates = covariates or {}
        B, P = past_observed_values.shape
        weight = past_observed_values[..., None]
        parts = []
        if c.num_feat_dynamic_real:
            past = self._covariate(covariates, "past_feat_dynamic_real", c.num_feat_dynamic_real)
            future = self._covariate(
                covariates, "future_feat_dynamic_real", c.num_feat_dynamic_real
            )
            if future.shape[1] < h:
                raise ValueError(
                    f"future_feat_dynamic_real covers {future.shape[1]} steps; the forecast "
                    f"needs the known-future covariates at all {h}"
                )
            known = torch.cat((past, future[:, :h]), dim=1).float()
            parts.append(standardise(known, past.float(), weight))
        if c.num_past_feat_dynamic_real:
            past = self._covariate(
                covariates, "past_past_feat_dynamic_real", c.num_past_feat_dynamic_real
            ).float()
            shifted = past.new_zeros(B, P + h, past.shape[-1] + 1)
            shifted[:, 1 : P + 1, :-1] = standardise(past, past, weight)
            shifted[:, 1 : P + 1, -1] = 1.0
            parts.append(shifted)
        static = []
        if c.num_feat_static_real:
            static.append(
                self._covariate(covariates, "feat_static_real", c.num_feat_static_real).float()
            )
        if c.num_feat_static_cat:
            cats = self._covariate(covariates, "feat_static_cat", c.num_feat_static_cat).long()
            static.append(self.embedder(cats))
        if static:
            parts.append(torch.cat(static, dim=-1)[:, None, :].expand(-1, P + h, -1))
        return torch.cat(parts, dim=-1)

    @staticmethod
    def _covariate(covariates: dict[str, torch.Tensor], name: str, size: int) -> torch.Tensor:
        """Input ``name``, checked against the number of features the model was built with."""
        value = covariates.get(name)
        if value is None:
            raise ValueError(f"this model was built with {size} of {name}: pass them")
        if value.shape[-1] != size:
            raise ValueError(
                f"{name} has {value.shape[-1]} features; the model was built with {size}"
            )
        return value

    def covariate_embedding(
        self, covariates: torch.Tensor | None, positions: torch.Tensor
    ) -> torch.Tensor | None:
        """The covariates' contribution to the embeddings of the tokens at ``positions``."""
        if covariates is None:
            return None
        with float32_region(covariates.device):
            return self.covariate_proj(covariates[:, positions])

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
        covariates: dict[str, torch.Tensor] | None = None,
    ) -> dict[str, torch.Tensor]:
        """Hidden states (B, C + h, n_embd) of every context and future step (teacher forcing),
        with the targets they predict (raw and scaled), their observed mask, loc and scale.
        ``covariates``: the inputs named in ``COVARIATE_INPUTS`` the model was built with."""
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
        cov = self.covariate_series(past_observed_values, h, covariates)
        return {
            "hidden": self.decoder(features, extra=self.covariate_embedding(cov, positions)),
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
        covariates: dict[str, torch.Tensor] | None = None,
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
            covariates,
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
        covariates: dict[str, torch.Tensor] | None = None,
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
            covariates,
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
        covariates: dict[str, torch.Tensor] | None = None,
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
                    covariates,
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
        cov = self.covariate_series(past_observed_values, h, covariates)
        # Never attend over more tokens than training did: a full window restarts from the
        # last C tokens (cache refilled), so long horizons stay in the trained regime.
        window = self.config.sampling_window or C + self.config.prediction_length  # > C
        seq_len = min(C + h, window)  # fixed for the whole generation (dynamic RoPE)

        def decode(
            positions: torch.Tensor, cache: KVCache | None = None, **kwargs: int
        ) -> torch.Tensor:
            tf = None if time_feat is None else time_feat[:, positions - (P - C)]
            x = self.token_features(series, observed, positions, loc, scale, tf)
            extra = self.covariate_embedding(cov, positions)
            with sampling_autocast(x.device, precision):
                return self.decoder(x, cache, extra=extra, **kwargs)

        def expand() -> None:  # one row per (series, sample), samples of a series adjacent
            nonlocal series, observed, loc, scale, time_feat, cov
            series, observed = series.repeat_interleave(S, 0), observed.repeat_interleave(S, 0)
            loc, scale = loc.repeat_interleave(S, 0), scale.repeat_interleave(S, 0)
            if time_feat is not None:
                time_feat = time_feat.repeat_interleave(S, 0)
            if cov is not None:
                cov = cov.repeat_interleave(S, 0)

        prefix = torch.arange(P - C, P + 1, device=series.device)
        if use_kv_cache:
            cache = self.decoder.new_cache(B, seq_len, series)
            hidden = decode(prefix, cache)[:, -1:]
            cache = cache.expand(S)
            hidden = hidden.repeat_interleave(S, 0)
            expand()
        else:
            expand()
            hidden = decode(prefix, seq_len=seq_len)[:, -1:]

        generators = None
        if seeds is not None:
            generators = [
                torch.Generator(series.device).manual_seed(int(s)) for s in seeds.tolist()
            ]
        paths = torch.empty(B * S, h, dtype=series.dtype, device=series.device)
        start = P - C  # first position of the attended window
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
            token = P + i + 1
            restart = token - start + 1 > window
            if restart:
                start = token - C
            if use_kv_cache and not restart:
                hidden = decode(torch.tensor([token], device=series.device), cache)
            else:
                positions = torch.arange(start, token + 1, device=series.device)
                if use_kv_cache:
                    cache = self.decoder.new_cache(B * S, seq_len, series)
                    hidden = decode(positions, cache)[:, -1:]
                else:
                    hidden = decode(positions, seq_len=seq_len)[:, -1:]
        return paths.view(B, S, h)
