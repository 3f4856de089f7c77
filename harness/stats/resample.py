"""The unit of resampling is the prompt: the pieces every interval in this package is built from.

Images of one prompt share the prompt's difficulty, so they are averaged first and prompts are resampled;
resampling images would treat 4 correlated images as 4 independent ones and give intervals too narrow.
Arms are paired by prompt: the same resampled prompts enter the arm and its baseline.
"""
from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from miro.errors import MiroError


@dataclass(frozen=True)
class Interval:
    """A point estimate with a two-sided interval at confidence `level`."""

    estimate: float
    low: float
    high: float
    level: float


def check_level(level: float) -> None:
    if not 0.0 < level < 1.0:
        raise MiroError(f"confidence level must be in (0, 1), e.g. 0.95; got {level}")


def prompt_means(prompt_ids: Sequence[Hashable], values: ArrayLike) -> dict[Hashable, float]:
    """Average each prompt's images: prompt id -> mean value, in order of first appearance."""
    values = np.asarray(values, dtype=np.float64)
    if len(prompt_ids) != len(values):
        raise MiroError(f"{len(prompt_ids)} prompt ids but {len(values)} values; give one id per image")
    sums: dict[Hashable, list[float]] = {}
    for prompt, value in zip(prompt_ids, values):
        sums.setdefault(prompt, []).append(float(value))
    return {prompt: float(np.mean(v)) for prompt, v in sums.items()}


def paired(arm: Mapping[Hashable, float], baseline: Mapping[Hashable, float]) -> tuple[np.ndarray, np.ndarray]:
    """Per-prompt means of two arms as aligned arrays (in the arm's prompt order).

    Both must cover the same prompts: a difference over different prompt sets mixes prompt difficulty
    into the effect.
    """
    missing, extra = set(arm) - set(baseline), set(baseline) - set(arm)
    if missing or extra:
        raise MiroError(f"arms are paired by prompt but {len(missing)} prompts lack a baseline value and "
                        f"{len(extra)} lack an arm value; evaluate both arms on the same prompts")
    keys = list(arm)
    return np.array([arm[k] for k in keys], dtype=np.float64), np.array([baseline[k] for k in keys], dtype=np.float64)


def resample_counts(rng: np.random.Generator, n: int, n_resamples: int) -> np.ndarray:
    """(n_resamples, n) counts: how often each of n items is drawn in each bootstrap resample of size n."""
    return rng.multinomial(n, np.full(n, 1.0 / n), size=n_resamples)


def percentile_interval(estimate: float, draws: np.ndarray, level: float) -> Interval:
    """The percentile bootstrap interval: the (1 - level) / 2 and (1 + level) / 2 quantiles of the draws."""
    low, high = np.quantile(draws, [(1 - level) / 2, (1 + level) / 2])
    return Interval(float(estimate), float(low), float(high), level)
