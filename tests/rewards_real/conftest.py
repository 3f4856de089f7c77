"""Shared fixtures: one thread, a fixed batch of 8-bit images, and tiny models built once per session."""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from PIL import Image

torch.set_num_threads(1)
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # belt and braces: every model here is built from tmp files

PROMPTS = ["a red cube on a table", "two cats asleep on a sofa", "a watercolor of a lighthouse at dusk"]


@pytest.fixture(scope="session")
def prompts() -> list[str]:
    return list(PROMPTS)


@pytest.fixture(scope="session")
def uint8_images() -> np.ndarray:
    """(B, H, W, 3) uint8 pixels; not square, so resize/pad/crop paths all matter."""
    return np.random.default_rng(0).integers(0, 256, size=(len(PROMPTS), 40, 56, 3), dtype=np.uint8)


@pytest.fixture(scope="session")
def batch(uint8_images: np.ndarray) -> torch.Tensor:
    """The scorer input: float (B, 3, H, W) in [0, 1], exactly uint8 / 255."""
    return torch.from_numpy(uint8_images).permute(0, 3, 1, 2).float() / 255


@pytest.fixture(scope="session")
def pil_images(uint8_images: np.ndarray) -> list[Image.Image]:
    """The same pixels as PIL images, the input of each package's own scoring code."""
    return [Image.fromarray(row) for row in uint8_images]
