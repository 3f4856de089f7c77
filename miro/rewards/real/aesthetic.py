"""LAION aesthetic predictor v2 ("improved aesthetic predictor"): a linear MLP on CLIP ViT-L/14 image embeddings.

score = mlp(e / |e|), e the OpenAI CLIP ViT-L/14 (QuickGELU) image embedding; roughly 1 to 10.
The reference code runs OpenAI's `clip` package; open_clip's ViT-L-14-quickgelu is the same network
with the same transform (resize shortest side to 224 bicubic, centre crop, OpenAI mean/std), and
loads the OpenAI weights from a safetensors file, so the CLIP tower runs through open_clip.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch import nn

from miro.rewards.base import Scorer, ScorerInfo
from miro.rewards.real.details import scorer_details
from miro.rewards.real.images import to_pil_images
from miro.rewards.real.runtime import Runtime, make_runtime
from miro.rewards.real.sources import HubFile, UrlFile, resolve
from miro.rewards.real.weights import load_state_dict, load_strict, sha256_file

HEAD = UrlFile(
    "https://github.com/christophschuhmann/improved-aesthetic-predictor/raw/main/sac%2Blogos%2Bava1-l14-linearMSE.pth"
)
CLIP = HubFile("timm/vit_large_patch14_clip_224.openai", "open_clip_model.safetensors")
PREPROCESSING = (
    "open_clip val transform: resize shortest side to 224 bicubic (PIL), centre crop 224, RGB, ToTensor, "
    "OpenAI mean/std; image embedding L2-normalised before the head"
)


class AestheticHead(nn.Module):
    """The reference MLP: 768 -> 1024 -> 128 -> 64 -> 16 -> 1, linear (no activations), dropout in training only.

    The layer indices (0, 2, 4, 6, 7) are the keys of sac+logos+ava1-l14-linearMSE.pth.
    """

    def __init__(self, input_size: int = 768) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(input_size, 1024),
            nn.Dropout(0.2),
            nn.Linear(1024, 128),
            nn.Dropout(0.2),
            nn.Linear(128, 64),
            nn.Dropout(0.1),
            nn.Linear(64, 16),
            nn.Linear(16, 1),
        )

    def forward(self, embedding: torch.Tensor) -> torch.Tensor:
        return self.layers(embedding)


class AestheticScorer(Scorer):
    """Prompt-free aesthetic quality score."""

    def __init__(
        self,
        clip: Any,  # an open_clip CLIP; typed Any because nn.Module attributes type-check as Tensor | Module
        preprocess: Callable[[Image.Image], torch.Tensor],
        head: AestheticHead,
        runtime: Runtime,
        info: ScorerInfo,
    ) -> None:
        self._clip = clip
        self._preprocess = preprocess
        self._head = head
        self._runtime = runtime
        self.info = info

    @torch.inference_mode()
    def score(self, images: torch.Tensor, prompts: Sequence[str]) -> torch.Tensor:
        pixels = torch.stack([self._preprocess(image) for image in to_pil_images(images, prompts)])  # (B, 3, 224, 224)
        with self._runtime.autocast():
            embedding = self._clip.encode_image(pixels.to(self._runtime.device)).float()  # (B, 768)
        embedding = torch.nn.functional.normalize(embedding, dim=-1)
        return self._head(embedding).squeeze(-1).cpu()  # the head runs in float32, as in the reference


def build(
    head: str | Path | None = None,
    clip_weights: str | Path | None = None,
    clip_model: str | Path = "ViT-L-14-quickgelu",
    device: str = "cpu",
    dtype: str = "float32",
    allow_download: bool = False,
) -> AestheticScorer:
    """Load the head (`head`, sac+logos+ava1-l14-linearMSE.pth) and the CLIP tower (`clip_weights`).

    `clip_weights` is an open_clip state dict of OpenAI ViT-L/14 (.safetensors, or a weights-only .pt/.bin);
    `clip_model` is its open_clip architecture, or an open_clip model config .json (another or a tiny tower).
    """
    import open_clip

    from miro.rewards.real.open_clip_arch import open_clip_arch

    clip_model = open_clip_arch(open_clip, clip_model)
    runtime = make_runtime(device, dtype)
    head_path = resolve(head, HEAD, "head", allow_download)
    clip_path = resolve(clip_weights, CLIP, "clip_weights", allow_download)
    clip, _, preprocess = open_clip.create_model_and_transforms(clip_model, pretrained=None)  # warns "randomly"
    load_strict(clip, load_state_dict(clip_path), clip_path)  # ...and here the weights arrive
    mlp = AestheticHead(clip.visual.output_dim)
    load_strict(mlp, load_state_dict(head_path), head_path)
    info = ScorerInfo(
        name="aesthetic",
        version="improved-aesthetic-predictor sac+logos+ava1-l14-linearMSE",
        details=scorer_details(
            runtime,
            {"head": sha256_file(head_path), "clip_weights": sha256_file(clip_path)},
            PREPROCESSING,
            ("open_clip_torch",),
            clip_model=clip_model,
            formula="mlp(normalize(encode_image(x)))",
        ),
    )
    return AestheticScorer(clip.to(runtime.device).eval(), preprocess, mlp.to(runtime.device).eval(), runtime, info)
