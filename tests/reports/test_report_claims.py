"""The paper's claims as verdicts, read off the statistics of a stored sweep with planted effects: roles found
from what arms were trained on, the planted slope and specialist trade-off found, censored speed-ups shown as
lower bounds, and claims the sweep cannot test said so."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
from synthetic_sweep import write_synthetic_sweep

from reports.build import Built
from reports.claims import NOT_SUPPORTED, NOT_TESTABLE, SUPPORTED, Claim, claims, roles
from reports.comparisons import PromptMeans, statistics
from reports.convergence import speedups
from reports.modes import control_slopes
from reports.results import SweepResults, load


def judge(results: SweepResults) -> dict[str, Claim]:
    means = PromptMeans(results.metrics)
    stats = statistics(results, means)
    found = claims(stats.comparisons, speedups(means, results.spec, stats.keys), control_slopes(results.controllability),
                   results.spec)
    return {c.key: c for c in found}


@pytest.fixture(scope="module")
def results(sweep_dir: Path) -> SweepResults:
    return load(sweep_dir)


@pytest.fixture(scope="module")
def judged(results: SweepResults) -> dict[str, Claim]:
    return judge(results)


def test_roles_come_from_training_rewards_not_names(results: SweepResults) -> None:
    spec = results.spec
    found = roles(spec)
    assert (found.baseline, found.miro) == ("baseline", "miro")
    assert found.specialists == ("only-alignment", "only-quality", "only-size")
    renamed = {a.name: f"arm{i}" for i, a in enumerate(spec.arms)}
    arms = tuple(replace(a, name=renamed[a.name], baseline=renamed.get(a.baseline)) for a in spec.arms)
    other = roles(replace(spec, arms=arms))
    assert (other.baseline, other.miro, other.specialists) == ("arm0", "arm1", ("arm2", "arm3", "arm4"))


def test_the_planted_slope_is_found_with_its_interval(results: SweepResults, judged: dict[str, Claim]) -> None:
    slopes = control_slopes(results.controllability).set_index(["arm", "reward"])
    quality = slopes.loc[("miro", "shapes_quality")]
    assert quality["slope"] == pytest.approx(0.6, abs=0.05) and 0 < quality["low"] < quality["slope"] < quality["high"]
    assert quality["n_targets"] == 5 and quality["n_prompts"] == 12
    claim = judged["controllability"]
    assert claim.status == SUPPORTED and "not swept: shapes_alignment" in claim.reason
    assert any(line.startswith("shapes_quality: slope +0.") for line in claim.evidence)


def test_censored_speedups_are_lower_bounds_and_the_rest_have_intervals(judged: dict[str, Claim]) -> None:
    claim = judged["convergence"]
    quality = next(line for line in claim.evidence if line.startswith("shapes_quality"))
    assert "≥ 5.0×" in quality and "lower bound only" in quality and "censored" in claim.reason
    alignment = next(line for line in claim.evidence if line.startswith("shapes_alignment"))
    assert "≥" not in alignment and "[" in alignment
    assert claim.status == NOT_SUPPORTED  # alignment's planted effect is too small for its interval to clear 1


def test_held_out_losses_refute_the_reward_claim_and_trained_rewards_are_set_apart(judged: dict[str, Claim]) -> None:
    claim = judged["rewards"]
    assert claim.status == NOT_SUPPORTED  # the planted size reward costs GenEval and cleanliness
    assert any(line.startswith("held out: shapes_cleanliness −") and "(worse" in line for line in claim.evidence)
    assert any(line.startswith("trained reward: shapes_quality +") and "(better" in line for line in claim.evidence)
    assert any(line.startswith("held out: geneval_shape_read") for line in claim.evidence)  # one-class prompts only
    assert "not independent evidence" in claim.reason


def test_specialists_gain_on_their_reward_and_lose_elsewhere(judged: dict[str, Claim]) -> None:
    claim = judged["specialists"]
    assert claim.status == SUPPORTED and "3 of 3" in claim.reason
    quality = next(line for line in claim.evidence if line.startswith("only-quality"))
    assert "own reward vs baseline: shapes_quality +" in quality and "worse than miro on: shapes_size −" in quality


def test_geneval_tasks_list_every_task_with_its_interval(judged: dict[str, Claim]) -> None:
    claim = judged["geneval_tasks"]
    assert len(claim.evidence) == 6 and all(line.startswith("geneval[") and "Holm" in line for line in claim.evidence)
    assert "Holm family of 6" in claim.reason and claim.status in (SUPPORTED, NOT_SUPPORTED)


def test_what_the_sweep_lacks_is_not_testable(tmp_path: Path) -> None:
    root = write_synthetic_sweep(tmp_path / "sweep", prompts=12, samples=1, optional=False)
    judged = judge(load(root))
    assert judged["controllability"].status == NOT_TESTABLE
    lone = load(root)  # the no-reward baseline alone: no MIRO, no specialist, nothing to compare
    lone.spec = replace(lone.spec, arms=lone.spec.arms[:1])
    lone.metrics = lone.metrics[lone.metrics["arm"] == "baseline"]
    assert {c.status for c in judge(lone).values()} == {NOT_TESTABLE}


def test_the_report_opens_with_the_claims_and_exports_them(built: Built) -> None:
    html = built.html.read_text()
    assert html.index('id="claims"') < html.index("<h3>Verdicts</h3>") < html.index('id="main"')
    assert "Each reward is controllable" in html and "lower bound only" in html
    exported = pd.read_csv(built.tables / "claims.csv")
    assert list(exported["key"]) == ["rewards", "convergence", "controllability", "specialists", "geneval_tasks"]
    assert {"slope", "low", "high"} <= set(pd.read_csv(built.tables / "control_slopes.csv").columns)



def test_a_speed_up_on_a_metric_the_baseline_starts_at_is_not_measurable(results: SweepResults) -> None:
    from reports.claims import convergence_claim

    rows = pd.DataFrame([{"arm": "miro", "against": "baseline", "metric": m, "target_step": 400, "speedup": 4.0, "low": 4.0,
                          "high": 4.0, "reached_fraction": 1.0, "at_first_step": True, "baseline_flat": flat}
                         for m, flat in (("shapes_quality", True), ("shapes_alignment", False))])
    who = roles(results.spec)
    claim = convergence_claim(rows, who)
    assert claim.status == SUPPORTED and "not measurable on shapes_quality" in claim.reason
    assert any("not measurable" in line for line in claim.evidence)
    assert convergence_claim(rows.assign(baseline_flat=True), who).status == NOT_TESTABLE
