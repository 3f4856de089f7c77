"""Honest statistics for arm-vs-baseline comparisons: prompts are the unit, arms are paired by prompt,
every random draw is seeded.

- resample: per-prompt means, pairing, the `Interval` type
- bootstrap: intervals for means and paired differences (optionally stratified, e.g. by GenEval task)
- significance: sign-flip permutation test, exact McNemar
- corrections: Holm, Benjamini-Hochberg
- seeds: combining training seeds (t-interval over seeds; hierarchical bootstrap seeds -> prompts)
- speedup: the paper's convergence speed-up with a bootstrap interval
- slope: controllability as the slope of measured score against requested target, with a bootstrap interval
- best_of_n: exact best-of-N curves from n >= N samples per prompt
"""
from harness.stats.best_of_n import BestOfNCurve, best_of_n
from harness.stats.bootstrap import bootstrap_difference, bootstrap_mean
from harness.stats.corrections import benjamini_hochberg, holm
from harness.stats.resample import Interval, paired, prompt_means
from harness.stats.seeds import hierarchical_bootstrap_difference, seed_t_interval
from harness.stats.significance import McNemarResult, PermutationResult, mcnemar_exact, sign_flip_test
from harness.stats.slope import bootstrap_slope
from harness.stats.speedup import SpeedupInterval, bootstrap_speedup, convergence_speedup, reach_step

__all__ = [
    "BestOfNCurve", "Interval", "McNemarResult", "PermutationResult", "SpeedupInterval",
    "benjamini_hochberg", "best_of_n", "bootstrap_difference", "bootstrap_mean", "bootstrap_slope", "bootstrap_speedup",
    "convergence_speedup", "hierarchical_bootstrap_difference", "holm", "mcnemar_exact", "paired",
    "prompt_means", "reach_step", "seed_t_interval", "sign_flip_test",
]
