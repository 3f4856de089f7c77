"""GenEval's verdict with object classes ignored: are colour, count and position right, whatever was drawn?

A model that puts a red blob left of a blue blob for "a red circle left of a blue square" has learnt
the composition but not the shapes; GenEval scores it 0, this scores it 1. Beside GenEval it tells
composition apart from shape drawing (a tiny model learns the first long before the second).

Every kept detection, whatever its class, is a candidate object. The image is correct when some choice
of distinct objects for the include clauses (clause i gets `count_i` of them) passes GenEval's own
`judge`, each clause reading only its chosen objects, and every exclude clause holds on the total
number of objects (counting's "no more than N" counts every object).
"""
from __future__ import annotations

from dataclasses import replace
from itertools import permutations

import numpy as np

from harness.geneval.metadata import PromptSpec
from harness.geneval.rules import judge
from miro.detection import ColorClassifier, Detection, Detections

MAX_CANDIDATES = 6  # the most confident objects tried; a 32-px shapes image rarely holds more


def judge_shape_agnostic(image: np.ndarray, kept: Detections, spec: PromptSpec, colors: ColorClassifier | None,
                         position_threshold: float = 0.1) -> bool:
    objects: list[Detection] = sorted((d for found in kept.values() for d in found), key=lambda d: -d.score)
    include = tuple(replace(c, cls=f"#{i}") for i, c in enumerate(spec.include))
    exclude = tuple(replace(c, cls="#all") for c in spec.exclude)
    pseudo = replace(spec, include=include, exclude=exclude)
    counts = [c.count for c in include]
    for chosen in permutations(objects[:MAX_CANDIDATES], sum(counts)):
        groups: Detections = {"#all": objects}
        start = 0
        for clause, n in zip(include, counts, strict=True):
            groups[clause.cls] = list(chosen[start:start + n])
            start += n
        if judge(image, groups, pseudo, colors, position_threshold).correct:
            return True
    return False
