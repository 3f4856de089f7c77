"""Registry entries of the shapes world's analytic rewards (miro/rewards/analytic.py), kept apart so
that listing scorers never imports numpy-heavy code."""
from miro.rewards.registry import register

register("shapes_alignment", "miro.rewards.analytic:AlignmentScorer")
register("shapes_quality", "miro.rewards.analytic:QualityScorer")
register("shapes_size", "miro.rewards.analytic:SizeScorer")
register("shapes_cleanliness", "miro.rewards.analytic:CleanlinessScorer")
