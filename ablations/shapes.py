"""What every shapes-world study evaluates, tunes and sweeps for controllability (the world's own suites)."""
from __future__ import annotations

from harness.study import Control, Suite, Tuning

# the held-out half of the shapes GenEval prompts, judged by the analytic detector and every shapes reward
SHAPES_SUITE = Suite("shapes", prompts="shapes-test", samples_per_prompt=4, reference="shapes", reference_size=1000)
# 8 or 12 sampler steps: on the validation prompts 8 Euler steps drew as well as 12 (miro.presets.shapes)
SHAPES_TUNING = Tuning(prompts="shapes-validation", objectives=("geneval", "shapes_quality"), trials=12, steps=(8, 12))
SHAPES_CONTROL = Control(prompts="shapes-test")
