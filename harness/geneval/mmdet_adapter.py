"""For users who have the reference stack (mmdet 2.x, mmcv-full 1.7): its detector behind our interface.

mmdet 2.x returns, per image, `(bbox_results, segm_results)` (or `bbox_results` alone): one array
(k, 5) of [x1, y1, x2, y2, score] per class, and one list of k boolean (H, W) masks per class. mmdet is
imported only when the adapter is built, so nothing else in the harness needs it.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from miro.detection import Detection, Detections, Detector
from miro.errors import MiroError


def detections_from_mmdet(result: Any, class_names: Sequence[str]) -> Detections:
    """Convert one image's mmdet 2.x result into `Detections` (classes with no boxes are omitted)."""
    bbox, segm = result if isinstance(result, tuple) else (result, None)
    if len(bbox) != len(class_names):
        raise MiroError(f"the mmdet result has {len(bbox)} classes but {len(class_names)} class names were "
                        "given; use GenEval's object_names.txt with a COCO (80-class) model")
    detections: Detections = {}
    for index, name in enumerate(class_names):
        rows = np.asarray(bbox[index], dtype=np.float64).reshape(-1, 5)
        masks = segm[index] if segm is not None else [None] * len(rows)
        if len(masks) != len(rows):
            raise MiroError(f'the mmdet result for "{name}" has {len(rows)} boxes but {len(masks)} masks')
        if len(rows):
            detections[name] = [
                Detection(name, (x1, y1, x2, y2), score, None if mask is None else np.asarray(mask, dtype=bool))
                for (x1, y1, x2, y2, score), mask in zip(rows.tolist(), masks)
            ]
    return detections


class MmdetDetector(Detector):
    """An mmdet 2.x detector (e.g. the reference Mask2Former Swin-S config and checkpoint)."""

    def __init__(self, config: str | Path, checkpoint: str | Path, class_names: Sequence[str],
                 device: str = "cuda") -> None:
        try:
            from mmdet.apis import inference_detector, init_detector
        except ImportError:
            raise MiroError("mmdet is not installed; install mmdet 2.x with mmcv-full 1.7, or use "
                            "harness.geneval.mask2former.Mask2FormerDetector (transformers)") from None
        self._infer = inference_detector
        self.model = init_detector(str(config), str(checkpoint), device=device)
        self.class_names = list(class_names)

    def detect(self, image: np.ndarray) -> Detections:
        # mmdet treats an array as BGR (what mmcv.imread returns for the reference's file paths)
        bgr = np.ascontiguousarray(image[..., ::-1])
        return detections_from_mmdet(self._infer(self.model, bgr), self.class_names)
