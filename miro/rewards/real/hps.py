"""HPSv2 / HPSv2.1: cosine of open_clip ViT-H-14 image and text features fine-tuned on human preferences.

Runs hpsv2's own vendored open_clip (model, tokenizer and validation transform), so the numbers are
those of `hpsv2.score`. Unlike `hpsv2.score`, it never downloads the laion base weights, reads the
checkpoint once (not on every call) and scores a batch in one forward pass.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from PIL import Image

from miro.errors import unknown_name_error
from miro.rewards.base import Scorer, ScorerInfo
from miro.rewards.real.details import scorer_details
from miro.rewards.real.hpsv2_compat import hpsv2_open_clip
from miro.rewards.real.images import to_pil_images
from miro.rewards.real.open_clip_arch import open_clip_arch
from miro.rewards.real.runtime import Runtime, make_runtime
from miro.rewards.real.sources import HubFile, resolve
from miro.rewards.real.weights import load_state_dict, load_strict, sha256_file

# hpsv2.score defaults to v2.0 and hpsv2.evaluate to v2.1; MIRO's training reward uses v2.1.
CHECKPOINTS = {
    "v2.0": HubFile("xswu/HPSv2", "HPS_v2_compressed.pt"),
    "v2.1": HubFile("xswu/HPSv2", "HPS_v2.1_compressed.pt"),
}
PREPROCESSING = {
    True: "hpsv2 val transform (light_augmentation=True, as hpsv2.score): RGB, ToTensor, resize longest side "
    "to 224 bicubic on the tensor, zero-pad centred, OpenAI mean/std",
    False: "hpsv2 val transform (light_augmentation=False, as MIRO's released reward code): RGB, ToTensor, "
    "resize shortest side to 224 bicubic on the tensor, centre crop, OpenAI mean/std",
}


class HPSv2Scorer(Scorer):
    """score = cos(image features, text features); about 0.2 to 0.35 on real images, no logit scale."""

    def __init__(
        self,
        model: torch.nn.Module,
        preprocess: Callable[[Image.Image], torch.Tensor],
        tokenize: Callable[[list[str]], torch.Tensor],
        runtime: Runtime,
        info: ScorerInfo,
    ) -> None:
        self._model = model
        self._preprocess = preprocess
        self._tokenize = tokenize
        self._runtime = runtime
        self.info = info

    @torch.inference_mode()
    def score(self, images: torch.Tensor, prompts: Sequence[str]) -> torch.Tensor:
        pixels = torch.stack([self._preprocess(image) for image in to_pil_images(images, prompts)])  # (B, 3, 224, 224)
        tokens = self._tokenize(list(prompts))  # (B, 77)
        with self._runtime.autocast():
            out = self._model(pixels.to(self._runtime.device), tokens.to(self._runtime.device))
        # open_clip returns L2-normalised features, so the row-wise dot product is the cosine.
        return (out["image_features"] * out["text_features"]).sum(-1).float().cpu()


def build(
    checkpoint: str | Path | None = None,
    version: str = "v2.1",
    model_name: str = "ViT-H-14",
    light_augmentation: bool = True,
    device: str = "cpu",
    dtype: str = "float32",
    allow_download: bool = False,
) -> HPSv2Scorer:
    """Load HPSv2 (`version` "v2.0" or "v2.1") from `checkpoint`, an HPS_v2*_compressed.pt file.

    `model_name` is the hpsv2 open_clip architecture (ViT-H-14 for the released checkpoints), or an open_clip
    model config .json file, registered under its stem (another architecture, or a tiny test one). `light_augmentation` picks hpsv2's validation transform, see PREPROCESSING; both agree
    on square images.
    """
    if version not in CHECKPOINTS:
        raise unknown_name_error("HPS version", version, CHECKPOINTS)
    runtime = make_runtime(device, dtype)
    path = resolve(checkpoint, CHECKPOINTS[version], "checkpoint", allow_download)
    open_clip = hpsv2_open_clip()
    model_name = open_clip_arch(open_clip, model_name)
    model, _, preprocess = open_clip.create_model_and_transforms(
        model_name, None, precision="amp", device="cpu", light_augmentation=light_augmentation, output_dict=True
    )
    load_strict(model, load_state_dict(path, nested_key="state_dict"), path)
    info = ScorerInfo(
        name="hpsv2",
        version=f"HPS {version}",
        score_range=(-1.0, 1.0),
        details=scorer_details(
            runtime,
            {"checkpoint": sha256_file(path)},
            PREPROCESSING[light_augmentation],
            ("hpsv2", "open_clip_torch"),
            model_name=model_name,
            formula="cos(image_features, text_features)",
        ),
    )
    return HPSv2Scorer(model.to(runtime.device).eval(), preprocess, open_clip.get_tokenizer(model_name), runtime, info)
