"""The statistics on cases with known answers: coverage of the bootstrap, power and size of the
permutation test, exact McNemar and corrections against hand-computed values, the speed-up on
hand-made curves, the controllability slope on a known line, and best-of-N against brute-force enumeration."""
from __future__ import annotations

from itertools import combinations

import numpy as np
import pytest

from harness.stats import (
    benjamini_hochberg,
    best_of_n,
    bootstrap_difference,
    bootstrap_mean,
    bootstrap_slope,
    bootstrap_speedup,
    convergence_speedup,
    hierarchical_bootstrap_difference,
    holm,
    mcnemar_exact,
    paired,
    prompt_means,
    reach_step,
    seed_t_interval,
    sign_flip_test,
)
from miro.errors import MiroError


# per-prompt means and pairing
def test_images_are_averaged_within_prompts_and_arms_pair_by_prompt():
    means = prompt_means(["a", "b", "a", "b", "c"], [1.0, 0.0, 0.0, 0.0, 1.0])
    assert means == {"a": 0.5, "b": 0.0, "c": 1.0}
    arm, base = paired({"b": 1.0, "a": 2.0}, {"a": 0.5, "b": 0.25})
    assert arm.tolist() == [1.0, 2.0] and base.tolist() == [0.25, 0.5]
    with pytest.raises(MiroError, match="same prompts"):
        paired({"a": 1.0}, {"a": 1.0, "b": 2.0})


# bootstrap
def test_bootstrap_interval_covers_the_true_mean_most_of_the_time():
    rng = np.random.default_rng(1)
    covered = 0
    for sim in range(200):
        per_prompt = prompt_means(np.repeat(np.arange(40), 4), rng.normal(0.3, 1.0, 160))  # 40 prompts x 4 images
        interval = bootstrap_mean(list(per_prompt.values()), n_resamples=400, seed=sim)
        covered += interval.low <= 0.3 <= interval.high
    assert 0.88 <= covered / 200 <= 0.99


def test_bootstrap_is_seeded_and_pairing_cancels_prompt_difficulty():
    rng = np.random.default_rng(0)
    difficulty = rng.normal(0, 5, 50)
    base, arm = difficulty + rng.normal(0, 0.1, 50), difficulty + 0.2 + rng.normal(0, 0.1, 50)
    interval = bootstrap_difference(arm, base, n_resamples=2000, seed=3)
    assert interval == bootstrap_difference(arm, base, n_resamples=2000, seed=3)
    assert 0.15 < interval.low < interval.estimate < interval.high < 0.25  # unpaired, the spread would be ~1.4
    assert interval.estimate == pytest.approx(np.mean(arm - base))


def test_strata_weigh_tasks_equally_and_resample_within_them():
    values = np.array([1.0, 1.0, 1.0, 0.0])
    interval = bootstrap_mean(values, strata=["easy", "easy", "easy", "hard"], n_resamples=500)
    assert interval.estimate == 0.5  # (1 + 0) / 2, not 0.75
    assert interval.low == interval.high == 0.5  # resampling inside a constant task cannot move it
    with pytest.raises(MiroError, match="one label per prompt"):
        bootstrap_mean(values, strata=["a"])


# permutation and McNemar
def test_sign_flip_detects_a_shift_and_keeps_its_size_under_the_null():
    rng = np.random.default_rng(2)
    base = rng.normal(0, 1, 60)
    assert sign_flip_test(base + 0.5 + rng.normal(0, 0.5, 60), base).p_value < 0.001
    rejections = sum(sign_flip_test(rng.normal(0, 1, 60), rng.normal(0, 1, 60), n_resamples=300, seed=k).p_value < 0.05
                     for k in range(150))
    assert rejections / 150 < 0.12


def test_sign_flip_enumerates_small_cases_exactly():
    result = sign_flip_test([1.0, 2.0, 3.0], [0.0, 0.0, 0.0])
    assert result.exact and result.mean_difference == 2.0
    assert result.p_value == pytest.approx(2 / 8)  # only all-plus and all-minus are as extreme
    assert sign_flip_test([1.0, -1.0], [0.0, 0.0]).p_value == 1.0


