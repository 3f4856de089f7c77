"""Paired, seeded prompt bootstrap intervals for a metric's mean and for arm-minus-baseline differences.

With `strata` (e.g. GenEval's task tags) the statistic is the unweighted mean of the per-stratum means,
which is how GenEval's overall score weighs its six tasks, and prompts are resampled within each stratum
so every resample keeps each task's prompt count.
"""
from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np
from numpy.typing import ArrayLike

from harness.stats.resample import Interval, check_level, percentile_interval, resample_counts
from miro.errors import MiroError


def _groups(n: int, strata: Sequence[Hashable] | None) -> list[np.ndarray]:
    if strata is None:
        return [np.arange(n)]
    if len(strata) != n:
        raise MiroError(f"{len(strata)} strata labels for {n} prompts; give one label per prompt")
    labels = list(dict.fromkeys(strata))
    return [np.flatnonzero([s == label for s in strata]) for label in labels]


def bootstrap_mean(
    per_prompt: ArrayLike,
    *,
    strata: Sequence[Hashable] | None = None,
    n_resamples: int = 10_000,
    level: float = 0.95,
    seed: int = 0,
) -> Interval:
    """Percentile bootstrap interval for the mean of per-prompt values (images already averaged)."""
    check_level(level)
    values = np.asarray(per_prompt, dtype=np.float64)
    if values.ndim != 1 or len(values) < 2 or not np.isfinite(values).all():
        raise MiroError(f"need a 1-D array of at least 2 finite per-prompt values, got shape {values.shape}")
    rng = np.random.default_rng(seed)
    groups = _groups(len(values), strata)
    estimate = np.mean([values[g].mean() for g in groups])
    draws = np.zeros(n_resamples)
    for g in groups:
        draws += resample_counts(rng, len(g), n_resamples) @ values[g] / len(g)
    return percentile_interval(estimate, draws / len(groups), level)


def bootstrap_difference(
    arm: ArrayLike,
    baseline: ArrayLike,
    *,
    strata: Sequence[Hashable] | None = None,
    n_resamples: int = 10_000,
    level: float = 0.95,
    seed: int = 0,
) -> Interval:
    """Interval for mean(arm) - mean(baseline) with both arms resampled on the same prompts.

    `arm` and `baseline` are per-prompt values aligned by prompt (see `resample.paired`). The statistic
    is linear, so this is the bootstrap of the per-prompt differences, which is what pairing buys:
    prompt difficulty cancels before resampling.
    """
    arm, baseline = np.asarray(arm, dtype=np.float64), np.asarray(baseline, dtype=np.float64)
    if arm.shape != baseline.shape:
        raise MiroError(f"arm and baseline must be aligned per prompt, got shapes {arm.shape} and {baseline.shape}")
    return bootstrap_mean(arm - baseline, strata=strata, n_resamples=n_resamples, level=level, seed=seed)
