"""The shapes world's analytic rewards: the same Scorer interface as the real reward models, no weights.

They are chosen so that some agree and some conflict, like the paper's rewards:
- shapes_alignment (caption-image agreement) mostly ignores image quality, but a detector that fails on
  blurred or noisy images couples it weakly to quality;
- shapes_quality (an "aesthetic": contrast, sharpness, absence of noise) ignores the caption;
- shapes_size (foreground fraction) rewards big and many objects, which fights exact counts and clean
  layouts when pushed;
- shapes_cleanliness (no clutter specks, no objects cut by the border) partly agrees with quality,
  since noise also breaks into specks.
All return (B,) CPU float tensors in [0, 1], higher is better. Pearson correlations on 2,000 default
32 px samples: alignment vs wrong caption -0.59, vs blur / noise / contrast loss -0.17 / -0.23 / -0.16;
quality vs blur / noise / contrast loss -0.49 / -0.53 / -0.57; size vs true foreground +0.93 and number of
objects +0.66; cleanliness vs clutter / cut / noise -0.31 / -0.31 / -0.50; between rewards: alignment-quality
+0.26, quality-cleanliness +0.44, alignment-cleanliness +0.26, size-quality +0.21, size-alignment +0.01.
"""
from __future__ import annotations

import functools
import hashlib
from collections.abc import Sequence

import numpy as np
import torch

from miro.data.shapes import ShapesWorldConfig, render_batch, sample_seed
from miro.data.shapes_prompts import COLOR_NAMES, Seen, constraint_results, parse_caption
from miro.errors import MiroError
from miro.rewards.base import Scorer, ScorerInfo
from miro.rewards.shapes_detector import (
    ShapesColorClassifier,
    ShapesDetector,
    background_color,
    median3x3,
)

_VERSION = "1"


def _world_details(world: ShapesWorldConfig) -> dict[str, str]:
    return {"world": repr(world)}


def _as_pixels(images: torch.Tensor, prompts: Sequence[str], world: ShapesWorldConfig) -> np.ndarray:
    """(B, 3, H, W) float in [0, 1] -> (B, H, W, 3) float32 numpy, after checking shapes and prompts."""
    size = world.resolution
    if images.ndim != 4 or images.shape[1] != 3 or tuple(images.shape[2:]) != (size, size):
        raise MiroError(f"this shapes reward takes images (B, 3, {size}, {size}) in [0, 1], got {tuple(images.shape)}; "
                        "for another resolution build it with world=ShapesWorldConfig(resolution=...)")
    if len(prompts) != len(images):
        raise MiroError(f"got {len(images)} images but {len(prompts)} prompts; pass one prompt per image")
    return images.detach().float().clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy()


def _to_uint8(pixels: np.ndarray) -> np.ndarray:
    return np.round(pixels * 255).astype(np.uint8)


class AlignmentScorer(Scorer):
    """Fraction of the caption's GenEval checks that the analytic detector finds satisfied.

    The caption is parsed back into GenEval metadata; each include clause contributes presence (enough
    detections of its class above GenEval's threshold) plus colour and position checks if it has them,
    each exclude clause one absence check (reference/geneval.md). So "a photo of a red circle left of a
    square" scores 0.5 when both shapes are found but in the wrong order, and 1 only when GenEval would
    judge the image correct. A caption the templates do not write scores 0.
    """

    def __init__(self, world: ShapesWorldConfig | None = None) -> None:
        self.world = world or ShapesWorldConfig()
        self.detector = ShapesDetector(self.world)
        self.colors = ShapesColorClassifier(self.world)
        self.info = ScorerInfo(
            name="shapes_alignment",
            version=_VERSION,
            score_range=(0.0, 1.0),
            details={
                **_world_details(self.world),
                "computation": "mean of GenEval's per-clause checks (presence, colour, position, exclusion) "
                "with the analytic detector and colour classifier; unparseable caption -> 0",
            },
        )

    def score(self, images: torch.Tensor, prompts: Sequence[str]) -> torch.Tensor:
        pixels = _to_uint8(_as_pixels(images, prompts, self.world))
        scores = []
        for image, detections, prompt in zip(pixels, self.detector.detect_batch(pixels), prompts):
            metadata = parse_caption(prompt)
            if metadata is None:
                scores.append(0.0)
                continue
            needs_color = any("color" in c for c in metadata["include"])
            seen = [
                Seen(d.label, self.colors.classify(image, d, list(COLOR_NAMES)) if needs_color else "", d.box, d.score)
                for found in detections.values()
                for d in found
            ]
            results = constraint_results(metadata, seen)
            scores.append(sum(results) / len(results))
        return torch.tensor(scores, dtype=torch.float32)


def image_statistics(pixels: np.ndarray) -> dict[str, np.ndarray]:
    """Per-image contrast, sharpness, noise and foreground fraction of (B, H, W, 3) floats in [0, 1].

    All work on d = |median3x3(image) - frame colour|, the distance from the background, so the median
    filter keeps noise out of every measure but the noise one (without it, sharpness rises with noise):
    - contrast: max of d (the strongest object's distance from the grey; object count and size do not
      change it);
    - sharpness: 99th percentile of |grad d| over contrast (the steepest edges, in units of edge height:
      a blurred edge is wide and shallow);
    - noise: 1.4826 x median |image - median3x3(image)| (robust std of what the median removes);
    - foreground: fraction of pixels with d above half the contrast (and above 0.05).
    """
    smooth = median3x3(pixels)
    distance = np.linalg.norm(smooth - background_color(pixels)[:, None, None, :], axis=-1)  # (B, H, W)
    flat = distance.reshape(len(pixels), -1)
    contrast = flat.max(axis=1)
    gy, gx = np.diff(distance, axis=1)[:, :, :-1], np.diff(distance, axis=2)[:, :-1, :]
    gradient = np.sqrt(gx**2 + gy**2).reshape(len(pixels), -1)
    sharpness = np.quantile(gradient, 0.99, axis=1) / np.maximum(contrast, 1e-3)
    noise = 1.4826 * np.median(np.abs(pixels - smooth).reshape(len(pixels), -1), axis=1)
    threshold = np.maximum(0.5 * contrast, 0.05)[:, None]
    foreground = (flat > threshold).mean(axis=1)
    return {"contrast": contrast, "sharpness": sharpness, "noise": noise, "foreground": foreground}


