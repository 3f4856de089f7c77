"""Optimiser, learning-rate schedule and EMA of the training loop, as the released MIRO code does them.

- Parameter groups (released `DiffusionModule.configure_optimizers`): norm weights (LayerNorm, RMSNorm) and
  biases get no weight decay and, under LAMB, no trust ratio (plain Adam); everything else gets both. One
  difference, on purpose: the released code puts the whole preconditioning (the log-variance head) in the
  decayed group, its bias included; here every bias is undecayed (one scalar; the parity test skips it).
- LAMB (released `miro/utils/optimizers.py`, the configuration the released run used): eps 1e-8, bias-corrected
  Adam step, L2 weight decay added to the step *before* the trust ratio ||w|| / ||step||, and no gradient clip
  of its own (the loop's `clip_grad_norm_` is the only clip). timm's `Lamb` differs on all three (eps 1e-6,
  decoupled decay, an internal global-norm clip at 1.0), which is why the update is written out here.
- Schedule (released `WarmupCosineDecayLR`): linear warm-up, then 0.5 (1 + cos(rate pi progress)); `rate` < 1
  stops the cosine early (rate 0.8 ends at 0.0955 x peak). `min_lr_ratio` lifts the floor (the shapes default).
- EMA (released): a copy of the initial weights, updated with a constant decay. `ema_warmup` is the shapes
  default's choice: decay min(decay, (1 + step) / (10 + step)) so that runs of a few hundred steps can use it.
"""
from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from miro.config import OptimConfig
from miro.nets.layers import RMSNorm

NO_DECAY_MODULES = (nn.LayerNorm, nn.Embedding, RMSNorm)


def parameter_groups(module: nn.Module, cfg: OptimConfig) -> list[dict[str, Any]]:
    """[decayed weights (trust ratio on), norm weights and biases (no decay, no trust ratio)]."""
    no_decay: set[int] = set()
    for sub in module.modules():
        for name, param in sub.named_parameters(recurse=False):
            if isinstance(sub, NO_DECAY_MODULES) or name == "bias":
                no_decay.add(id(param))
    params = [p for p in module.parameters() if p.requires_grad]
    decay = [p for p in params if id(p) not in no_decay]
    rest = [p for p in params if id(p) in no_decay]
    return [{"params": decay, "weight_decay": cfg.weight_decay, "layer_adaptation": True},
            {"params": rest, "weight_decay": 0.0, "layer_adaptation": False}]


class Lamb(torch.optim.Optimizer):
    """LAMB as released: m, v bias-corrected; u = m_hat / (sqrt(v_hat) + eps) + wd w; w -= lr r u,
    r = ||w|| / ||u|| in groups with layer adaptation (1 when either norm is 0), else r = 1."""

    def __init__(self, params: Any, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0) -> None:
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, layer_adaptation=True))

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:  # type: ignore[override]
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["step"] = torch.zeros((), dtype=torch.float32)
                    state["exp_avg"] = torch.zeros_like(p)
                    state["exp_avg_sq"] = torch.zeros_like(p)
                state["step"] += 1
                step = float(state["step"])
                m, v = state["exp_avg"], state["exp_avg_sq"]
                m.mul_(beta1).add_(p.grad, alpha=1 - beta1)
                v.mul_(beta2).addcmul_(p.grad, p.grad, value=1 - beta2)
                update = (m / (1 - beta1**step)) / (v / (1 - beta2**step)).sqrt().add(group["eps"])
                if group["weight_decay"]:
                    update.add_(p, alpha=group["weight_decay"])  # L2, before the trust ratio
                ratio: torch.Tensor | float = 1.0
                if group["layer_adaptation"]:
                    w_norm, u_norm = p.norm(), update.norm()
                    one = torch.ones_like(w_norm)
                    ratio = torch.where(w_norm.ne(0), torch.where(u_norm.ne(0), w_norm / u_norm, one), one)
                p.add_(update * ratio, alpha=-group["lr"])
        return loss


def build_optimizer(module: nn.Module, cfg: OptimConfig, device: torch.device) -> torch.optim.Optimizer:
    groups = parameter_groups(module, cfg)
    if cfg.optimizer == "lamb":
        return Lamb(groups, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps, weight_decay=cfg.weight_decay)
    for group in groups:
        del group["layer_adaptation"]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps, weight_decay=cfg.weight_decay,
                             fused=device.type == "cuda")


def lr_factor(step: int, cfg: OptimConfig) -> float:
    """The factor of the peak lr used at optimizer step `step` (0-based).

    Warm-up (step + 1) / warmup_steps reaches the peak on the last warm-up step; the released scheduler gives
    step / warmup_steps (a zero-lr first step), one step later. Then min + (1 - min) 0.5 (1 + cos(rate pi p)),
    p = (step - warmup) / (steps - warmup), exactly the released `WarmupCosineDecayLR` when min_lr_ratio = 0.
    """
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    progress = min(1.0, (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps))
    return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(cfg.cosine_rate * math.pi * progress))


def ema_decay(step: int, cfg: OptimConfig) -> float:
    """The EMA decay after optimizer step `step` (0-based): constant (released) or warmed up (shapes default)."""
    return min(cfg.ema_decay, (1 + step) / (10 + step)) if cfg.ema_warmup else cfg.ema_decay


@torch.no_grad()
def update_ema(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """ema <- decay ema + (1 - decay) model; buffers are copied."""
    for e, p in zip(ema.parameters(), model.parameters(), strict=True):
        e.lerp_(p, 1 - decay)
    for e_buf, m_buf in zip(ema.buffers(), model.buffers(), strict=True):
        e_buf.copy_(m_buf)
