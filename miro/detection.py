"""Object detections in the form GenEval's rules consume, shared by every detector, and GenEval's geometry.

The shapes world's analytic detector, the Mask2Former detector and an mmdet adapter all return
`Detections`; GenEval's rules (harness/) and the alignment reward (miro/rewards/) read them.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

Box = tuple[float, float, float, float]  # x1, y1, x2, y2 in pixels


@dataclass(frozen=True)
class Detection:
    """One detected object: box as (x1, y1, x2, y2) in pixels, confidence, boolean mask (H, W)."""

    label: str
    box: Box
    score: float
    mask: np.ndarray | None = None


# class name -> detections of that class (any order; the rules sort by score)
Detections = dict[str, list[Detection]]


class Detector(ABC):
    """Finds objects in one RGB image (H, W, 3) uint8."""

    @abstractmethod
    def detect(self, image: np.ndarray) -> Detections: ...


class ColorClassifier(ABC):
    """Names the colour of one detected object, choosing among `colors`."""

    @abstractmethod
    def classify(self, image: np.ndarray, detection: Detection, colors: list[str]) -> str: ...


def relative_position(box_a: Box, box_b: Box, c: float = 0.1) -> set[str]:
    """Where A lies relative to B ("left of", "right of", "above", "below"; several can hold).

    The centre offset shrinks per axis by c times the summed box sizes on that axis (dim = (w, h), as the
    reference's `np.abs(np.diff(boxes, axis=-2))` gives), then is read in units of the raw offset's length.
    Image y grows downward, so "above" is dy < -0.5.
    """
    boxes = np.asarray([box_a, box_b], dtype=np.float64).reshape(2, 2, 2)  # (object, corner, xy)
    center_a, center_b = boxes.mean(axis=1)
    dim_a, dim_b = np.abs(boxes[:, 1] - boxes[:, 0])
    offset = center_a - center_b
    revised = np.maximum(np.abs(offset) - c * (dim_a + dim_b), 0) * np.sign(offset)
    if np.all(np.abs(revised) < 1e-3):
        return set()
    dx, dy = revised / np.linalg.norm(offset)
    relations = set()
    if dx < -0.5:
        relations.add("left of")
    if dx > 0.5:
        relations.add("right of")
    if dy < -0.5:
        relations.add("above")
    if dy > 0.5:
        relations.add("below")
    return relations
