"""The open_clip colour classifier end to end on a tiny random model registered with open_clip and
loaded from a checkpoint file through open_clip's own loading code."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from harness.geneval.color import TEMPLATES, ClipColorClassifier
from harness.geneval.metadata import COLORS
from miro.detection import Detection

ARCH = "miro-test-tiny-clip"
TINY = {"embed_dim": 32,
        "vision_cfg": {"image_size": 224, "layers": 2, "width": 64, "patch_size": 32},
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2}}


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    import open_clip

    folder = tmp_path_factory.mktemp("clip")
    (folder / f"{ARCH}.json").write_text(json.dumps(TINY))
    open_clip.add_model_config(folder / f"{ARCH}.json")
    torch.manual_seed(0)
    model = open_clip.create_model(ARCH)
    torch.save(model.state_dict(), folder / "weights.pt")
    loaded = ClipColorClassifier.from_open_clip(ARCH, pretrained=str(folder / "weights.pt"))
    assert torch.equal(loaded.model.text_projection, model.text_projection)  # the file's weights, not new ones
    return loaded


def scene() -> tuple[np.ndarray, Detection]:
    image = np.zeros((48, 64, 3), dtype=np.uint8)
    image[:, :, 2] = 200  # blue everywhere
    image[10:30, 20:40] = (220, 20, 20)  # a red square
    mask = np.zeros((48, 64), dtype=bool)
    mask[12:28, 22:38] = True
    return image, Detection("apple", (18.4, 8.6, 42.0, 32.0), 0.9, mask)


def test_the_object_is_pasted_on_grey_and_cropped_to_its_box():
    image, detection = scene()
    crop = np.asarray(ClipColorClassifier.isolate(image, detection))
    assert crop.shape == (23, 24, 3)  # the box rounds to (18, 9, 42, 32)
    assert (crop[0, 0] == 153).all()  # #999 outside the mask, not the blue background
    assert (crop[12 - 9, 22 - 18] == (220, 20, 20)).all()
    no_mask = Detection("apple", detection.box, 0.9)
    assert (np.asarray(ClipColorClassifier.isolate(image, no_mask))[0, 0] == (0, 0, 200)).all()


def test_text_classifier_averages_normalised_templates(classifier):
    weights = classifier.text_classifier("apple", list(COLORS))
    assert weights.shape == (32, 10)
    assert torch.allclose(weights.norm(dim=0), torch.ones(10), atol=1e-5)
    with torch.no_grad():
        texts = [t.format(c="pink", object="apple") for t in TEMPLATES]
        pink = F.normalize(F.normalize(classifier.model.encode_text(classifier.tokenizer(texts)), dim=-1).mean(0), dim=0)
    assert torch.allclose(weights[:, COLORS.index("pink")], pink, atol=1e-5)
    assert classifier.text_classifier("apple", list(COLORS)) is weights  # cached


def test_classify_is_the_argmax_of_cosine(classifier):
    image, detection = scene()
    color = classifier.classify(image, detection, list(COLORS))
    with torch.no_grad():
        pixels = classifier.preprocess(classifier.isolate(image, detection)).unsqueeze(0)
        logits = F.normalize(classifier.model.encode_image(pixels), dim=-1) @ classifier.text_classifier("apple", list(COLORS))
    assert color == COLORS[int(logits.argmax())]
    assert classifier.classify(image, detection, ["green", "white"]) in ("green", "white")
