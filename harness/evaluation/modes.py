"""Evaluation modes beyond "N samples per prompt, averaged": best-of-N curves and reward-target sweeps.

- Best-of-N: generate n samples per prompt (128 for the paper's N = 1..128), pick the best of N by a
  named scorer and report every metric of the pick; the expectation over all N-subsets is exact
  (harness.stats.best_of_n). Selecting by a reward the model was trained on and reporting that same
  reward measures only the selection; the curve of a held-out metric is the evidence.
- Reward-target sweep: the positive target of one reward from 0 to 1, the other targets fixed, one
  evaluation per value in its own folder: it shows whether the reward is controllable and what moving
  it costs on the other metrics.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd

from harness.evaluation.generate import GenerationOptions
from harness.stats import best_of_n
from harness.stats.best_of_n import DEFAULT_MAX_N
from miro.errors import MiroError, unknown_name_error

DEFAULT_SWEEP_VALUES = (0.0, 0.25, 0.5, 0.75, 1.0)


def best_of_n_curves(table: pd.DataFrame, select_by: str, metrics: Sequence[str], roles: Mapping[str, str],
                     ns: Sequence[int] | None = None) -> dict[str, Any]:
    """Best-of-N curve of each metric when selecting by `select_by`, from the per-image rows.

    Images missing the selection score or a metric are left out of that metric's curve; N runs over
    1..min(128, fewest samples of any prompt) unless `ns` is given.
    """
    if select_by not in table.columns:
        raise unknown_name_error("best-of-N selection scorer", select_by, [m for m in metrics if m in table.columns])
    curves = {}
    for metric in metrics:
        kept = table[table[select_by].notna() & table[metric].notna()]
        if kept.empty:
            raise MiroError(f'no image has both "{select_by}" and "{metric}"; score the images first')
        groups = [g for _, g in kept.groupby("prompt_index", sort=True)]
        curve = best_of_n([g[select_by].to_numpy() for g in groups], [g[metric].to_numpy() for g in groups], ns)
        curves[metric] = {"role": roles.get(metric), "ns": list(curve.ns), "mean": list(curve.mean)}
    return {"select_by": select_by, "select_by_role": roles.get(select_by), "max_n": DEFAULT_MAX_N, "curves": curves}


@dataclass(frozen=True)
class TargetSweep:
    """Sweep the positive target of `reward` over `values`, other targets as in the base options."""

    reward: str
    values: tuple[float, ...] = DEFAULT_SWEEP_VALUES

    def __post_init__(self) -> None:
        if not self.values or any(not 0.0 <= v <= 1.0 for v in self.values):
            raise MiroError(f"sweep values {list(self.values)} must be a non-empty list in [0, 1]")

    def points(self, base: GenerationOptions) -> list[tuple[float, GenerationOptions]]:
        """(value, options with the reward's positive target set to value) for each value."""
        return [(v, replace(base, sample=replace(base.sample, positive_targets={**base.sample.positive_targets, self.reward: v})))
                for v in self.values]

    def folder(self, out: str | Path, value: float) -> Path:
        return Path(out) / f"sweep-{self.reward}-{value:g}"


def sweep_table(sweep: TargetSweep, summaries: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Per metric: its role, and its headline value, low and high at each target (from each point's summary)."""
    metrics: dict[str, dict[str, Any]] = {}
    for summary in summaries:
        for name, entry in summary["metrics"].items():
            row = metrics.setdefault(name, {"role": entry["role"], "value": [], "low": [], "high": []})
            for key in ("value", "low", "high"):
                row[key].append(entry.get(key))
    return {"reward": sweep.reward, "targets": list(sweep.values), "metrics": metrics}
