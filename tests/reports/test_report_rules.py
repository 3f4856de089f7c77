"""Every verdict rule of the report on hand-written comparison rows, each rule on its own: only Holm-adjusted p
counts, a lower-is-better metric is better when it falls, a trained reward that got worse refutes the reward claim,
a slope counts only when its interval's lower bound is above 0 (a speed-up: above 1), a significantly worse GenEval
task refutes the task claim, a specialist must gain on its reward and lose elsewhere, and findings on trained
rewards are set apart from held-out ones."""
from __future__ import annotations

import pandas as pd
import pytest

from reports.claims import (
    NOT_SUPPORTED,
    SUPPORTED,
    controllability_claim,
    convergence_claim,
    geneval_tasks_claim,
    outcome,
    rewards_claim,
    roles,
    specialists_claim,
)
from reports.results import ArmSpec, SweepSpec
from reports.verdicts import verdicts

SPEC = SweepSpec("rules", "", (0,), (100,), (
    ArmSpec("baseline", None, (), {}, (), {}), ArmSpec("miro", "baseline", ("rewards",), {}, ("pickscore", "hpsv2"), {}),
    ArmSpec("only-pickscore", "miro", ("rewards",), {}, ("pickscore",), {})), {}, {}, 1, 1, frozenset({"fid"}))
WHO = roles(SPEC)
SIGNIFICANT, QUIET = 0.001, 0.4


def row(metric: str, difference: float, p_holm: float, *, arm: str = "miro", against: str = "baseline", p: float | None = None,
        trained: bool | None = None) -> dict:
    base = metric.partition("[")[0]
    return {"arm": arm, "against": against, "step": 100, "metric": metric, "base_metric": base, "difference": difference,
            "low": difference - 0.01, "high": difference + 0.01, "p": p_holm if p is None else p, "p_holm": p_holm,
            "trained": base in SPEC.arm(arm).training_rewards if trained is None else trained, "n_seeds": 1, "n_prompts": 20,
            "family_size": 3}


def frame(*rows: dict) -> pd.DataFrame:
    return pd.DataFrame(list(rows))


def test_only_the_holm_adjusted_p_makes_a_difference_significant():
    raw_only = pd.Series(row("clip_score", 0.2, QUIET, p=SIGNIFICANT))  # significant before the family is adjusted
    assert outcome(raw_only, 1) == "no significant difference"
    assert outcome(pd.Series(row("clip_score", 0.2, SIGNIFICANT)), 1) == "better"
    (judged,) = verdicts(frame(row("clip_score", 0.2, QUIET, p=SIGNIFICANT)), SPEC)
    assert judged.held_out == [] and judged.quiet == ["clip_score"]


def test_a_lower_is_better_metric_is_better_when_it_falls():
    assert outcome(pd.Series(row("fid", -3.0, SIGNIFICANT)), SPEC.direction("fid")) == "better"
    assert outcome(pd.Series(row("fid", 3.0, SIGNIFICANT)), SPEC.direction("fid")) == "worse"
    (judged,) = verdicts(frame(row("fid", -3.0, SIGNIFICANT)), SPEC)
    assert "(better, Holm" in judged.held_out[0]


def test_the_reward_claim_needs_every_held_out_metric_and_every_trained_reward_better():
    held = row("clip_score", 0.1, SIGNIFICANT)
    assert rewards_claim(frame(held, row("pickscore", 0.3, SIGNIFICANT)), SPEC, WHO).status == SUPPORTED
    worse_trained = rewards_claim(frame(held, row("pickscore", -0.3, SIGNIFICANT)), SPEC, WHO)
    assert worse_trained.status == NOT_SUPPORTED and "better on 0 of 1" in worse_trained.reason
    assert rewards_claim(frame(row("clip_score", 0.1, QUIET), row("pickscore", 0.3, SIGNIFICANT)), SPEC, WHO).status == NOT_SUPPORTED


def test_findings_on_trained_rewards_are_set_apart_from_held_out_ones():
    (judged,) = verdicts(frame(row("clip_score", 0.1, SIGNIFICANT), row("pickscore", 0.3, SIGNIFICANT)), SPEC)
    assert [f.split()[0] for f in judged.held_out] == ["clip_score"] and [f.split()[0] for f in judged.trained] == ["pickscore"]


def slopes(slope: float, low: float) -> pd.DataFrame:
    return pd.DataFrame([{"arm": "miro", "reward": "pickscore", "metric": "pickscore", "slope": slope, "low": low, "high": slope + 0.2,
                          "n_targets": 3, "n_prompts": 20, "step": 100}])


def test_a_reward_is_controllable_only_when_its_slope_interval_lies_above_zero():
    assert controllability_claim(slopes(0.3, 0.05), WHO).status == SUPPORTED
    assert controllability_claim(slopes(0.3, -0.05), WHO).status == NOT_SUPPORTED  # a positive slope alone is not enough


def speedups(speedup: float, low: float) -> pd.DataFrame:
    return pd.DataFrame([{"arm": "miro", "against": "baseline", "metric": "pickscore", "target_step": 100, "speedup": speedup,
                          "low": low, "high": speedup + 1, "reached_fraction": 1.0, "at_first_step": False, "baseline_flat": False}])


def test_convergence_is_faster_only_when_the_speed_up_interval_lies_above_one():
    assert convergence_claim(speedups(2.0, 1.2), WHO).status == SUPPORTED
    assert convergence_claim(speedups(2.0, 0.9), WHO).status == NOT_SUPPORTED


def test_a_significantly_worse_geneval_task_refutes_the_task_claim():
    better, quiet, worse = (row("geneval[counting]", 0.1, SIGNIFICANT), row("geneval[colors]", 0.0, QUIET),
                            row("geneval[position]", -0.1, SIGNIFICANT))
    assert geneval_tasks_claim(frame(better, quiet), WHO).status == SUPPORTED
    assert geneval_tasks_claim(frame(better, worse), WHO).status == NOT_SUPPORTED
    assert geneval_tasks_claim(frame(quiet), WHO).status == NOT_SUPPORTED  # no task better


@pytest.mark.parametrize("own, elsewhere, fits", [(0.2, -0.1, True), (0.2, 0.0, False), (0.0, -0.1, False)])
def test_a_specialist_fits_when_it_gains_on_its_reward_and_loses_to_miro_elsewhere(own, elsewhere, fits):
    rows = frame(row("pickscore", own, SIGNIFICANT if own else QUIET, arm="only-pickscore", against="baseline"),
                 row("pickscore", 0.0, QUIET, arm="only-pickscore", against="miro"),
                 row("hpsv2", elsewhere, SIGNIFICANT if elsewhere else QUIET, arm="only-pickscore", against="miro", trained=False))
    assert specialists_claim(rows, SPEC, WHO).status == (SUPPORTED if fits else NOT_SUPPORTED)