def test_mcnemar_exact_on_a_known_table():
    # 10 images only the arm gets right, 2 only the baseline: p = 2 * P(X <= 2), X ~ Bin(12, 1/2)
    arm = [True] * 10 + [False] * 2 + [True] * 5 + [False] * 7
    base = [False] * 10 + [True] * 2 + [True] * 5 + [False] * 7
    result = mcnemar_exact(arm, base)
    assert (result.arm_only, result.baseline_only) == (10, 2)
    assert result.p_value == pytest.approx(2 * (1 + 12 + 66) / 4096)
    assert mcnemar_exact([True, False], [True, False]).p_value == 1.0
    assert mcnemar_exact([True] * 3, [False] * 3).p_value == pytest.approx(0.25)


# corrections
def test_holm_and_benjamini_hochberg_by_hand():
    p = [0.01, 0.04, 0.03, 0.005]
    # Holm: sorted 0.005*4, 0.01*3, 0.03*2, 0.04*1 -> 0.02, 0.03, 0.06, max(0.04, 0.06)
    assert holm(p) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    # BH: sorted 0.005*4/1, 0.01*4/2, 0.03*4/3, 0.04*4/4 -> 0.02, 0.02, 0.04, 0.04
    assert benjamini_hochberg(p) == pytest.approx([0.02, 0.04, 0.04, 0.02])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])
    with pytest.raises(MiroError):
        holm([1.5])


# seeds
def test_seed_t_interval_by_hand():
    interval = seed_t_interval([0.1, 0.2, 0.3])
    half = 4.302652729911275 * 0.1 / np.sqrt(3)  # t(0.975, 2) * s / sqrt(3)
    assert interval.estimate == pytest.approx(0.2)
    assert (interval.low, interval.high) == pytest.approx((0.2 - half, 0.2 + half))
    with pytest.raises(MiroError, match="at least 2 seeds"):
        seed_t_interval([0.1])


def test_hierarchical_bootstrap_widens_with_seed_spread():
    rng = np.random.default_rng(4)
    base = rng.normal(0, 1, (3, 80))
    steady = base + 0.3 + rng.normal(0, 0.05, (3, 80))
    shaky = base + np.array([[0.0], [0.3], [0.6]]) + rng.normal(0, 0.05, (3, 80))
    tight = hierarchical_bootstrap_difference(steady, base, n_resamples=2000)
    wide = hierarchical_bootstrap_difference(shaky, base, n_resamples=2000)
    assert tight.estimate == pytest.approx(wide.estimate, abs=0.02)
    assert tight.low < 0.3 < tight.high and (wide.high - wide.low) > 3 * (tight.high - tight.low)
    one_seed = hierarchical_bootstrap_difference(steady[:1], base[:1], n_resamples=2000)
    assert one_seed.low > 0.25


# convergence speed-up
def test_speedup_interpolates_between_checkpoints():
    # the paper's aesthetic curves: baseline 5.19 at 500k; MIRO 5.15 at 25k, 6.00 at 50k -> 19.1x
    base_steps, base_scores = [25_000, 50_000, 100_000, 200_000, 500_000], [4.34, 4.69, 4.87, 4.95, 5.19]
    miro = [5.15, 6.00, 6.19, 6.15, 6.28]
    assert convergence_speedup(base_steps, base_scores, base_steps, miro) == pytest.approx(500 / (25 + 25 * 0.04 / 0.85))
    assert convergence_speedup(base_steps, base_scores, base_steps, base_scores) == pytest.approx(1.0)
    assert convergence_speedup([10, 20], [0.0, 1.0], [10, 20], [1.5, 2.0]) == 2.0  # reached at the first checkpoint
    assert convergence_speedup([10, 20], [0.0, 1.0], [10, 20], [0.2, 0.9]) is None  # not reached
    assert reach_step([10, 20, 30], [3.0, 2.0, 1.0], 1.5, higher_is_better=False) == pytest.approx(25.0)
    with pytest.raises(MiroError, match="strictly increasing"):
        convergence_speedup([20, 10], [0.0, 1.0], [10, 20], [0.0, 1.0])


