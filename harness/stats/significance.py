"""Paired significance tests: sign-flip permutation for per-prompt scores, exact McNemar for verdicts."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy.stats import binomtest

from miro.errors import MiroError


@dataclass(frozen=True)
class PermutationResult:
    """Mean per-prompt difference (arm - baseline) and its two-sided p-value."""

    mean_difference: float
    p_value: float
    exact: bool  # True when every sign pattern was enumerated


@dataclass(frozen=True)
class McNemarResult:
    """Discordant pairs and the exact two-sided p-value (binomial test of arm_only vs baseline_only at 1/2)."""

    arm_only: int  # images the arm got right and the baseline wrong
    baseline_only: int  # images the baseline got right and the arm wrong
    p_value: float


def sign_flip_test(arm: ArrayLike, baseline: ArrayLike, *, n_resamples: int = 10_000, seed: int = 0) -> PermutationResult:
    """Paired permutation test of "no difference" for continuous per-prompt scores.

    Under the null each prompt's difference is as likely to have either sign, so the null distribution of
    the mean difference comes from flipping signs. With at most log2(n_resamples) prompts every pattern is
    enumerated (exact p); otherwise random flips give p = (1 + #{|null| >= |observed|}) / (1 + n_resamples),
    which never reports p = 0.
    """
    diff = np.asarray(arm, dtype=np.float64) - np.asarray(baseline, dtype=np.float64)
    if diff.ndim != 1 or len(diff) == 0 or not np.isfinite(diff).all():
        raise MiroError(f"need aligned 1-D per-prompt scores, got a difference of shape {diff.shape}")
    n = len(diff)
    observed = diff.mean()
    exact = 2**n <= n_resamples
    if exact:
        signs = ((np.arange(2**n)[:, None] >> np.arange(n)) & 1) * 2 - 1
    else:
        signs = np.random.default_rng(seed).choice(np.array([-1, 1]), size=(n_resamples, n))
    null = signs @ diff / n
    extreme = int(np.sum(np.abs(null) >= abs(observed) - 1e-12 * (1 + abs(observed))))
    p_value = extreme / len(null) if exact else (1 + extreme) / (1 + n_resamples)
    return PermutationResult(float(observed), float(p_value), exact)


def mcnemar_exact(arm_correct: ArrayLike, baseline_correct: ArrayLike) -> McNemarResult:
    """Exact McNemar test on paired binary verdicts (image k of the arm vs image k of the baseline).

    Only discordant pairs carry information. Images of one prompt are not independent, so prefer the
    prompt bootstrap for intervals; this is the classic test for "same image slot, two models".
    """
    arm, base = np.asarray(arm_correct, dtype=bool), np.asarray(baseline_correct, dtype=bool)
    if arm.shape != base.shape or arm.ndim != 1:
        raise MiroError(f"verdicts must be aligned 1-D arrays, got shapes {arm.shape} and {base.shape}")
    arm_only, baseline_only = int(np.sum(arm & ~base)), int(np.sum(~arm & base))
    discordant = arm_only + baseline_only
    p_value = binomtest(arm_only, discordant, 0.5).pvalue if discordant else 1.0
    return McNemarResult(arm_only, baseline_only, float(p_value))
