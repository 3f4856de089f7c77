"""The paper's published numbers, shown beside the sweep's own only where an arm and a metric match.

They come from reports/data (copied from the paper's tables, with their source and unit conversions in
sources.json), so a report never depends on files outside the project. They are context, never data: no
statistic, "best" mark or verdict uses them.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pandas as pd

DATA = Path(__file__).parent / "data"


@dataclass(frozen=True)
class Sources:
    """Where the numbers come from: the paper, the unit conversions, and one line per file."""

    paper: str
    scales: str
    files: dict[str, str]


@cache
def sources() -> Sources:
    return Sources(**json.loads((DATA / "sources.json").read_text()))


@cache
def _csv(name: str) -> pd.DataFrame:
    return pd.read_csv(DATA / name)


def arm_rows(arms: list[str], columns: list[str]) -> pd.DataFrame:
    """Published rows of the sweep's arms (matched by arm name) restricted to the report's metric columns.

    Empty when no arm or no metric matches; columns: arm, label, table, then the matching metrics.
    """
    table = _csv("paper_arms.csv")
    metrics = [c for c in columns if c in table.columns]
    rows = table[table["arm"].isin(arms)]
    if rows.empty or not metrics:
        return pd.DataFrame(columns=["arm", "label", "table"])
    order = {a: i for i, a in enumerate(arms)}
    return rows[["arm", "label", "table", *metrics]].sort_values("arm", key=lambda s: s.map(order)).reset_index(drop=True)


def best_of_n(arm: str, metric: str) -> pd.DataFrame | None:
    """The paper's best-of-N curve (n, value) for an arm selecting and reporting `metric`, if published."""
    table = _csv("paper_best_of_n.csv")
    rows = table[table["arm"] == arm]
    if metric not in table.columns or rows.empty:
        return None
    return rows[["n", metric]].rename(columns={metric: "value"}).reset_index(drop=True)


def target_sweep(reward: str, metric: str) -> pd.DataFrame | None:
    """The paper's measured `metric` against the requested `reward` target (target, value), if published."""
    table = _csv("paper_aesthetic_target.csv")
    if reward != "aesthetic" or metric not in table.columns:
        return None
    return table[["aesthetic_target", metric]].set_axis(["target", "value"], axis=1)


def speedups() -> dict[str, float]:
    """Published convergence speed-up of MIRO over the baseline, per metric."""
    table = _csv("paper_speedups.csv")
    return dict(zip(table["metric"], table["speedup"].astype(float)))
