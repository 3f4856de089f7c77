"""Multiple-comparison corrections for the many arm x metric tests of a sweep.

Both return adjusted p-values in the input order; reject where adjusted p <= alpha. Holm controls the
family-wise error rate (any false claim); Benjamini-Hochberg the false discovery rate (their share).
"""
from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from miro.errors import MiroError


def _check(p_values: ArrayLike) -> np.ndarray:
    p = np.asarray(p_values, dtype=np.float64)
    if p.ndim != 1 or not ((p >= 0) & (p <= 1)).all():
        raise MiroError("p-values must be a 1-D list of numbers in [0, 1]")
    return p


def holm(p_values: ArrayLike) -> np.ndarray:
    """Holm step-down: sorted p_(i) (i from 1) -> max over j <= i of min(1, (m - j + 1) p_(j))."""
    p = _check(p_values)
    m = len(p)
    order = np.argsort(p, kind="stable")
    adjusted = np.maximum.accumulate(np.minimum(1.0, (m - np.arange(m)) * p[order]))
    out = np.empty(m)
    out[order] = adjusted
    return out


def benjamini_hochberg(p_values: ArrayLike) -> np.ndarray:
    """Benjamini-Hochberg step-up: sorted p_(i) -> min over j >= i of min(1, m p_(j) / j)."""
    p = _check(p_values)
    m = len(p)
    order = np.argsort(p, kind="stable")
    scaled = p[order] * m / np.arange(1, m + 1)
    adjusted = np.minimum(1.0, np.minimum.accumulate(scaled[::-1])[::-1])
    out = np.empty(m)
    out[order] = adjusted
    return out
