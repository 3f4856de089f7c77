"""Tiny open_clip CLIP configs, registered by name and saved in the real checkpoint formats.

The real towers (ViT-H-14 for HPSv2, ViT-L-14 for the aesthetic predictor) take minutes to build on
two cores; these keep the real code paths (config registry, model class, transforms, tokenizer) with
1 to 2M parameters. Widths are multiples of 64 where OpenAI's `clip.model.build_model` infers heads.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

TINY_HPS = "tiny-hps"
TINY_HPS_CONFIG: dict[str, Any] = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 224, "layers": 2, "width": 64, "patch_size": 32},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2},
}
# The aesthetic head reads 768-d ViT-L/14 embeddings, so the tiny tower keeps embed_dim 768.
TINY_AESTHETIC = "tiny-aesthetic-quickgelu"
TINY_AESTHETIC_CONFIG: dict[str, Any] = {
    "embed_dim": 768,
    "quick_gelu": True,
    "vision_cfg": {"image_size": 224, "layers": 1, "width": 64, "patch_size": 32},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 1, "layers": 1},
}


def write_config(folder: Path, name: str, config: dict[str, Any]) -> Path:
    """Write `name`.json where open_clip's `add_model_config` (upstream or hpsv2's copy) can register it."""
    path = folder / f"{name}.json"
    path.write_text(json.dumps(config))
    return path


def randomise(model: torch.nn.Module, seed: int, scale: float = 0.1) -> None:
    """Add N(0, scale) to every parameter, so zero-initialised heads and biases carry signal too."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(torch.randn(parameter.shape, generator=generator) * scale)
