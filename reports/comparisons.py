"""Per-arm estimates and paired arm-vs-baseline comparisons at the last evaluated step, Holm-corrected.

Prompts are the unit (harness.stats): a prompt's images are averaged, then its seeds; arm seed s is paired
with baseline seed s, and only the seeds and prompts both arms have enter a comparison. GenEval-style 0/1
metrics weigh their tags equally (GenEval's overall score) and are tested with exact McNemar on paired
images (same seed, prompt and sample); every other metric with the sign-flip test on per-prompt means.
Holm's correction runs within families chosen as a reader asks the questions: one arm pair's metrics at
their last common step ("does MIRO beat the baseline, and on what?") is one family; the same pair's GenEval
per-task splits are a family of their own (they re-slice GenEval overall, already in the first family).
Each row names its family, and the report states every family with its size.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from math import ceil

import numpy as np
import pandas as pd

from harness.geneval.metadata import TAGS
from harness.stats import bootstrap_difference, bootstrap_mean, holm, mcnemar_exact, seed_t_interval, sign_flip_test
from reports.results import BINARY_METRICS, SweepResults, SweepSpec, clip_to_range

ALPHA = 0.05
RESAMPLES = 2000  # bootstrap draws per interval, as in the evaluation summaries


@dataclass(frozen=True)
class MetricKey:
    """A metric, or one prompt tag of a 0/1 GenEval metric (its per-task score)."""

    metric: str
    tag: str | None = None

    @property
    def label(self) -> str:
        return self.metric if self.tag is None else f"{self.metric}[{self.tag}]"

    @property
    def stratified(self) -> bool:
        """GenEval's overall score: the unweighted mean of its per-tag means."""
        return self.metric in BINARY_METRICS and self.tag is None


def metric_keys(metrics: pd.DataFrame) -> list[MetricKey]:
    """Every metric, plus per-tag keys for "geneval" (GenEval's order, then any other tag)."""
    names = sorted(set(metrics["metric"]))
    keys = [MetricKey(m) for m in names]
    if "geneval" in names:
        tags = set(metrics.loc[metrics["metric"] == "geneval", "tag"])
        keys += [MetricKey("geneval", t) for t in [*[t for t in TAGS if t in tags], *sorted(tags - set(TAGS))]]
    return keys


def stratum_weights(tags: Sequence[str]) -> np.ndarray:
    """Per-prompt weights whose plain weighted mean is the mean of per-tag means (each tag counts once)."""
    labels, inverse, counts = np.unique(np.asarray(tags), return_inverse=True, return_counts=True)
    return len(tags) / (len(labels) * counts[inverse])


class PromptMeans:
    """Per-prompt means as (seeds x prompts) tables, and per-image 0/1 verdicts for McNemar."""

    def __init__(self, metrics: pd.DataFrame) -> None:
        means = metrics.groupby(["metric", "arm", "step", "seed", "prompt_id"], sort=True)["value"].mean()
        self.wide = means.unstack("prompt_id")  # (metric, arm, step, seed) x prompt_id
        self.tags = metrics.groupby("prompt_id")["tag"].first()
        evaluated = means.index.to_frame(index=False).groupby(["metric", "arm"])["step"]
        self.evaluated = {k: sorted(set(v)) for k, v in evaluated}
        binary = metrics[metrics["metric"].isin(BINARY_METRICS)]
        self.images = {k: g for k, g in binary.groupby(["metric", "arm", "step"])}

    def steps(self, arm: str, metric: str) -> list[int]:
        return self.evaluated.get((metric, arm), [])

    def table(self, key: MetricKey, arm: str, step: int) -> pd.DataFrame:
        """(seeds x prompts) per-prompt means, only the prompts every seed has."""
        table = self.wide.loc[(key.metric, arm, step)]
        if key.tag is not None:
            table = table.loc[:, self.tags.reindex(table.columns).to_numpy() == key.tag]
        return table.dropna(axis=1, how="any")

    def estimate(self, key: MetricKey, table: pd.DataFrame) -> np.ndarray:
        """Each row's (seed's) value over its prompts: stratified for GenEval overall, else the plain mean."""
        values = table.to_numpy()
        if not key.stratified:
            return values.mean(axis=1)
        return values @ stratum_weights(self.tags[table.columns].tolist()) / values.shape[1]

    def strata(self, key: MetricKey, prompts: pd.Index) -> list[str] | None:
        return self.tags[prompts].tolist() if key.stratified else None

    def verdicts(self, key: MetricKey, arm: str, step: int) -> pd.DataFrame:
        rows = self.images[(key.metric, arm, step)]
        return rows if key.tag is None else rows[rows["tag"] == key.tag]


def last_common_step(means: PromptMeans, metric: str, *arms: str) -> int | None:
    common = set.intersection(*(set(means.steps(a, metric)) for a in arms))
    return max(common) if common else None


def _seed_interval(per_seed: np.ndarray) -> tuple[float | None, float | None]:
    if len(per_seed) < 2:
        return None, None
    interval = seed_t_interval(per_seed.tolist())
    return interval.low, interval.high


def arm_estimate(means: PromptMeans, key: MetricKey, arm: str) -> dict[str, object] | None:
    """The arm's value at its last evaluated step: prompt-bootstrap interval, and a seed interval with >= 2 seeds."""
    step = last_common_step(means, key.metric, arm)
    if step is None:
        return None
    table = means.table(key, arm, step)
    if table.shape[1] < 2:
        return None
    per_prompt = table.mean(axis=0)
    interval = bootstrap_mean(per_prompt.to_numpy(), strata=means.strata(key, table.columns), n_resamples=RESAMPLES)
    seed_low, seed_high = clip_to_range(key.metric, *_seed_interval(means.estimate(key, table)))
    return {"arm": arm, "metric": key.label, "base_metric": key.metric, "step": step, "n_seeds": table.shape[0],
            "n_prompts": table.shape[1], "estimate": interval.estimate, "low": interval.low, "high": interval.high,
            "seed_low": seed_low, "seed_high": seed_high}


