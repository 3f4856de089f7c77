"""Which metrics an arm was trained on and which are held out.

A model conditioned on a reward is guided toward it at sampling time, so its score on that reward is
what it was asked for, not independent evidence of quality. Every metric in a summary carries its role,
and `held_out` lists the metrics a report may present as evidence for an arm (or for every arm of a
comparison: a metric counts as held out only if no compared arm was conditioned on it).
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

TRAINED = "training reward"
HELD_OUT = "held out"


def metric_roles(metrics: Iterable[str], trained: Sequence[str]) -> dict[str, str]:
    """metric -> TRAINED when the arm was conditioned on it, else HELD_OUT."""
    return {m: TRAINED if m in trained else HELD_OUT for m in metrics}


def held_out(metrics: Iterable[str], arms: Mapping[str, Sequence[str]]) -> list[str]:
    """The metrics no arm was conditioned on (arms: arm name -> its training rewards)."""
    used = {r for rewards in arms.values() for r in rewards}
    return [m for m in metrics if m not in used]
