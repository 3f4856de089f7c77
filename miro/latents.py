"""Where the flow runs: pixel space (identity) or the latents of a diffusers AutoencoderKL (SDXL VAE).

Images are (B, 3, H, W) in [-1, 1]. VAE latents are scaled by the VAE's scaling factor so they have
roughly unit variance, as the released code does.
"""
from __future__ import annotations

from pathlib import Path

import torch

from miro.config import LatentConfig
from miro.errors import MiroError


class PixelSpace:
    downsample = 1

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        return images

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        return latents.clamp(-1, 1)


class VaeSpace:
    """diffusers AutoencoderKL from a local folder; encode uses the posterior mean (deterministic).

    Latents seen by the flow are (mean - shift) * scale, with shift and scale from the VAE's config
    (the SDXL VAE has no shift) unless `scaling_factor` overrides the scale.
    """

    def __init__(self, path: str, scaling_factor: float = 0.0, device: str | torch.device = "cpu",
                 dtype: torch.dtype = torch.float32) -> None:
        from diffusers import AutoencoderKL

        if not (Path(path) / "config.json").is_file():
            raise MiroError(f"latents.vae_path = {path!r} has no config.json; point it to a local AutoencoderKL folder (e.g. the SDXL VAE saved with save_pretrained)")
        self.vae = AutoencoderKL.from_pretrained(path, torch_dtype=dtype, local_files_only=True).to(device).eval().requires_grad_(False)
        self.scale = scaling_factor or float(self.vae.config.scaling_factor)
        self.shift = float(getattr(self.vae.config, "shift_factor", None) or 0.0)
        self.downsample = 2 ** (len(self.vae.config.block_out_channels) - 1)

    @torch.no_grad()
    def posterior(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Images in [-1, 1] -> the unscaled posterior (mean, std), float32."""
        param = next(self.vae.parameters())
        dist = self.vae.encode(images.to(param.device, param.dtype)).latent_dist
        return dist.mean.float(), dist.std.float()

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        return (self.posterior(images)[0] - self.shift) * self.scale

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        param = next(self.vae.parameters())
        return self.vae.decode((latents / self.scale + self.shift).to(param.dtype)).sample.float().clamp(-1, 1)


def build_latent_space(cfg: LatentConfig, device: str | torch.device = "cpu") -> PixelSpace | VaeSpace:
    if cfg.space == "vae":
        return VaeSpace(cfg.vae_path, cfg.scaling_factor, device)
    return PixelSpace()