def test_speedup_bootstrap_reports_not_reached_honestly():
    rng = np.random.default_rng(5)
    steps = [100, 200, 300, 400]
    base = np.array([0.1, 0.2, 0.3, 0.4])[:, None] + rng.normal(0, 0.05, (4, 100))
    fast = np.array([0.3, 0.5, 0.6, 0.6])[:, None] + rng.normal(0, 0.05, (4, 100))
    result = bootstrap_speedup(steps, base, steps, fast, n_resamples=500)
    assert result.reached_fraction == 1.0 and result.low <= result.estimate <= result.high
    assert result.estimate == pytest.approx(400 / 150, rel=0.1)
    borderline = np.array([0.1, 0.2, 0.3, 0.4])[:, None] + rng.normal(0, 0.05, (4, 100))
    edge = bootstrap_speedup(steps, base, steps, borderline, n_resamples=500)
    assert 0.0 < edge.reached_fraction < 1.0 and edge.low is None



# controllability slope
def test_slope_recovers_a_known_line_and_resamples_the_same_prompts_at_every_target():
    rng = np.random.default_rng(2)
    targets = [0.0, 0.25, 0.5, 0.75, 1.0]
    difficulty = rng.normal(0, 0.3, 60)  # large, but shared by a prompt's targets: it cancels in the slope
    values = 0.2 + 0.6 * np.array(targets)[:, None] + difficulty + rng.normal(0, 0.02, (5, 60))
    result = bootstrap_slope(targets, values, n_resamples=500)
    assert result.estimate == pytest.approx(0.6, abs=0.02) and result.low < result.estimate < result.high
    assert result.high - result.low < 0.05
    flat = bootstrap_slope(targets, 0.5 + difficulty + rng.normal(0, 0.02, (5, 60)), n_resamples=500)
    assert flat.low < 0 < flat.high
    with pytest.raises(MiroError, match="two distinct targets"):
        bootstrap_slope([0.5, 0.5], values[:2])


# best-of-N
def brute_force(selection, metric, n_pick):
    values = []
    for subset in combinations(range(len(selection)), n_pick):
        top = max(selection[i] for i in subset)
        winners = [i for i in subset if selection[i] == top]
        values.append(np.mean([metric[i] for i in winners]))  # ties: each tied winner equally likely
    return np.mean(values)


def test_best_of_n_matches_enumeration():
    rng = np.random.default_rng(6)
    selection = [rng.normal(size=7), np.array([1.0, 2.0, 2.0, 0.5, 2.0, 1.0, 0.0])]  # second prompt has ties
    metric = [rng.normal(size=7), rng.normal(size=7)]
    curve = best_of_n(selection, metric)
    assert curve.ns == tuple(range(1, 8))
    for k, n_pick in enumerate(curve.ns):
        expected = [brute_force(s, m, n_pick) for s, m in zip(selection, metric)]
        assert curve.per_prompt[:, k] == pytest.approx(expected)
        assert curve.mean[k] == pytest.approx(np.mean(expected))
    assert curve.mean[0] == pytest.approx(np.mean([m.mean() for m in metric]))  # N = 1 is the plain mean


def test_best_of_n_defaults_and_limits():
    selection = np.random.default_rng(7).normal(size=(3, 200))
    curve = best_of_n(selection)
    assert curve.ns == tuple(range(1, 129))
    assert all(a <= b + 1e-12 for a, b in zip(curve.mean, curve.mean[1:]))  # selecting on itself only helps
    with pytest.raises(MiroError, match="1..200"):
        best_of_n(selection, ns=[256])
