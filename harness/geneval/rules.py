"""GenEval's verdict for one image, rule for rule as the reference evaluator (djghosh13/geneval at
af4902f, `evaluation/evaluate_images.py`) computes it; see shared/reference/geneval.md.

Every detector (Mask2Former, the mmdet adapter, the shapes world's analytic detector) feeds these same
rules, so a GenEval number never depends on which code path produced the detections.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from harness.geneval.metadata import COLORS, PromptSpec
from miro.detection import Box, ColorClassifier, Detection, Detections, relative_position
from miro.errors import MiroError


@dataclass(frozen=True)
class GenEvalOptions:
    """The reference tool's `--options`, with its defaults."""

    threshold: float = 0.3  # keep detections with score > threshold ...
    counting_threshold: float = 0.9  # ... or > this when the tag is "counting"
    max_objects: int = 16  # per class, after thresholding
    max_overlap: float = 1.0  # greedy NMS keeps IoU < max_overlap; 1.0 turns NMS off
    position_threshold: float = 0.1  # c in relative_position

    def __post_init__(self) -> None:
        for name in ("threshold", "counting_threshold"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise MiroError(f"GenEvalOptions.{name} must be in [0, 1), got {getattr(self, name)}")
        if self.max_objects < 1:
            raise MiroError(f"GenEvalOptions.max_objects must be >= 1, got {self.max_objects}")
        if not 0.0 < self.max_overlap <= 1.0:
            raise MiroError(f"GenEvalOptions.max_overlap must be in (0, 1] (1 = no NMS), got {self.max_overlap}")
        if self.position_threshold < 0.0:
            raise MiroError(f"GenEvalOptions.position_threshold must be >= 0, got {self.position_threshold}")


DEFAULT_OPTIONS = GenEvalOptions()


@dataclass(frozen=True)
class Verdict:
    """Whether the image satisfies its prompt, and the reference tool's reasons when it does not."""

    correct: bool
    reason: str


def iou(box_a: Box, box_b: Box) -> float:
    """Intersection over union with the +1 pixel convention (a box x1..x2 covers x2 - x1 + 1 pixels)."""
    def area(box: Box) -> float:
        return max(box[2] - box[0] + 1, 0) * max(box[3] - box[1] + 1, 0)

    inter = area((max(box_a[0], box_b[0]), max(box_a[1], box_b[1]),
                  min(box_a[2], box_b[2]), min(box_a[3], box_b[3])))
    union = area(box_a) + area(box_b) - inter
    return inter / union if union else 0.0


def keep_detections(detections: Detections, tag: str, options: GenEvalOptions) -> Detections:
    """Per class: sort by score, keep score > threshold, cap at max_objects, then greedy NMS.

    Classes left with nothing are dropped, as the reference does, so `len(kept.get(cls, []))` counts.
    """
    threshold = options.counting_threshold if tag == "counting" else options.threshold
    kept: Detections = {}
    for cls, found in detections.items():
        ordered = sorted(found, key=lambda d: d.score, reverse=True)
        ordered = [d for d in ordered if d.score > threshold][: options.max_objects]
        chosen: list[Detection] = []
        while ordered:
            best = ordered.pop(0)
            chosen.append(best)
            if options.max_overlap < 1.0:
                ordered = [d for d in ordered if iou(best.box, d.box) < options.max_overlap]
        if chosen:
            kept[cls] = chosen
    return kept


def judge(
    image: np.ndarray,
    kept: Detections,
    spec: PromptSpec,
    colors: ColorClassifier | None,
    position_threshold: float = 0.1,
) -> Verdict:
    """Apply the include clauses (ANDed, in order) and exclude clauses (ORed) to filtered detections.

    Colour and position are judged only on the `count` most confident objects of a clause; a position
    clause whose anchor clause failed is wrong. Reasons use the reference tool's wording.
    """
    correct = True
    reasons: list[str] = []
    matched_groups: list[list[Detection] | None] = []
    for clause in spec.include:
        found = kept.get(clause.cls, [])[: clause.count]
        matched = len(found) >= clause.count
        if not matched:
            reasons.append(f"expected {clause.cls}>={clause.count}, found {len(found)}")
        if matched and clause.color is not None:
            if colors is None:
                raise MiroError(f'prompt "{spec.prompt}" has a colour clause: pass a ColorClassifier')
            named = [colors.classify(image, obj, list(COLORS)) for obj in found]
            hits = named.count(clause.color)
            if hits < clause.count:
                matched = False
                reasons.append(
                    f"expected {clause.color} {clause.cls}>={clause.count}, found {hits} {clause.color}; and "
                    + ", ".join(f"{named.count(c)} {c}" for c in COLORS if c in named)
                )
        if matched and clause.position is not None:
            relation, target = clause.position
            anchors = matched_groups[target]
            if anchors is None:
                matched = False
                reasons.append(f"no target for {clause.cls} to be {relation}")
            else:
                failure = _position_failure(found, anchors, relation, clause.cls, position_threshold)
                if failure:
                    matched = False
                    reasons.append(failure)
        correct = correct and matched
        matched_groups.append(found if matched else None)
    for clause in spec.exclude:
        n = len(kept.get(clause.cls, []))
        if n >= clause.count:
            correct = False
            reasons.append(f"expected {clause.cls}<{clause.count}, found {n}")
    return Verdict(correct, "\n".join(reasons))


def _position_failure(
    found: list[Detection], anchors: list[Detection], relation: str, cls: str, c: float
) -> str:
    """The reason for the first (object, anchor) pair that breaks `relation`, or '' when all hold."""
    for obj in found:
        for anchor in anchors:
            actual = relative_position(obj.box, anchor.box, c)
            if relation not in actual:
                return f"expected {cls} {relation} target, found {' and '.join(sorted(actual))} target"
    return ""
