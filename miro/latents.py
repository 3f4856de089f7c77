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
    """diffusers AutoencoderKL from a local folder; encode uses the posterior mean (deterministic)."""

    def __init__(self, path: str, scaling_factor: float = 0.0, device: str | torch.device = "cpu") -> None:
        from diffusers import AutoencoderKL

        if not (Path(path) / "config.json").is_file():
            raise MiroError(f"latents.vae_path = {path!r} has no config.json; point it to a local AutoencoderKL folder (e.g. the SDXL VAE saved with save_pretrained)")
        self.vae = AutoencoderKL.from_pretrained(path, local_files_only=True).to(device).eval().requires_grad_(False)
        self.scale = scaling_factor or float(self.vae.config.scaling_factor)
        self.downsample = 2 ** (len(self.vae.config.block_out_channels) - 1)

    @torch.no_grad()
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        return self.vae.encode(images).latent_dist.mean * self.scale

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        return self.vae.decode(latents / self.scale).sample.clamp(-1, 1)


def build_latent_space(cfg: LatentConfig, device: str | torch.device = "cpu") -> PixelSpace | VaeSpace:
    if cfg.space == "vae":
        return VaeSpace(cfg.vae_path, cfg.scaling_factor, device)
    return PixelSpace()
