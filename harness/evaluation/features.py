"""Image features for diversity and FID/KID: images (B, 3, H, W) float in [0, 1] -> (B, D) float.

- `pixels`: the image averaged down to 8 x 8 (192 numbers) minus mid-grey. For the shapes world, where an
  image is a few flat-coloured shapes on grey, this small fixed map keeps what varies between samples
  (where objects are, their colours and rough extent) and needs no weights; centred on the grey
  background, a blank image is the origin and cosine similarities compare what is drawn. Its FID is in
  its own units: never compare it with an Inception FID.
- `inception=PATH`: Inception-v3 pool features (2048) of torch-fidelity's FID network, from a local
  weights file (`weights-inception-2015-12-05-6726825d.pth`), as torchmetrics computes them (uint8 input,
  bilinear antialiased resize to 299). Never downloaded: a missing file is an error naming it.
- `clip=ARCH:PATH`: L2-normalised open_clip image embeddings (e.g. ViT-L-14 with OpenAI weights from a
  local file): CLIP-like features for diversity on real images, as the diversity literature uses.
"""
from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import torch
from torch import nn

from miro.errors import MiroError
from miro.rewards.real.weights import sha256_file

PIXEL_SIZE = 8


class PixelFeatures(nn.Module):
    """The image area-averaged to PIXEL_SIZE x PIXEL_SIZE, flattened, minus 0.5 (the world's grey)."""

    num_features = 3 * PIXEL_SIZE * PIXEL_SIZE

    def __init__(self) -> None:
        super().__init__()
        self.name = f"pixels{PIXEL_SIZE}"
        self.fingerprint = self.name

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return nn.functional.adaptive_avg_pool2d(images.float(), PIXEL_SIZE).flatten(1) - 0.5


class InceptionFeatures(nn.Module):
    """2048-d pool features of the FID Inception network, loaded from a local file."""

    num_features = 2048

    def __init__(self, weights: str | Path) -> None:
        super().__init__()
        from torchmetrics.image.fid import NoTrainInceptionV3

        path = Path(weights).expanduser()
        self.net = NoTrainInceptionV3(name="inception-v3-compat", features_list=["2048"], feature_extractor_weights_path=str(path))
        self.name = "inception"
        self.fingerprint = "inception:" + sha256_file(path)[:16]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net((images.clamp(0, 1) * 255).round().to(torch.uint8)).reshape(len(images), -1)


class ClipFeatures(nn.Module):
    """open_clip image embeddings, L2-normalised; images resized (bicubic) to the tower's size and normalised
    with the model's mean and std, as open_clip's own preprocessing does for square images."""

    def __init__(self, arch: str, weights: str | Path) -> None:
        super().__init__()
        import open_clip

        path = Path(weights).expanduser()
        self.model = open_clip.create_model(arch, pretrained=str(path)).eval()
        size = self.model.visual.image_size
        self.size = tuple(size) if isinstance(size, (tuple, list)) else (size, size)
        visual = self.model.visual
        self.mean = torch.tensor(getattr(visual, "image_mean", None) or open_clip.OPENAI_DATASET_MEAN).view(1, 3, 1, 1)
        self.std = torch.tensor(getattr(visual, "image_std", None) or open_clip.OPENAI_DATASET_STD).view(1, 3, 1, 1)
        self.num_features = int(visual.output_dim)
        self.name = f"clip-{arch}"
        self.fingerprint = f"clip:{arch}:{sha256_file(path)[:16]}"

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = nn.functional.interpolate(images.float(), size=self.size, mode="bicubic", antialias=True, align_corners=False)
        x = (x.clamp(0, 1) - self.mean.to(x.device)) / self.std.to(x.device)
        return nn.functional.normalize(self.model.encode_image(x), dim=-1)


Features = PixelFeatures | InceptionFeatures | ClipFeatures


def features_spec(spec: str) -> tuple[str, str, str]:
    """(kind, open_clip arch, weights path) of `pixels`, `inception=PATH` or `clip=ARCH:PATH`, checked without loading
    anything: a malformed spec or weights that are not there are refused in one line."""
    kind, _, value = spec.partition("=")
    arch, _, path = value.partition(":") if kind == "clip" else ("", "", value)
    if not ((kind == "pixels" and not value) or (kind == "inception" and path) or (kind == "clip" and arch and path)):
        raise MiroError(f'--features "{spec}" is not allowed; use "pixels" (the shapes world), "inception=PATH" '
                        '(local FID Inception weights) or "clip=ARCH:PATH" (local open_clip weights)')
    if kind == "inception" and not Path(path).expanduser().is_file():
        raise MiroError(f"Inception weights {path} do not exist; download weights-inception-2015-12-05-6726825d.pth "
                        "(torch-fidelity's FID network) and pass --features inception=PATH")
    if kind == "clip" and not Path(path).expanduser().is_file():
        raise MiroError(f"open_clip weights {path} do not exist; pass --features clip=ARCH:PATH with a local checkpoint")
    return kind, arch, path


def build_features(spec: str) -> Features:
    """`pixels`, `inception=PATH` or `clip=ARCH:PATH`."""
    kind, arch, path = features_spec(spec)
    if kind == "pixels":
        return PixelFeatures()
    return InceptionFeatures(path) if kind == "inception" else ClipFeatures(arch, path)


@torch.no_grad()
def extract(features: Features, batches: Iterable[torch.Tensor], device: str | torch.device = "cpu") -> torch.Tensor:
    """(N, D) float64 features of image batches (B, 3, H, W) in [0, 1], streamed so no image set sits in memory."""
    features.to(device).eval()
    rows = [features(batch.to(device)).double().cpu() for batch in batches]
    return torch.cat(rows) if rows else torch.zeros(0, features.num_features, dtype=torch.float64)
