"""Training curves and the paper's convergence speed-up of each arm over the no-reward baseline.

speed-up = (baseline's last evaluated step) / (first step at which the arm reaches the baseline's final
value), with a prompt-bootstrap interval (harness.stats.speedup). `baseline_flat` marks a metric on which
the baseline was already at its final value at its first checkpoint (say, blank early images scoring as well
as its last ones): steps-to-reach measures no convergence there, whatever the arm does. Curves and speed-ups
use the steps both arms evaluated and the prompts every one of those checkpoints has, seeds averaged per prompt (seed s of
both arms), so a partial sweep gives a curve over what exists rather than a wrong one.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from harness.stats import bootstrap_speedup, reach_step
from reports.comparisons import MetricKey, PromptMeans, stratum_weights
from reports.results import SweepSpec

SPEEDUP_RESAMPLES = 1000
CURVE_COLUMNS = ["arm", "metric", "step", "n_seeds", "n_prompts", "value"]
SPEEDUP_COLUMNS = ["arm", "against", "metric", "target_step", "speedup", "low", "high", "reached_fraction", "at_first_step",
                   "baseline_flat"]


def curve_keys(keys: list[MetricKey]) -> list[MetricKey]:
    """The metrics drawn as curves: whole metrics, not GenEval's per-tag parts."""
    return [k for k in keys if k.tag is None]


def curves(means: PromptMeans, spec: SweepSpec, keys: list[MetricKey]) -> pd.DataFrame:
    """Each arm's value at each evaluated step (seed-averaged per-prompt means; GenEval's tags weighed equally)."""
    rows = []
    for key in curve_keys(keys):
        for arm in spec.arms:
            for step in means.steps(arm.name, key.metric):
                table = means.table(key, arm.name, step)
                if table.shape[1]:
                    rows.append({"arm": arm.name, "metric": key.label, "step": step, "n_seeds": table.shape[0],
                                 "n_prompts": table.shape[1], "value": float(means.estimate(key, table).mean())})
    return pd.DataFrame(rows, columns=CURVE_COLUMNS)


def per_prompt_curves(means: PromptMeans, key: MetricKey, arm: str, against: str) -> tuple[list[int], np.ndarray, np.ndarray] | None:
    """(steps, arm (T, P), against (T, P)) on the steps, seeds and prompts both have; GenEval overall reweighted
    per prompt so that a plain mean over prompts is the mean of per-tag means."""
    steps = sorted(set(means.steps(arm, key.metric)) & set(means.steps(against, key.metric)))
    if not steps:
        return None
    tables = [(means.table(key, arm, s), means.table(key, against, s)) for s in steps]
    seeds = set.intersection(*(set(a.index) & set(b.index) for a, b in tables))
    prompts = tables[0][0].columns
    for a, b in tables:
        prompts = prompts.intersection(a.columns).intersection(b.columns)
    if not seeds or len(prompts) < 2:
        return None
    kept = sorted(seeds)
    weights = stratum_weights(means.tags[prompts].tolist()) if key.stratified else np.ones(len(prompts))
    arm_curve = np.array([a.loc[kept, prompts].mean(axis=0).to_numpy() * weights for a, _ in tables])
    against_curve = np.array([b.loc[kept, prompts].mean(axis=0).to_numpy() * weights for _, b in tables])
    return steps, arm_curve, against_curve


def speedups(means: PromptMeans, spec: SweepSpec, keys: list[MetricKey]) -> pd.DataFrame:
    """Speed-up of every reward-trained arm over the no-reward baseline, per directed metric."""
    rows = []
    reference = spec.reference
    for key in curve_keys(keys):
        direction = spec.direction(key.metric)
        if reference is None or direction == 0:
            continue
        for arm in spec.arms:
            found = per_prompt_curves(means, key, arm.name, reference) if arm.training_rewards else None
            if found is None or len(found[0]) < 2:
                continue
            steps, arm_curve, base_curve = found
            result = bootstrap_speedup(steps, base_curve, steps, arm_curve, higher_is_better=direction > 0,
                                       n_resamples=SPEEDUP_RESAMPLES)
            base_mean = list(base_curve.mean(axis=1))
            reached = reach_step(steps, list(arm_curve.mean(axis=1)), base_mean[-1], direction > 0)
            rows.append({"arm": arm.name, "against": reference, "metric": key.label, "target_step": steps[-1],
                         "speedup": result.estimate, "low": result.low, "high": result.high,
                         "reached_fraction": result.reached_fraction, "at_first_step": reached == steps[0],
                         "baseline_flat": reach_step(steps, base_mean, base_mean[-1], direction > 0) == steps[0]})
    return pd.DataFrame(rows, columns=SPEEDUP_COLUMNS)
