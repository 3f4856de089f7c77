"""Object detections in the form GenEval's rules consume, shared by every detector.

The shapes world's analytic detector, the Mask2Former detector and an mmdet adapter all return
`Detections`; GenEval's rules (harness/) and the alignment reward (miro/rewards/) read them.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Detection:
    """One detected object: box as (x1, y1, x2, y2) in pixels, confidence, boolean mask (H, W)."""

    label: str
    box: tuple[float, float, float, float]
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
