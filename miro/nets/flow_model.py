"""The velocity model v(x_t, t | caption, rewards): timestep embedding + condition encoder + backbone.

Optional preconditioning (released code): the input is scaled by c_in(t) = 1 / sqrt(((1 - t) sigma_d)^2 + t^2),
the unit-variance scaling of x_t = (1 - t) x + t eps for data of std sigma_d, and the output by
c_out = sqrt(1 + sigma_d^2), the std of the target eps - x.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from miro.config import ModelConfig, ObjectiveConfig, RewardConfig
from miro.conventions import gamma_from_time
from miro.nets.conditioning import ConditionEncoder
from miro.nets.dit import DiT
from miro.nets.layers import FourierFeatures, ScalarEmbedder, xavier_init
from miro.nets.rin import RIN
from miro.nets.unet import UNet


class FlowModel(nn.Module):
    def __init__(self, model: ModelConfig, rewards: RewardConfig, objective: ObjectiveConfig, text_dim: int) -> None:
        super().__init__()
        self.reward_names = rewards.conditioned
        self.scheme = rewards.scheme
        self.precondition = objective.preconditioning
        self.sigma_data = objective.sigma_data
        self.time_embed = ScalarEmbedder(model.width)
        self.condition = ConditionEncoder(
            rewards.scheme, len(self.reward_names), text_dim, model.width, model.text_registers,
            model.cond_blocks, model.cond_heads,
        )
        self.time_input = model.time_input
        self.time_embed.apply(xavier_init)  # released: every Linear, the embedders and condition encoder included
        self.condition.apply(xavier_init)
        self.backbone: nn.Module = {"unet": UNet, "dit": DiT, "rin": RIN}[model.backbone](model)

    @property
    def has_latents(self) -> bool:
        """Whether the backbone returns latents usable for self-conditioning."""
        return bool(self.backbone.has_latents)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, text: torch.Tensor, text_mask: torch.Tensor,
                rewards: torch.Tensor, kept: torch.Tensor,
                prev_latents: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x_t (B, C, H, W), t (B,), text (B, L, Dt), text_mask (B, L), rewards and kept (B, N) -> v (B, C, H, W)."""
        c = self.time_embed(t if self.time_input == "t" else gamma_from_time(t))  # (B, D)
        cond, cond_mask, reward_global = self.condition(text, text_mask, rewards, kept)
        if reward_global is not None:
            c = c + reward_global
        if self.precondition:
            c_in = torch.rsqrt(((1 - t) * self.sigma_data) ** 2 + t**2).reshape(-1, 1, 1, 1).to(x_t.dtype)
            x_t = x_t * c_in
        v, latents = self.backbone(x_t, c, cond, cond_mask, prev_latents)
        if self.precondition:
            v = v * math.sqrt(1 + self.sigma_data**2)
        return v, latents


class LogVarianceHead(nn.Module):
    """EDM2-style uncertainty weighting: a learned log-variance u(t); loss = mse / exp(u) + u."""

    def __init__(self, channels: int = 128, time_input: str = "t") -> None:
        super().__init__()
        self.time_input = time_input
        self.features = FourierFeatures(channels)
        self.linear = nn.Linear(channels, 1)

    def forward(self, t: torch.Tensor) -> torch.Tensor:  # (B,) -> (B,)
        return self.linear(self.features(t if self.time_input == "t" else gamma_from_time(t))).squeeze(-1)


def build_model(model: ModelConfig, rewards: RewardConfig, objective: ObjectiveConfig, text_dim: int) -> FlowModel:
    return FlowModel(model, rewards, objective, text_dim)