def _sign_flip_p(arm: np.ndarray, base: np.ndarray, family: int) -> float:
    """Sign-flip p-value with enough resamples that Holm's smallest threshold, ALPHA / family, is reachable."""
    first = sign_flip_test(arm, base, n_resamples=RESAMPLES)
    if first.exact or first.p_value > 1.5 / (RESAMPLES + 1):
        return first.p_value
    # at the resolution floor: draw again, finer (valid: a reported p <= ALPHA implies the first p was too)
    return sign_flip_test(arm, base, n_resamples=ceil(4 * family / ALPHA), seed=1).p_value


def compare(means: PromptMeans, key: MetricKey, arm: str, against: str, family: int, trained: bool) -> dict[str, object] | None:
    """arm - against on the seeds and prompts both have, at their last common step; None without overlap."""
    step = last_common_step(means, key.metric, arm, against)
    if step is None:
        return None
    a, b = means.table(key, arm, step), means.table(key, against, step)
    seeds = [s for s in a.index if s in b.index]
    prompts = a.columns.intersection(b.columns)
    if not seeds or len(prompts) < 2:
        return None
    a, b = a.loc[seeds, prompts], b.loc[seeds, prompts]
    interval = bootstrap_difference(a.mean(axis=0).to_numpy(), b.mean(axis=0).to_numpy(),
                                    strata=means.strata(key, prompts), n_resamples=RESAMPLES)
    if key.metric in BINARY_METRICS:
        pairs = ["seed", "prompt_id", "sample"]
        joined = means.verdicts(key, arm, step).merge(means.verdicts(key, against, step), on=pairs, suffixes=("_a", "_b"))
        joined = joined[joined["seed"].isin(seeds) & joined["prompt_id"].isin(prompts)]
        test, p = "McNemar", mcnemar_exact(joined["value_a"] > 0.5, joined["value_b"] > 0.5).p_value
    else:
        test, p = "sign-flip", _sign_flip_p(a.mean(axis=0).to_numpy(), b.mean(axis=0).to_numpy(), family)
    seed_low, seed_high = _seed_interval(means.estimate(key, a) - means.estimate(key, b))
    return {"arm": arm, "against": against, "metric": key.label, "base_metric": key.metric, "step": step, "n_seeds": len(seeds),
            "n_prompts": len(prompts), "difference": interval.estimate, "low": interval.low, "high": interval.high,
            "seed_low": seed_low, "seed_high": seed_high, "test": test, "p": p, "trained": trained}


def family_of(key: MetricKey, arm: str, against: str) -> str:
    """The Holm family of one test: the arm pair's metrics, or the arm pair's per-task splits of a metric."""
    return f"{arm} vs {against}: " + ("metrics" if key.tag is None else f"{key.metric} per task")


def comparison_pairs(spec: SweepSpec) -> list[tuple[str, str]]:
    """Each arm against its declared baseline, and against the no-reward baseline when that is another arm."""
    pairs = []
    for arm in spec.arms:
        if arm.baseline is not None:
            pairs.append((arm.name, arm.baseline))
        if spec.reference not in (None, arm.name, arm.baseline):
            pairs.append((arm.name, spec.reference))
    return pairs


@dataclass(frozen=True)
class Statistics:
    """estimates: one row per (arm, metric); comparisons: one row per (arm, against, metric), with Holm."""

    keys: list[MetricKey]
    estimates: pd.DataFrame
    comparisons: pd.DataFrame


ESTIMATE_COLUMNS = ["arm", "metric", "base_metric", "step", "n_seeds", "n_prompts", "estimate", "low", "high", "seed_low", "seed_high"]
COMPARISON_COLUMNS = ["arm", "against", "metric", "base_metric", "step", "n_seeds", "n_prompts", "difference", "low", "high",
                      "seed_low", "seed_high", "test", "p", "trained", "family", "family_size", "p_holm", "significant"]


def statistics(results: SweepResults, means: PromptMeans) -> Statistics:
    """Every arm's estimates and every planned comparison, with Holm-adjusted p-values and training roles."""
    spec, keys = results.spec, metric_keys(results.metrics)
    estimates = [row for a in spec.arms for k in keys if (row := arm_estimate(means, k, a.name)) is not None]
    # a metric either compared arm was conditioned on is what it was guided toward: not independent evidence
    rewards = {a.name: set(a.training_rewards) for a in spec.arms}
    plan = [(k, arm, against, k.metric in rewards[arm] | rewards[against])
            for arm, against in comparison_pairs(spec) for k in keys]
    sizes = pd.Series([family_of(k, arm, against) for k, arm, against, _ in plan]).value_counts().to_dict()
    rows = []
    for k, arm, against, trained in plan:
        family = family_of(k, arm, against)
        row = compare(means, k, arm, against, sizes[family], trained)
        if row is not None:
            rows.append({**row, "family": family})
    comparisons = pd.DataFrame(rows, columns=[c for c in COMPARISON_COLUMNS if c not in ("family_size", "p_holm", "significant")])
    comparisons["family_size"] = comparisons.groupby("family")["p"].transform("size") if rows else []
    comparisons["p_holm"] = comparisons.groupby("family")["p"].transform(lambda p: holm(p.to_numpy())) if rows else []
    comparisons["significant"] = comparisons["p_holm"] < ALPHA
    return Statistics(keys, pd.DataFrame(estimates, columns=ESTIMATE_COLUMNS), comparisons)
