"""Combining training seeds: two questions, two intervals.

- `seed_t_interval`: "would another training seed give the same effect on these prompts?" Each seed's
  estimate (e.g. its arm-minus-baseline mean over the prompts) is one observation; the interval is
  mean +- t(S - 1) s / sqrt(S). It needs >= 2 seeds and ignores prompt sampling, which all seeds share.
- `hierarchical_bootstrap_difference`: "would the effect hold for other seeds and other prompts?"
  Resample seeds, then prompts (the same prompts for every drawn seed, since seeds share the prompt
  set), and average the paired differences. Seed s of the arm is paired with seed s of the baseline
  (same seed value, so same data order and per-sample noise). With one seed it is the prompt bootstrap;
  with few seeds (< 5) the seed level is coarse and the t-interval is the better between-seed summary.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike
from scipy.stats import t as student_t

from harness.stats.resample import Interval, check_level, percentile_interval, resample_counts
from miro.errors import MiroError


def seed_t_interval(per_seed: Sequence[float], level: float = 0.95) -> Interval:
    """Mean of per-seed estimates with a Student-t interval over seeds."""
    check_level(level)
    values = np.asarray(per_seed, dtype=np.float64)
    if values.ndim != 1 or len(values) < 2:
        raise MiroError(f"a between-seed interval needs at least 2 seeds, got {values.size}; "
                        "train more seeds or use hierarchical_bootstrap_difference")
    mean = values.mean()
    half = student_t.ppf((1 + level) / 2, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values))
    return Interval(float(mean), float(mean - half), float(mean + half), level)


def hierarchical_bootstrap_difference(
    arm: ArrayLike, baseline: ArrayLike, *, n_resamples: int = 10_000, level: float = 0.95, seed: int = 0
) -> Interval:
    """Interval for mean(arm - baseline) over seeds and prompts; inputs are (seeds, prompts) per-prompt means."""
    check_level(level)
    arm, baseline = np.asarray(arm, dtype=np.float64), np.asarray(baseline, dtype=np.float64)
    if arm.shape != baseline.shape or arm.ndim != 2:
        raise MiroError(f"arm and baseline must both be (seeds, prompts) arrays, got {arm.shape} and {baseline.shape}")
    diff = arm - baseline  # (S, P)
    n_seeds, n_prompts = diff.shape
    rng = np.random.default_rng(seed)
    prompt_counts = resample_counts(rng, n_prompts, n_resamples)  # (B, P)
    seed_counts = resample_counts(rng, n_seeds, n_resamples)  # (B, S)
    per_seed = diff @ prompt_counts.T / n_prompts  # (S, B): each seed's mean over the resampled prompts
    draws = np.sum(seed_counts * per_seed.T, axis=1) / n_seeds  # (B,)
    return percentile_interval(diff.mean(), draws, level)
