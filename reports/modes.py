"""Summaries of the evaluation modes beyond the main table: reward-target sweeps, best-of-N, Pareto trials.

Each is a small table (also exported as CSV/JSON) that a figure draws; all at the arm's last swept step.
"""
from __future__ import annotations

from typing import Any

import pandas as pd

from harness.stats import bootstrap_mean, bootstrap_slope
from reports.comparisons import RESAMPLES

CONTROL_COLUMNS = ["arm", "reward", "metric", "target", "step", "n_seeds", "n_prompts", "value", "low", "high"]
SLOPE_COLUMNS = ["arm", "reward", "metric", "step", "n_targets", "n_prompts", "slope", "low", "high"]


def last_step(table: pd.DataFrame) -> pd.DataFrame:
    """Each arm's rows at its last step in `table`."""
    return table[table["step"] == table.groupby("arm")["step"].transform("max")]


def controllability(table: pd.DataFrame | None) -> pd.DataFrame:
    """Measured metric per requested target: mean over prompts (seeds averaged per prompt) with a prompt-bootstrap interval."""
    if table is None or table.empty:
        return pd.DataFrame(columns=CONTROL_COLUMNS)
    rows = []
    keys = ["arm", "reward", "metric", "target", "step"]
    for (arm, reward, metric, target, step), group in last_step(table).groupby(keys, sort=True):
        per_prompt = group.groupby(["prompt_id", "seed"])["value"].mean().groupby("prompt_id").mean()
        value, low, high = float(per_prompt.mean()), None, None
        if len(per_prompt) >= 2:
            interval = bootstrap_mean(per_prompt.to_numpy(), n_resamples=RESAMPLES)
            low, high = interval.low, interval.high
        rows.append({"arm": arm, "reward": reward, "metric": metric, "target": target, "step": step,
                     "n_seeds": group["seed"].nunique(), "n_prompts": len(per_prompt), "value": value, "low": low, "high": high})
    return pd.DataFrame(rows, columns=CONTROL_COLUMNS)


def control_slopes(table: pd.DataFrame | None) -> pd.DataFrame:
    """Least-squares slope of the measured metric against the requested target per (arm, reward, metric), with a
    95% prompt-bootstrap interval (harness.stats.bootstrap_slope); only prompts measured at every target enter."""
    if table is None or table.empty:
        return pd.DataFrame(columns=SLOPE_COLUMNS)
    rows = []
    for (arm, reward, metric, step), group in last_step(table).groupby(["arm", "reward", "metric", "step"], sort=True):
        per_prompt = group.groupby(["target", "prompt_id", "seed"])["value"].mean().groupby(["target", "prompt_id"]).mean()
        curves = per_prompt.unstack("prompt_id").dropna(axis=1, how="any")  # (targets, prompts)
        if len(curves) < 2 or curves.shape[1] < 2:
            continue
        interval = bootstrap_slope(curves.index.tolist(), curves.to_numpy(), n_resamples=RESAMPLES)
        rows.append({"arm": arm, "reward": reward, "metric": metric, "step": step, "n_targets": len(curves),
                     "n_prompts": curves.shape[1], "slope": interval.estimate, "low": interval.low, "high": interval.high})
    return pd.DataFrame(rows, columns=SLOPE_COLUMNS)


def best_of_n(table: pd.DataFrame | None) -> pd.DataFrame:
    """Best-of-N value per (arm, selector, metric, n): the mean over seeds of the stored means over prompts."""
    columns = ["arm", "selector", "metric", "n", "step", "n_seeds", "value"]
    if table is None or table.empty:
        return pd.DataFrame(columns=columns)
    grouped = last_step(table).groupby(["arm", "selector", "metric", "n", "step"], sort=True)["value"]
    out = grouped.agg(value="mean", n_seeds="count").reset_index()
    return out[columns]


def pareto_trials(study: dict[str, Any] | None) -> pd.DataFrame:
    """One row per tuning trial: its parameters, both objective values and whether it is on the front."""
    if study is None:
        return pd.DataFrame(columns=["arm", "trial", "pareto"])
    first, second = study["objectives"]
    return pd.DataFrame([{"arm": study["arm"], "trial": i, **{f"param.{k}": v for k, v in t.get("params", {}).items()},
                          first: t["values"][0], second: t["values"][1], "pareto": bool(t.get("pareto", False))}
                         for i, t in enumerate(study["trials"])])
