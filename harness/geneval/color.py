"""GenEval's colour check: zero-shot open_clip (ViT-L-14, OpenAI weights) on the object alone.

The object is pasted through its mask onto flat #999 grey (so background colour does not vote), cropped
to its box, preprocessed, and compared with one text embedding per colour: the normalised mean of the
normalised embeddings of three templates (clip_benchmark's zero_shot_classifier, as the reference uses).
The colour is the argmax of 100 x cosine similarity.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from miro.detection import ColorClassifier, Detection
from miro.warm import kept

if TYPE_CHECKING:
    from open_clip import CLIP, CustomTextCLIP

TEMPLATES = ("a photo of a {c} {object}", "a photo of a {c}-colored {object}", "a photo of a {c} object")
BACKGROUND = "#999"


class ClipColorClassifier(ColorClassifier):
    """Names an object's colour with an open_clip model; text classifiers are cached per (class, colours)."""

    def __init__(self, model: CLIP | CustomTextCLIP, preprocess: Callable[[Image.Image], torch.Tensor],
                 tokenizer: Callable[[list[str]], torch.Tensor], device: str = "cpu") -> None:
        self.model = model.to(device).eval()
        self.preprocess = preprocess
        self.tokenizer = tokenizer
        self.device = device
        self._text: dict[tuple[str, tuple[str, ...]], torch.Tensor] = {}

    @classmethod
    @kept  # a warm worker keeps the classifier for the next unit
    def from_open_clip(cls, arch: str = "ViT-L-14", pretrained: str = "openai", device: str = "cpu") -> ClipColorClassifier:
        """Build from an open_clip architecture name and a pretrained tag or a local checkpoint path.

        The reference is ("ViT-L-14", "openai"); "openai" downloads unless open_clip's cache has it.
        """
        import open_clip

        model, _, preprocess = open_clip.create_model_and_transforms(arch, pretrained=pretrained, device=device)
        return cls(model, preprocess, open_clip.get_tokenizer(arch), device)

    @torch.no_grad()
    def text_classifier(self, object_name: str, colors: Sequence[str]) -> torch.Tensor:
        """(D, C): per colour, the templates' normalised embeddings averaged and normalised again."""
        key = (object_name, tuple(colors))
        if key not in self._text:
            columns = []
            for color in colors:
                texts = [t.format(c=color, object=object_name) for t in TEMPLATES]
                embedded = F.normalize(self.model.encode_text(self.tokenizer(texts).to(self.device)), dim=-1)
                columns.append(F.normalize(embedded.mean(dim=0), dim=-1))
            self._text[key] = torch.stack(columns, dim=1)
        return self._text[key]

    @staticmethod
    def isolate(image: np.ndarray, detection: Detection) -> Image.Image:
        """The object alone: pasted through its mask onto grey, then cropped to its box (PIL rounds it)."""
        picture = Image.fromarray(image).convert("RGB")
        if detection.mask is not None:
            blank = Image.new("RGB", picture.size, color=BACKGROUND)
            picture = Image.composite(picture, blank, Image.fromarray(np.asarray(detection.mask, dtype=bool)))
        return picture.crop(detection.box)

    @torch.no_grad()
    def classify(self, image: np.ndarray, detection: Detection, colors: list[str]) -> str:
        pixels = self.preprocess(self.isolate(image, detection)).unsqueeze(0).to(self.device)
        features = F.normalize(self.model.encode_image(pixels), dim=-1)  # (1, D)
        logits = 100.0 * features @ self.text_classifier(detection.label, colors)  # (1, C)
        return colors[int(logits.argmax())]
