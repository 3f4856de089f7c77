"""The report's statistics: planted effects are found, a null arm claims nothing, Holm runs within each
stated family, GenEval overall weighs its tasks equally, verdicts claim exactly the significant differences."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from synthetic_sweep import FIRST_STEP, LAST_STEP, PARTIAL_ARM, PREVIOUS_STEP

from harness.stats import holm
from reports.comparisons import ALPHA, PromptMeans, Statistics, comparison_pairs, statistics
from reports.convergence import speedups
from reports.results import SweepResults, load
from reports.verdicts import verdicts


@pytest.fixture(scope="module")
def results(sweep_dir: Path) -> SweepResults:
    return load(sweep_dir)


@pytest.fixture(scope="module")
def stats(results: SweepResults) -> Statistics:
    return statistics(results, PromptMeans(results.metrics))


def row(stats: Statistics, arm: str, against: str, metric: str) -> pd.Series:
    found = stats.comparisons[(stats.comparisons["arm"] == arm) & (stats.comparisons["against"] == against)
                              & (stats.comparisons["metric"] == metric)]
    assert len(found) == 1
    return found.iloc[0]


def test_each_arm_is_compared_with_its_baseline_and_the_no_reward_baseline(results: SweepResults) -> None:
    pairs = comparison_pairs(results.spec)
    assert ("miro", "baseline") in pairs and ("only-quality", "miro") in pairs and ("only-quality", "baseline") in pairs
    assert not any(arm == "baseline" for arm, _ in pairs)
    assert ("miro", "baseline") == pairs[0] and pairs.count(("miro", "baseline")) == 1


def test_a_planted_reward_effect_is_found_and_marked_as_trained(stats: Statistics) -> None:
    quality = row(stats, "miro", "baseline", "shapes_quality")
    assert quality["significant"] and quality["difference"] > 0.2 and quality["low"] > 0
    assert quality["trained"] and quality["test"] == "sign-flip"
    assert quality["seed_low"] is not None and not np.isnan(quality["seed_low"])  # two seeds: a between-seed interval
    geneval = row(stats, "miro", "baseline", "geneval")
    assert geneval["test"] == "McNemar" and not geneval["trained"] and geneval["difference"] < 0


def test_holm_runs_within_each_family_an_arm_pair_and_its_per_task_splits_apart(stats: Statistics) -> None:
    comparisons = stats.comparisons
    assert set(comparisons["family"]) >= {"miro vs baseline: metrics", "miro vs baseline: geneval per task"}
    for family, rows in comparisons.groupby("family"):
        np.testing.assert_allclose(rows["p_holm"], holm(rows["p"].to_numpy()))
        assert (rows["family_size"] == len(rows)).all()
        tagged = rows["metric"].str.contains(r"\[")
        assert tagged.all() if family.endswith("per task") else not tagged.any()
    assert (comparisons["significant"] == (comparisons["p_holm"] < ALPHA)).all()


def test_geneval_overall_is_the_mean_of_its_tasks(stats: Statistics) -> None:
    estimates = stats.estimates[stats.estimates["arm"] == "miro"].set_index("metric")["estimate"]
    tasks = [m for m in estimates.index if m.startswith("geneval[")]
    assert len(tasks) == 6
    assert estimates["geneval"] == pytest.approx(estimates[tasks].mean())


def test_a_partial_arm_is_compared_at_the_last_step_both_arms_have(stats: Statistics) -> None:
    assert row(stats, PARTIAL_ARM, "miro", "shapes_quality")["step"] == PREVIOUS_STEP
    assert stats.estimates.set_index(["arm", "metric"]).loc[(PARTIAL_ARM, "geneval"), "step"] == PREVIOUS_STEP


def test_verdicts_claim_exactly_the_significant_differences(stats: Statistics, results: SweepResults) -> None:
    judged = verdicts(stats.comparisons, results.spec)
    assert len(judged) == stats.comparisons.groupby(["arm", "against"]).ngroups
    for v in judged:
        rows = stats.comparisons[(stats.comparisons["arm"] == v.arm) & (stats.comparisons["against"] == v.against)]
        claimed = {f.split(" ")[0] for f in v.held_out + v.trained}
        assert claimed == set(rows.loc[rows["significant"], "metric"])
        assert all(row(stats, v.arm, v.against, m)["trained"] for m in {f.split(" ")[0] for f in v.trained})
        assert v.text.startswith(f"{v.arm} vs {v.against}")


def test_an_arm_identical_to_its_baseline_claims_nothing(sweep_dir: Path, tmp_path: Path) -> None:
    root = Path(shutil.copytree(sweep_dir, tmp_path / "sweep"))
    path = root / "results" / "metrics.parquet"
    metrics = pd.read_parquet(path)
    twin = metrics[metrics["arm"] == "miro"].assign(arm="only-alignment")
    pd.concat([metrics[metrics["arm"] != "only-alignment"], twin]).to_parquet(path)
    loaded = load(root)
    comparisons = statistics(loaded, PromptMeans(loaded.metrics)).comparisons
    same = comparisons[(comparisons["arm"] == "only-alignment") & (comparisons["against"] == "miro")]
    assert len(same) > 0 and not same["significant"].any() and (same["difference"] == 0).all()
    verdict = next(v for v in verdicts(comparisons, loaded.spec) if (v.arm, v.against) == ("only-alignment", "miro"))
    assert verdict.held_out == [] and verdict.trained == [] and "geneval" in verdict.quiet


def test_speedup_credits_an_arm_already_there_at_its_first_checkpoint(results: SweepResults, stats: Statistics) -> None:
    table = speedups(PromptMeans(results.metrics), results.spec, stats.keys)
    quality = table[(table["arm"] == "miro") & (table["metric"] == "shapes_quality")].iloc[0]
    assert quality["at_first_step"] and quality["speedup"] == pytest.approx(LAST_STEP / FIRST_STEP)
    assert set(table["against"]) == {"baseline"} and "baseline" not in set(table["arm"])


def test_intervals_stay_in_each_metric_range_and_kid_may_go_negative() -> None:
    from reports.results import clip_to_range
    from reports.tables import diversity_summary

    two_seeds = pd.DataFrame({"arm": ["a", "a", "a", "a"], "seed": [0, 1, 0, 1], "step": [5] * 4,
                              "metric": ["fid", "fid", "kid", "kid"], "value": [2.0, 40.0, -0.002, 0.004],
                              "low": [np.nan] * 4, "high": [np.nan] * 4})
    summary = diversity_summary(two_seeds).set_index("metric")
    assert summary.loc["fid", "low"] == 0.0 and summary.loc["fid", "high"] > 40  # a t(1) interval would go far below 0
    assert summary.loc["kid", "low"] < 0
    assert clip_to_range("geneval[counting]", -0.1, 1.2) == (0.0, 1.0)
