"""The Mask2Former detector: mmdet's post-processing on hand-made logits, and the whole path on a tiny
random Mask2Former saved with save_pretrained and loaded through the real loading code."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from harness.geneval.mask2former import Mask2FormerDetector, instance_detections, mask_boxes
from harness.geneval.metadata import read_class_names
from harness.geneval.rules import GenEvalOptions, keep_detections
from miro.errors import MiroError
from miro.tiny.models import save_tiny_mask2former


def test_mask_boxes_end_one_past_the_last_pixel():
    masks = torch.zeros(2, 8, 10, dtype=torch.bool)
    masks[0, 2:5, 3:7] = True  # rows 2..4, columns 3..6
    assert mask_boxes(masks).tolist() == [[3.0, 2.0, 7.0, 5.0], [0.0, 0.0, 0.0, 0.0]]


def test_instance_scores_are_class_probability_times_mask_confidence():
    class_logits = torch.tensor([[0.0, 8.0, 0.0, 0.0], [0.0, 0.0, 0.0, 8.0]])  # query 1 is "no object"
    mask_logits = torch.full((2, 8, 10), -5.0)
    mask_logits[0, 2:5, 3:7] = 2.0
    found = instance_detections(class_logits, mask_logits, ["a", "b", "c"], max_per_image=3)
    best = max((d for ds in found.values() for d in ds), key=lambda d: d.score)
    p_b = torch.tensor([0.0, 8.0, 0.0, 0.0]).softmax(0)[1].item()
    assert best.label == "b" and best.box == (3.0, 2.0, 7.0, 5.0)
    assert best.score == pytest.approx(p_b * torch.sigmoid(torch.tensor(2.0)).item(), rel=1e-4)
    assert best.mask.dtype == bool and best.mask.sum() == 12
    assert sum(len(ds) for ds in found.values()) == 3  # top 3 (query, class) pairs


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    return save_tiny_mask2former(tmp_path_factory.mktemp("mask2former"))


def test_tiny_mask2former_end_to_end(tiny_checkpoint, geneval_data):
    names = read_class_names(geneval_data / "object_names.txt")
    detector = Mask2FormerDetector.from_pretrained(tiny_checkpoint, names)
    image = np.random.default_rng(0).integers(0, 256, (40, 56, 3), dtype=np.uint8)
    found = detector.detect(image)
    everything = [d for ds in found.values() for d in ds]
    assert len(everything) == 100 and set(found) <= set(names)
    for d in everything:
        assert d.mask.shape == (40, 56) and d.label in found and 0.0 <= d.score <= 1.0
        if d.mask.any():
            ys, xs = np.nonzero(d.mask)
            assert d.box == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
    kept = keep_detections(found, "single_object", GenEvalOptions(threshold=0.0))
    assert kept and all(len(ds) <= 16 for ds in kept.values())
    resized = Mask2FormerDetector.from_pretrained(tiny_checkpoint, names, size={"shortest_edge": 32,
                                                                                 "longest_edge": 64})
    assert all(d.mask.shape == (40, 56) for ds in resized.detect(image).values() for d in ds)


def test_wrong_class_count_or_path_is_refused(tiny_checkpoint, tmp_path):
    with pytest.raises(MiroError, match="80 classes but 2"):
        Mask2FormerDetector.from_pretrained(tiny_checkpoint, ["cat", "dog"])
    with pytest.raises(MiroError, match="save_pretrained"):
        Mask2FormerDetector.from_pretrained(tmp_path / "missing", ["cat"])
