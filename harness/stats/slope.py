"""Controllability as one number: the least-squares slope of the measured score against the requested target,
with a prompt-bootstrap interval.

The slope is fitted to the mean curve over prompts; a resample draws prompts with replacement and keeps
the same prompts at every target (prompt difficulty cancels across targets, as pairing does for arms).
The statistic is linear in the prompt means, so each resample is one matrix product.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike

from harness.stats.resample import Interval, check_level, percentile_interval, resample_counts
from miro.errors import MiroError


def slope_weights(targets: Sequence[float]) -> np.ndarray:
    """w with slope = w @ y for the least-squares line through (targets, y): (t - mean t) / sum (t - mean t)^2."""
    t = np.asarray(targets, dtype=np.float64)
    centred = t - t.mean()
    spread = float(centred @ centred)
    if t.ndim != 1 or spread == 0.0:
        raise MiroError(f"a slope needs at least two distinct targets, got {list(targets)}; sweep two or more targets")
    return centred / spread


def bootstrap_slope(
    targets: Sequence[float],
    per_prompt: ArrayLike,
    *,
    n_resamples: int = 2_000,
    level: float = 0.95,
    seed: int = 0,
) -> Interval:
    """Slope of the mean curve and its percentile interval; `per_prompt` is (targets, prompts) per-prompt means."""
    check_level(level)
    values = np.asarray(per_prompt, dtype=np.float64)
    if values.ndim != 2 or values.shape[0] != len(targets) or values.shape[1] < 2 or not np.isfinite(values).all():
        raise MiroError(f"per-prompt values must be finite (targets = {len(targets)}, prompts >= 2), got shape {values.shape}")
    weights = slope_weights(targets)  # (T,)
    counts = resample_counts(np.random.default_rng(seed), values.shape[1], n_resamples)  # (B, P)
    curves = counts @ values.T / values.shape[1]  # (B, T): the mean curve of each resample
    return percentile_interval(float(weights @ values.mean(axis=1)), curves @ weights, level)
