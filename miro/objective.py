"""The flow-matching objective of MIRO, one function per idea.

    t ~ U(0, 1) (paper) or sigmoid(N(0, 1)) (released code)
    x_t = (1 - t) x + t eps,   target v = eps - x
    loss = || v_theta(x_t, t | caption, s) - v ||^2          (optionally / exp(u(t)) + u(t))
Reward dropout and caption dropout decide what the network sees of (caption, s).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch

from miro.config import ObjectiveConfig, RewardConfig
from miro.conventions import interpolate, velocity_target
from miro.nets.conditioning import caption_with_rewards, reward_keep_mask
from miro.nets.flow_model import FlowModel, LogVarianceHead
from miro.text import TextEncoder


def sample_time(kind: str, n: int, generator: torch.Generator) -> torch.Tensor:
    """(n,) times in (0, 1)."""
    if kind == "logit_normal":
        return torch.sigmoid(torch.randn(n, generator=generator))
    return torch.rand(n, generator=generator)


def condition_inputs(captions: Sequence[str], rewards: torch.Tensor, cfg: RewardConfig,
                     generator: torch.Generator) -> tuple[list[str], torch.Tensor, torch.Tensor]:
    """Apply caption dropout and reward dropout; returns the captions to encode, the reward values and the
    kept mask (B, N).

    As released (`BaseLoss._apply_conditional_dropping`: rewards set to NaN, then `nan_to_num` to 0), a
    sample whose caption is dropped trains the null caption with every reward at value 0, reward dropout
    still applying on top: the default negative branch of guidance (null caption, rewards 0) is a state
    the network has seen.
    """
    b, n = rewards.shape
    # drawn only when used, as released, so that a run without caption dropout draws what the released loss draws
    drop_caption = torch.rand(b, generator=generator) < cfg.caption_dropout if cfg.caption_dropout > 0 \
        else torch.zeros(b, dtype=torch.bool)
    kept = reward_keep_mask(cfg.dropout_strategy, cfg.dropout_p, b, n, generator)
    rewards = torch.where(drop_caption.unsqueeze(1), torch.zeros_like(rewards), rewards)
    captions = ["" if drop else c for c, drop in zip(captions, drop_caption.tolist(), strict=True)]
    if cfg.scheme == "prompt":
        captions = [caption_with_rewards(c, cfg.conditioned, r.tolist(), k.tolist()) if c else c
                    for c, r, k in zip(captions, rewards, kept, strict=True)]
    return captions, rewards, kept


def flow_matching_loss(model: FlowModel, logvar: LogVarianceHead | None, x: torch.Tensor, captions: Sequence[str],
                       rewards: torch.Tensor, text_encoder: TextEncoder, rewards_cfg: RewardConfig,
                       objective: ObjectiveConfig, generator: torch.Generator) -> torch.Tensor:
    """The loss of one micro-batch: x (B, C, H, W) clean data, rewards (B, N) in [0, 1].

    The randomness is drawn on the host (seeded, device-independent) and copied with non_blocking=True,
    which for these host tensors only skips waiting for the device's queue to drain.
    """
    device = x.device
    captions, rewards, kept = condition_inputs(captions, rewards, rewards_cfg, generator)
    text, text_mask = (t.to(device, non_blocking=True) for t in text_encoder.encode(captions))  # (B, L, Dt), (B, L)
    rewards, kept = rewards.to(device, non_blocking=True), kept.to(device, non_blocking=True)
    t = sample_time(objective.time_sampling, x.shape[0], generator).to(device, non_blocking=True)  # (B,)
    eps = torch.randn(x.shape, generator=generator).to(device, non_blocking=True)  # (B, C, H, W)
    x_t = interpolate(x, eps, t)                                               # (1 - t) x + t eps
    target = velocity_target(x, eps)                                           # eps - x
    prev = None
    if objective.self_conditioning > 0 and getattr(model, "module", model).has_latents:  # DDP hides the network in .module
        use = (torch.rand(x.shape[0], generator=generator) > 1 - objective.self_conditioning).to(device, non_blocking=True)  # as released
        with torch.no_grad():
            _, latents = model(x_t, t, text, text_mask, rewards, kept)
        prev = latents * use.reshape(-1, 1, 1).to(latents.dtype)              # zero latents = no self-conditioning
    v, _ = model(x_t, t, text, text_mask, rewards, kept, prev)
    mse = (v.float() - target.float()).pow(2).mean(dim=tuple(range(1, x.ndim)))  # (B,)
    if logvar is not None:
        u = logvar(t).float()
        mse = mse / u.exp() + u
    return mse.mean()