@functools.lru_cache(maxsize=4)
def _reference_statistics(world: ShapesWorldConfig, n: int, seed: int) -> dict[str, np.ndarray]:
    """Sorted statistics of n images of the world (its own corruption mix), rendered from fixed seeds."""
    images, _ = render_batch(world, [sample_seed(seed, i) for i in range(n)])
    stats = image_statistics(images.permute(0, 2, 3, 1).numpy())
    return {k: np.sort(v) for k, v in stats.items()}


def _cdf(reference: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Mid-rank empirical CDF, so ties (many clean images have noise 0) get the middle of their step."""
    below = np.searchsorted(reference, values, side="left")
    at_or_below = np.searchsorted(reference, values, side="right")
    return (below + at_or_below) / (2 * len(reference))


class QualityScorer(Scorer):
    """Image-only "aesthetic": mean of the world's CDFs of contrast, sharpness and (1 - noise).

    The CDFs are those of `reference_images` images of the world itself (corruptions included), rendered
    from fixed seeds at construction (about 1 s for 1,000 at 32 px on one core, cached per world), so 0.5 means a
    typical training image and 1 one better than all of them on every count.
    """

    def __init__(self, world: ShapesWorldConfig | None = None, reference_images: int = 1000) -> None:
        self.world = world or ShapesWorldConfig()
        self.reference = _reference_statistics(self.world, reference_images, 20261126)
        digest = hashlib.sha256(
            b"".join(self.reference[k].tobytes() for k in ("contrast", "sharpness", "noise"))
        ).hexdigest()[:16]
        self.info = ScorerInfo(
            name="shapes_quality",
            version=_VERSION,
            score_range=(0.0, 1.0),
            details={
                **_world_details(self.world),
                "computation": "mean(F_contrast, F_sharpness, 1 - F_noise), F = empirical CDF over the reference "
                "images; measures after a 3x3 median filter (see image_statistics)",
                "reference": f"{reference_images} images, seed 20261126, sha256 {digest}",
            },
        )

    def score(self, images: torch.Tensor, prompts: Sequence[str]) -> torch.Tensor:
        stats = image_statistics(_as_pixels(images, prompts, self.world))
        parts = (
            _cdf(self.reference["contrast"], stats["contrast"]),
            _cdf(self.reference["sharpness"], stats["sharpness"]),
            1 - _cdf(self.reference["noise"], stats["noise"]),
        )
        return torch.tensor(np.mean(parts, axis=0), dtype=torch.float32)


class SizeScorer(Scorer):
    """Foreground fraction: how much of the image the objects cover (see image_statistics).

    Pushed hard, it asks for more and bigger objects, which conflicts with exact counts, with room for
    relations, and with alignment; this is the conflict the report should show.
    """

    def __init__(self, world: ShapesWorldConfig | None = None) -> None:
        self.world = world or ShapesWorldConfig()
        self.info = ScorerInfo(
            name="shapes_size",
            version=_VERSION,
            score_range=(0.0, 1.0),
            details={
                **_world_details(self.world),
                "computation": "fraction of pixels whose 3x3-median colour is further from the frame colour "
                "than max(0.05, half the image's largest such distance)",
            },
        )

    def score(self, images: torch.Tensor, prompts: Sequence[str]) -> torch.Tensor:
        stats = image_statistics(_as_pixels(images, prompts, self.world))
        return torch.tensor(stats["foreground"], dtype=torch.float32)


class CleanlinessScorer(Scorer):
    """1 / (1 + specks + cut objects): a tidy picture has neither clutter nor objects cut by the border.

    Specks are the detector's colour components too small to be objects but of at least 0.8 px that
    stand 4 noise stds out: painted clutter, and under heavy noise the grain that survives smoothing,
    which is where this partly agrees with quality. Cut objects are objects whose extent touches the border.
    """

    def __init__(self, world: ShapesWorldConfig | None = None) -> None:
        self.world = world or ShapesWorldConfig()
        self.detector = ShapesDetector(self.world)
        self.info = ScorerInfo(
            name="shapes_cleanliness",
            version=_VERSION,
            score_range=(0.0, 1.0),
            details={
                **_world_details(self.world),
                "computation": "1 / (1 + specks + objects touching the border); specks = colour components of 0.8 px "
                "to object size with peak >= 4 noise stds, from the analytic detector",
            },
        )

    def score(self, images: torch.Tensor, prompts: Sequence[str]) -> torch.Tensor:
        pixels = _to_uint8(_as_pixels(images, prompts, self.world))
        found = self.detector.components(pixels)
        flaws = self.detector.speck_rows(found) | (self.detector.object_rows(found) & found.touches_border)
        count = np.bincount(found.image[flaws], minlength=len(pixels))
        return torch.tensor(1.0 / (1.0 + count), dtype=torch.float32)
