"""FID and KID of generated images against a reference set, computed by torchmetrics on shared features.

Features are extracted once (harness.evaluation.features) and reused for diversity, FID and KID: the
torchmetrics metrics receive them through an identity "feature extractor". Reference sets:
- the shapes world: held-out real shapes images, rendered from a seed derived from the run's data seed
  (so never the training samples), with the checkpoint's world settings;
- any folder of images (searched recursively), each resized and centre-cropped to the generated size.
KID draws random subsets; they are seeded, so the numbers repeat.
"""
from __future__ import annotations

import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.kid import KernelInceptionDistance

from miro.data.shapes import ShapesWorldConfig, render_batch, sample_seed
from miro.data.sources import IMAGE_EXTENSIONS, decode_image, fit_to
from miro.errors import MiroError
from miro.seeding import seed_for

KID_SUBSETS = 100
KID_SUBSET_SIZE = 1000


class _Precomputed(nn.Module):
    """Identity: the torchmetrics metrics get features already extracted."""

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.num_features = num_features

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return features


@dataclass(frozen=True)
class Fidelity:
    """FID and KID (mean and std over random subsets) of generated against reference features."""

    fid: float
    kid_mean: float
    kid_std: float
    n_generated: int
    n_reference: int


def fid_kid(generated: torch.Tensor, reference: torch.Tensor, seed: int = 0) -> Fidelity:
    """FID and KID from (N, D) generated and (M, D) reference features; KID subsets of min(1000, N, M)."""
    if len(generated) < 2 or len(reference) < 2 or generated.shape[1] != reference.shape[1]:
        raise MiroError(f"FID/KID need >= 2 generated and reference images with the same features; got "
                        f"{tuple(generated.shape)} and {tuple(reference.shape)}")
    dim = generated.shape[1]
    fid = FrechetInceptionDistance(feature=_Precomputed(dim), normalize=True)
    with warnings.catch_warnings():  # "will save all extracted features": ours are already in memory
        warnings.filterwarnings("ignore", message="Metric `Kernel Inception Distance` will save")
        kid = KernelInceptionDistance(feature=_Precomputed(dim), subsets=KID_SUBSETS, normalize=True,
                                      subset_size=min(KID_SUBSET_SIZE, len(generated), len(reference)))
    for metric in (fid, kid):
        metric.update(reference.double(), real=True)
        metric.update(generated.double(), real=False)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        kid_mean, kid_std = kid.compute()
    return Fidelity(float(fid.compute()), float(kid_mean), float(kid_std), len(generated), len(reference))


def shapes_reference_seed(data_seed: int) -> int:
    """The held-out reference set's seed: derived from the training data seed, never equal to it."""
    return seed_for("fid-reference", data_seed) % 2**62


def shapes_reference(world: ShapesWorldConfig, count: int, seed: int, batch_size: int = 256) -> Iterator[torch.Tensor]:
    """Batches (B, 3, H, W) in [0, 1] of `count` shapes-world images drawn from `seed`."""
    for first in range(0, count, batch_size):
        seeds = [sample_seed(seed, i) for i in range(first, min(first + batch_size, count))]
        yield render_batch(world, seeds)[0]


def folder_reference(path: str | Path, size: int, count: int, batch_size: int = 64) -> Iterator[torch.Tensor]:
    """Batches of the first `count` images under a folder (sorted paths), resized and centre-cropped to size x size."""
    folder = Path(path)
    paths = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower().lstrip(".") in IMAGE_EXTENSIONS)[:count]
    if not paths:
        raise MiroError(f"reference folder {folder} holds no images ({', '.join(IMAGE_EXTENSIONS)}); point --reference at real images")
    for first in range(0, len(paths), batch_size):
        yield torch.stack([fit_to(decode_image(p.read_bytes()), size) for p in paths[first:first + batch_size]])
