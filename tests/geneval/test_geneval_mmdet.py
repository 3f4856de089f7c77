"""The mmdet 2.x adapter on a fake result in mmdet's format, and with a stand-in `mmdet.apis`."""
from __future__ import annotations

import sys
import types

import numpy as np
import pytest

from harness.geneval.mmdet_adapter import MmdetDetector, detections_from_mmdet
from miro.errors import MiroError

NAMES = ["person", "cat", "dog"]


def fake_result(with_masks: bool = True):
    bbox = [np.zeros((0, 5), dtype=np.float32),
            np.array([[1, 2, 11, 12, 0.9], [20, 20, 30, 30, 0.4]], dtype=np.float32),
            np.array([[5, 5, 9, 9, 0.7]], dtype=np.float32)]
    if not with_masks:
        return bbox
    masks = [[], [np.ones((32, 32), dtype=bool), np.zeros((32, 32), dtype=bool)], [np.eye(32, dtype=np.uint8)]]
    return bbox, masks


def test_result_with_masks():
    found = detections_from_mmdet(fake_result(), NAMES)
    assert list(found) == ["cat", "dog"]  # empty classes are left out
    cat = found["cat"][0]
    assert cat.label == "cat" and cat.box == (1.0, 2.0, 11.0, 12.0) and cat.score == pytest.approx(0.9)
    assert cat.mask.dtype == bool and cat.mask.all()
    assert found["dog"][0].mask.dtype == bool and found["dog"][0].mask.sum() == 32


def test_result_without_masks_and_bad_results():
    found = detections_from_mmdet(fake_result(with_masks=False), NAMES)
    assert [d.mask for d in found["cat"]] == [None, None]
    with pytest.raises(MiroError, match="3 classes but 2"):
        detections_from_mmdet(fake_result(), NAMES[:2])
    bbox, masks = fake_result()
    with pytest.raises(MiroError, match='"cat" has 2 boxes but 1 masks'):
        detections_from_mmdet((bbox, [[], masks[1][:1], masks[2]]), NAMES)


def test_missing_mmdet_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "mmdet", None)
    monkeypatch.setitem(sys.modules, "mmdet.apis", None)
    with pytest.raises(MiroError, match="mmdet is not installed"):
        MmdetDetector("config.py", "model.pth", NAMES)


def test_the_detector_passes_bgr_to_mmdet(monkeypatch):
    seen = {}

    def init_detector(config, checkpoint, device):
        seen["init"] = (config, checkpoint, device)
        return "model"

    def inference_detector(model, image):
        seen["image"] = image
        return fake_result()

    apis = types.ModuleType("mmdet.apis")
    apis.init_detector, apis.inference_detector = init_detector, inference_detector
    monkeypatch.setitem(sys.modules, "mmdet", types.ModuleType("mmdet"))
    monkeypatch.setitem(sys.modules, "mmdet.apis", apis)
    detector = MmdetDetector("config.py", "model.pth", NAMES, device="cpu")
    image = np.zeros((4, 4, 3), dtype=np.uint8)
    image[..., 0] = 255  # pure red
    found = detector.detect(image)
    assert seen["init"] == ("config.py", "model.pth", "cpu")
    assert (seen["image"][..., 2] == 255).all() and (seen["image"][..., 0] == 0).all()
    assert list(found) == ["cat", "dog"]
