"""GenEval's detector without mmdet: Mask2Former (COCO instance segmentation) through transformers.

The reference runs Mask2Former Swin-S under mmdet 2.x, which does not install on current Python/CUDA.
Here the network comes from `Mask2FormerForUniversalSegmentation` (for example a local copy of
facebook/mask2former-swin-small-coco-instance) and the instance post-processing is mmdet 2.x's
`Mask2FormerHead` recipe, so boxes, masks and scores have the same meaning: top-100 (query, class) pairs
by class probability, mask logits upsampled to the image, score = class probability x mean mask
probability inside the binary mask, box = the mask's extent with x2/y2 one past the last pixel.
Label id i is GenEval's class i (object_names.txt is in COCO's 80-class order).
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

from miro.detection import Detection, Detections, Detector
from miro.errors import MiroError
from miro.warm import kept

if TYPE_CHECKING:
    from transformers import Mask2FormerForUniversalSegmentation, Mask2FormerImageProcessor


def mask_boxes(masks: torch.Tensor) -> torch.Tensor:
    """(N, H, W) bool -> (N, 4) boxes [x1, y1, x2 + 1, y2 + 1]; all zeros for an empty mask (mmdet mask2bbox)."""
    def extent(hit: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # (N, L) bool -> first, last + 1
        return hit.int().argmax(dim=1), hit.shape[1] - hit.flip(1).int().argmax(dim=1)

    cols, rows = masks.any(dim=1), masks.any(dim=2)  # (N, W), (N, H)
    (x1, x2), (y1, y2) = extent(cols), extent(rows)
    boxes = torch.stack([x1, y1, x2, y2], dim=1).float()
    boxes[~cols.any(dim=1)] = 0.0
    return boxes


def instance_detections(
    class_logits: torch.Tensor, mask_logits: torch.Tensor, class_names: Sequence[str], max_per_image: int = 100
) -> Detections:
    """mmdet 2.x Mask2Former instance post-processing for one image.

    class_logits (Q, K + 1) with the last column "no object"; mask_logits (Q, H, W) already at image size.
    """
    scores = class_logits.softmax(dim=-1)[:, :-1]  # (Q, K)
    n_classes = scores.shape[1]
    top_scores, top = scores.flatten().topk(min(max_per_image, scores.numel()), sorted=False)
    labels, queries = top % n_classes, top // n_classes
    masks = mask_logits[queries]  # (N, H, W)
    binary = masks > 0
    mask_scores = (masks.sigmoid() * binary).flatten(1).sum(1) / (binary.flatten(1).sum(1) + 1e-6)
    det_scores = top_scores * mask_scores
    boxes = mask_boxes(binary)
    detections: Detections = {}
    for i in range(len(labels)):
        name = class_names[int(labels[i])]
        x1, y1, x2, y2 = boxes[i].tolist()
        detections.setdefault(name, []).append(Detection(name, (x1, y1, x2, y2), float(det_scores[i]), binary[i].numpy()))
    return detections


class Mask2FormerDetector(Detector):
    """Mask2Former from transformers, returning mmdet-style instance detections."""

    def __init__(self, model: Mask2FormerForUniversalSegmentation, processor: Mask2FormerImageProcessor,
                 class_names: Sequence[str], device: str = "cpu",
                 size: dict[str, int] | None = None, max_per_image: int = 100) -> None:
        if model.config.num_labels != len(class_names):
            raise MiroError(f"the Mask2Former checkpoint has {model.config.num_labels} classes but "
                            f"{len(class_names)} class names were given; use a COCO instance checkpoint (80)")
        self.model = model.to(device).eval()  # type: ignore[arg-type]  # transformers wraps .to
        self.processor = processor
        self.class_names = list(class_names)
        self.device = device
        self.size = size
        self.max_per_image = max_per_image

    @classmethod
    @kept  # a warm worker keeps the detector for the next unit
    def from_pretrained(cls, path: str | Path, class_names: Sequence[str], device: str = "cpu",
                        size: dict[str, int] | None = None) -> Mask2FormerDetector:
        """Load model and image processor saved with `save_pretrained` at `path` (a folder or hub id).

        `size` overrides the processor's resize, e.g. {"shortest_edge": 800, "longest_edge": 1333} for the
        mmdet test pipeline's scale.
        """
        from transformers import Mask2FormerForUniversalSegmentation, Mask2FormerImageProcessor

        try:
            model = Mask2FormerForUniversalSegmentation.from_pretrained(path)
            processor = Mask2FormerImageProcessor.from_pretrained(path)
        except (OSError, ValueError) as err:  # missing files; a path that is not a hub id either
            raise MiroError(f"cannot load Mask2Former from {path} ({type(err).__name__}); point it at a folder written by "
                            "save_pretrained (config.json, weights, preprocessor_config.json)") from None
        return cls(model, processor, class_names, device, size)

    @torch.no_grad()
    def detect(self, image: np.ndarray) -> Detections:
        height, width = image.shape[:2]
        extra = {"size": self.size} if self.size else {}
        inputs = self.processor(images=image, return_tensors="pt", **extra)
        pixel_values, pixel_mask = inputs["pixel_values"].to(self.device), inputs["pixel_mask"].to(self.device)
        out = self.model(pixel_values=pixel_values, pixel_mask=pixel_mask)
        valid_h, valid_w = int(pixel_mask[0].any(dim=1).sum()), int(pixel_mask[0].any(dim=0).sum())
        masks = F.interpolate(out.masks_queries_logits, size=pixel_values.shape[-2:], mode="bilinear",
                              align_corners=False)[:, :, :valid_h, :valid_w]  # drop padding
        masks = F.interpolate(masks, size=(height, width), mode="bilinear", align_corners=False)[0]
        return instance_detections(out.class_queries_logits[0].float().cpu(), masks.float().cpu(),
                                   self.class_names, self.max_per_image)
