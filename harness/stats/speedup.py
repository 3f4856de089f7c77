"""Convergence speed-up as the MIRO paper defines it, with a prompt-bootstrap interval.

speed-up = (baseline's last evaluated step) / (first step at which the arm reaches the baseline's final
score), the crossing located by linear interpolation between the two evaluated checkpoints around it.
An arm that already reaches the target at its first checkpoint is credited with that checkpoint (nothing
was measured before it, so the true speed-up can only be larger). An arm that never reaches it has no
speed-up: None, a valid answer, not an error.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from harness.stats.resample import check_level, resample_counts
from miro.errors import MiroError


@dataclass(frozen=True)
class SpeedupInterval:
    """Speed-up with a percentile interval; None at a bound means that quantile never reaches the target."""

    estimate: float | None
    low: float | None
    high: float | None
    level: float
    reached_fraction: float  # share of bootstrap resamples in which the arm reaches the target


def _check_curve(steps: Sequence[float], scores: ArrayLike, who: str) -> np.ndarray:
    steps_array = np.asarray(steps, dtype=np.float64)
    if steps_array.ndim != 1 or len(steps_array) == 0 or np.any(np.diff(steps_array) <= 0) or steps_array[0] <= 0:
        raise MiroError(f"{who} steps must be positive and strictly increasing, got {list(steps)}")
    if len(np.asarray(scores)) != len(steps_array):
        raise MiroError(f"{who} has {len(steps_array)} steps but {len(np.asarray(scores))} scores")
    return steps_array


def reach_step(steps: Sequence[float], scores: Sequence[float], target: float, higher_is_better: bool = True) -> float | None:
    """First step at which `scores` reaches `target`, interpolated linearly; None if it never does."""
    sign = 1.0 if higher_is_better else -1.0
    for i, (step, score) in enumerate(zip(steps, scores)):
        if sign * score >= sign * target:
            if i == 0:
                return float(step)
            s0, v0 = steps[i - 1], scores[i - 1]
            return float(s0 + (target - v0) / (score - v0) * (step - s0))
    return None


def convergence_speedup(
    baseline_steps: Sequence[float],
    baseline_scores: Sequence[float],
    arm_steps: Sequence[float],
    arm_scores: Sequence[float],
    higher_is_better: bool = True,
) -> float | None:
    """The paper's speed-up of the arm over the baseline on one metric; None when never reached."""
    base_steps = _check_curve(baseline_steps, baseline_scores, "baseline")
    steps = _check_curve(arm_steps, arm_scores, "arm")
    reached = reach_step(list(steps), [float(v) for v in arm_scores], float(baseline_scores[-1]), higher_is_better)
    return None if reached is None else float(base_steps[-1] / reached)


def bootstrap_speedup(
    baseline_steps: Sequence[float],
    baseline_per_prompt: ArrayLike,
    arm_steps: Sequence[float],
    arm_per_prompt: ArrayLike,
    *,
    higher_is_better: bool = True,
    n_resamples: int = 2_000,
    level: float = 0.95,
    seed: int = 0,
) -> SpeedupInterval:
    """Speed-up on the mean curves and its interval from resampling prompts.

    `*_per_prompt` are (checkpoints, prompts) per-prompt means; the same resampled prompts enter every
    checkpoint of both curves. "Not reached" ranks below every speed-up, so a bound is None when more
    than its tail share of resamples never reach the target; bounds are actual resampled values.
    """
    check_level(level)
    base = np.asarray(baseline_per_prompt, dtype=np.float64)
    arm = np.asarray(arm_per_prompt, dtype=np.float64)
    if base.ndim != 2 or arm.ndim != 2 or base.shape[1] != arm.shape[1]:
        raise MiroError(f"per-prompt curves must be (checkpoints, prompts) on the same prompts, got {base.shape} "
                        f"and {arm.shape}")
    estimate = convergence_speedup(baseline_steps, base.mean(axis=1), arm_steps, arm.mean(axis=1), higher_is_better)
    counts = resample_counts(np.random.default_rng(seed), base.shape[1], n_resamples)  # (B, P)
    base_curves, arm_curves = counts @ base.T / base.shape[1], counts @ arm.T / arm.shape[1]  # (B, T)
    draws = np.array([
        convergence_speedup(baseline_steps, b, arm_steps, a, higher_is_better) or 0.0  # 0 = not reached
        for b, a in zip(base_curves, arm_curves)
    ])
    low, high = np.quantile(draws, [(1 - level) / 2, (1 + level) / 2], method="inverted_cdf")
    return SpeedupInterval(estimate, float(low) or None, float(high) or None, level, float(np.mean(draws > 0)))
