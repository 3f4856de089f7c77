"""Evaluate checkpoints: generate a prompt set's images (GenEval layout, per-image seeds, resumable,
shardable), score them with any registered scorers (fingerprints stored), judge them with GenEval, measure
diversity and FID/KID, and write per-image rows and a summary in which every metric says whether the arm
was trained on it. Modes: best-of-N curves and reward-target sweeps. Command line: `python -m harness.evaluation`.

- generate: images into GenEval's folder layout
- scoring: per-image scores via miro.data.annotate; fingerprint checks across evaluations
- roles: training rewards vs held-out metrics
- features, diversity, fidelity: image features, per-prompt diversity, FID/KID (torchmetrics)
- modes: best-of-N curves, reward-target sweeps
- summary: per-image rows and metric summaries with prompt-bootstrap intervals
- run: the whole evaluation of one checkpoint
"""
from harness.evaluation.generate import GenerationOptions, Shard, generate_images
from harness.evaluation.modes import TargetSweep, best_of_n_curves
from harness.evaluation.roles import HELD_OUT, TRAINED, held_out, metric_roles
from harness.evaluation.run import EvaluationOptions, evaluate, evaluate_sweep
from harness.evaluation.scoring import check_comparable, read_scores, score_images

__all__ = [
    "HELD_OUT", "TRAINED", "EvaluationOptions", "GenerationOptions", "Shard", "TargetSweep", "best_of_n_curves",
    "check_comparable", "evaluate", "evaluate_sweep", "generate_images", "held_out", "metric_roles", "read_scores",
    "score_images",
]
