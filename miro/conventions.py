"""The project's conventions for time, noise and guidance, written once.

Time: t in [0, 1], t = 1 is pure noise.      x_t = (1 - t) x + t eps
Velocity target (rectified flow):            v = dx_t/dt = eps - x
Sampling integrates dx/dt = v from t = 1 down to t = 0.
Guidance (common form):                      v = v_neg + g (v_pos - v_neg);  g = 1 is the positive branch alone.
The MIRO code writes                         v = (1 + w) v_pos - w v_neg,    so g = w + 1.
The released code's noise level gamma = 1 - t (gamma = 1 is clean data).
"""
from __future__ import annotations

import torch

TIME_CONVENTION = "t in [0,1], t=1 noise; x_t = (1-t) x + t eps; v = eps - x"
GUIDANCE_CONVENTION = "v = v_neg + g (v_pos - v_neg); MIRO cfg_rate w = g - 1"


def _per_sample(t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Broadcast a (B,) time over the trailing dimensions of `like`."""
    return t.reshape(-1, *([1] * (like.ndim - 1))).to(like.dtype)


def interpolate(x: torch.Tensor, eps: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """x_t = (1 - t) x + t eps."""
    t = _per_sample(t, x)
    return (1 - t) * x + t * eps


def velocity_target(x: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """v = eps - x (the time derivative of x_t)."""
    return eps - x


def guided_velocity(v_pos: torch.Tensor, v_neg: torch.Tensor, scale: float) -> torch.Tensor:
    """v = v_neg + g (v_pos - v_neg)."""
    return v_neg + scale * (v_pos - v_neg)


def cfg_rate_to_scale(cfg_rate: float) -> float:
    """MIRO's (1 + w) v_pos - w v_neg  ->  g = w + 1."""
    return cfg_rate + 1.0


def scale_to_cfg_rate(scale: float) -> float:
    """g -> MIRO's w = g - 1."""
    return scale - 1.0


def gamma_from_time(t: torch.Tensor) -> torch.Tensor:
    """The released code's noise level gamma = 1 - t."""
    return 1 - t
