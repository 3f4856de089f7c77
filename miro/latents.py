"""Where the flow runs: pixel space (identity) or the latents of a diffusers AutoencoderKL (SDXL VAE).

Images are (B, 3, H, W) in [-1, 1]. VAE latents z are normalised per channel, x_c = (z_c - shift_c) * scale_c,
either with the VAE config's single scaling factor, or (the released recipe) with the SDXL VAE's per-channel
statistics so that every channel has mean 0 and std 0.5 = sigma_data.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from miro.config import LatentConfig
from miro.errors import MiroError
from miro.warm import kept

# Per-channel mean and std of SDXL-VAE latents (released miro/models/preprocessing.py `VAE_STATS["sdxl"]`,
# "bias_channel_wise" and "scale_channel_wise"); the released x = (z - mean) * 0.5 / std.
SDXL_CHANNEL_MEAN = (-0.3480, 0.3754, 0.0419, 2.4331)
SDXL_CHANNEL_STD = (7.8518, 5.8465, 6.8716, 5.3140)
CHANNEL_WISE_STD = 0.5


class PixelSpace:
    downsample = 1

    def encode(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return images

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        return latents.clamp(-1, 1)


@dataclass(frozen=True)
class PosteriorNormaliser:
    """Unscaled posterior (B, C, h, w) -> the flow's data x = (z - shift) * scale, z the posterior mean or
    (sample_posterior) a sample z = mean + std * n drawn from the caller's generator. Shared by the live VAE
    and by latents precomputed with `miro precompute`, so both give the run's normalisation."""

    scale: torch.Tensor  # (1, C, 1, 1)
    shift: torch.Tensor  # (1, C, 1, 1)
    sample_posterior: bool = False

    def __call__(self, mean: torch.Tensor, std: torch.Tensor | None = None,
                 generator: torch.Generator | None = None) -> torch.Tensor:
        z = mean
        if self.sample_posterior and std is not None:
            z = mean + std.to(mean.device) * torch.randn(mean.shape, generator=generator).to(mean.device)
        return (z - self.shift.to(z.device)) * self.scale.to(z.device)


class VaeSpace:
    """diffusers AutoencoderKL from a local folder. x = (z - shift) * scale per channel, z the posterior mean
    or (sample_posterior) a posterior sample drawn from the caller's generator."""

    def __init__(self, path: str, scaling_factor: float = 0.0, device: str | torch.device = "cpu",
                 dtype: torch.dtype = torch.float32, normalisation: str = "vae_config",
                 sample_posterior: bool = False) -> None:
        from diffusers import AutoencoderKL

        if not (Path(path) / "config.json").is_file():
            raise MiroError(f"latents.vae_path = {path!r} has no config.json; point it to a local AutoencoderKL folder (e.g. the SDXL VAE saved with save_pretrained)")
        self.vae = AutoencoderKL.from_pretrained(path, torch_dtype=dtype, local_files_only=True).to(device).eval().requires_grad_(False)
        self.scaling_factor = scaling_factor or float(self.vae.config.scaling_factor)  # the VAE config's, as stored
        self.shift_factor = float(getattr(self.vae.config, "shift_factor", None) or 0.0)
        self.normalise = PosteriorNormaliser(*channel_scaling(normalisation, int(self.vae.config.latent_channels),
                                                              self.scaling_factor, self.shift_factor), sample_posterior)
        self.downsample = 2 ** (len(self.vae.config.block_out_channels) - 1)

    @torch.no_grad()
    def posterior(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Images in [-1, 1] -> the unscaled posterior (mean, std), float32."""
        param = next(self.vae.parameters())
        dist = self.vae.encode(images.to(param.device, param.dtype)).latent_dist
        return dist.mean.float(), dist.std.float()

    def encode(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.normalise(*self.posterior(images), generator=generator)

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        param = next(self.vae.parameters())
        z = latents.float() / self.normalise.scale.to(latents.device) + self.normalise.shift.to(latents.device)
        return self.vae.decode(z.to(param.dtype)).sample.float().clamp(-1, 1)


def channel_scaling(normalisation: str, channels: int, scaling_factor: float,
                    shift_factor: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(scale, shift), each (1, C, 1, 1), of x = (z - shift) * scale."""
    if normalisation == "sdxl_channel_wise":
        if channels != len(SDXL_CHANNEL_STD):
            raise MiroError(f'latents.normalisation = "sdxl_channel_wise" needs a 4-channel SDXL VAE, this VAE has {channels} channels; use "vae_config"')
        scale = CHANNEL_WISE_STD / torch.tensor(SDXL_CHANNEL_STD)
        shift = torch.tensor(SDXL_CHANNEL_MEAN)
    else:
        scale, shift = torch.full((channels,), scaling_factor), torch.full((channels,), shift_factor)
    return scale.reshape(1, -1, 1, 1), shift.reshape(1, -1, 1, 1)


@kept  # frozen once built: a warm worker keeps it for the next unit
def build_latent_space(cfg: LatentConfig, device: str | torch.device = "cpu") -> PixelSpace | VaeSpace:
    if cfg.space == "vae":
        return VaeSpace(cfg.vae_path, cfg.scaling_factor, device, normalisation=cfg.normalisation,
                        sample_posterior=cfg.sample_posterior)
    return PixelSpace()
