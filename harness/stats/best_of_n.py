"""Best-of-N curves without drawing subsets: the exact expectation from the n >= N samples at hand.

Best-of-N draws N of a prompt's samples, keeps the one with the highest selection score (e.g. the target
reward model) and reports a metric of it (the same reward, or a held-out one). Over all N-subsets of the
n samples, the i-th smallest selection score (0-based) wins in C(i, N - 1) of the C(n, N) subsets, so

    E[metric of the winner] = sum_i C(i, N - 1) / C(n, N) * metric_(i),

an unbiased estimate of the best-of-N value for i.i.d. samples that uses every subset at once. Tied
selection scores are broken uniformly at random, so tied samples share their mean metric.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from math import comb

import numpy as np
from numpy.typing import ArrayLike

from miro.errors import MiroError

DEFAULT_MAX_N = 128


@dataclass(frozen=True)
class BestOfNCurve:
    """Expected metric of the selected sample for each N: mean over prompts, and per prompt (P, len(ns))."""

    ns: tuple[int, ...]
    mean: tuple[float, ...]
    per_prompt: np.ndarray = field(compare=False, repr=False)


@lru_cache(maxsize=32)
def order_weights(n: int, ns: tuple[int, ...]) -> np.ndarray:
    """(len(ns), n): weight of the i-th smallest of n samples in the best-of-N expectation (rows sum to 1)."""
    return np.array([[comb(i, big_n - 1) / comb(n, big_n) for i in range(n)] for big_n in ns])


def best_of_n(
    selection: Sequence[ArrayLike], metric: Sequence[ArrayLike] | None = None, ns: Sequence[int] | None = None
) -> BestOfNCurve:
    """Best-of-N curve from per-prompt samples.

    selection[p] holds prompt p's n_p selection scores; metric[p] the metric of the same samples (default:
    the selection score itself). ns defaults to 1..min(128, smallest n_p); every N must be <= every n_p.
    """
    scores = [np.asarray(s, dtype=np.float64) for s in selection]
    values = scores if metric is None else [np.asarray(m, dtype=np.float64) for m in metric]
    if len(values) != len(scores) or not scores:
        raise MiroError(f"need the same non-zero number of prompts for selection ({len(scores)}) and metric ({len(values)})")
    smallest = min(len(s) for s in scores)
    ns = tuple(range(1, min(DEFAULT_MAX_N, smallest) + 1)) if ns is None else tuple(int(n) for n in ns)
    if not ns or min(ns) < 1 or max(ns) > smallest:
        raise MiroError(f"every N must be in 1..{smallest} (the fewest samples any prompt has), got {list(ns)}; "
                        "sample more images per prompt for a larger N")
    rows = []
    for p, (score, value) in enumerate(zip(scores, values)):
        if score.shape != value.shape or score.ndim != 1 or not np.isfinite(score).all():
            raise MiroError(f"prompt {p}: selection and metric need the same number of finite scores")
        order = np.argsort(score, kind="stable")
        _, tie = np.unique(score[order], return_inverse=True)
        sorted_metric = (np.bincount(tie, weights=value[order]) / np.bincount(tie))[tie]  # ties share their mean
        rows.append(order_weights(len(score), ns) @ sorted_metric)
    per_prompt = np.array(rows)
    return BestOfNCurve(ns, tuple(float(v) for v in per_prompt.mean(axis=0)), per_prompt)
