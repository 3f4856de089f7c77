"""Turn a scorer's input batch into the 8-bit RGB PIL images that every reference implementation scores.

Why quantise: hpsv2, ImageReward, PickScore and the aesthetic predictor were all evaluated on saved
8-bit images, and each runs its own PIL-based preprocessing. Rounding to uint8 first and handing
the package its own transform reproduces their numbers, and makes scoring a float batch the same as
scoring the PNGs written from it.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from PIL import Image

from miro.errors import MiroError


def check_batch(images: torch.Tensor, prompts: Sequence[str]) -> None:
    """Raise a one-line MiroError unless `images` is a float (B, 3, H, W) batch in [0, 1] with B prompts."""
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[1] != 3:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise MiroError(f"images must be a float tensor (B, 3, H, W); got {shape}")
    if not images.is_floating_point():
        raise MiroError(f"images must be float in [0, 1]; got dtype {images.dtype} (divide uint8 by 255)")
    if len(prompts) != images.shape[0]:
        raise MiroError(f"got {images.shape[0]} images but {len(prompts)} prompts; pass one prompt per image")
    low, high = float(images.min()), float(images.max())
    if low < 0.0 or high > 1.0:
        raise MiroError(f"images must lie in [0, 1]; got values in [{low:.3g}, {high:.3g}] (map [-1, 1] with (x + 1) / 2)")


def to_pil_images(images: torch.Tensor, prompts: Sequence[str]) -> list[Image.Image]:
    """Check the batch, round it to uint8 (as saving a PNG would) and return one RGB PIL image per row.

    An (H, W, 3) uint8 array becomes an RGB image, the mode every reference transform expects.
    """
    check_batch(images, prompts)
    pixels = (images.detach().float().cpu() * 255).round().clamp(0, 255).to(torch.uint8)  # (B, 3, H, W)
    return [Image.fromarray(row.permute(1, 2, 0).numpy()) for row in pixels]
