"""Checks of a run against the files and the machine it will use, before any step is spent.

`check_latent_shape`: the flow runs on (model.channels, model.image_size, model.image_size), which must be
what the data gives: the pixels at data.resolution, or the VAE latents at data.resolution / downsampling
(read from the VAE's config.json, never its weights). A mismatch would otherwise end in a tensor-shape
traceback on the first step.
`estimated_hours`: a coarse compute estimate, 6 x parameters x tokens per sample x samples, at a rough
sustained throughput of the device; it only has to tell minutes from months (the 360M paper recipe on a
CPU), so a run that would take longer than `ABSURD_HOURS` needs --force.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

from miro.config import RunConfig
from miro.errors import MiroError

SUSTAINED_FLOPS = {"cpu": 1e11, "cuda": 2e14, "mps": 5e12}  # rough sustained training throughput, FLOP/s
ABSURD_HOURS = 24 * 14


def vae_config(path: str) -> dict:
    config = Path(path) / "config.json"
    if not config.is_file():
        raise MiroError(f"latents.vae_path = {path!r} has no config.json; point it to a local AutoencoderKL folder")
    return json.loads(config.read_text())


def check_latent_shape(cfg: RunConfig) -> None:
    """One-line error unless model.image_size / channels match the data and the latent space."""
    m, d = cfg.model, cfg.data
    if cfg.latents.space == "vae":
        vae = vae_config(cfg.latents.vae_path)
        factor = 2 ** (len(vae["block_out_channels"]) - 1)
        size, channels, where = d.resolution // factor, int(vae["latent_channels"]), f"data.resolution {d.resolution} / VAE downsampling {factor}"
        if d.resolution % factor:
            raise MiroError(f"data.resolution = {d.resolution} is not a multiple of the VAE's downsampling {factor}; pick e.g. {factor * max(1, d.resolution // factor)}")
    else:
        size, channels, where = d.resolution, 3, f"data.resolution {d.resolution} (pixel space)"
    if m.image_size != size or m.channels != channels:
        raise MiroError(f"model.image_size = {m.image_size}, model.channels = {m.channels} but the data gives {channels} x {size} x {size} "
                        f"({where}); set model.image_size={size} model.channels={channels}")


def check_paths(cfg: RunConfig) -> None:
    """Refuse a run whose config names a file or folder that is not there (a webdataset pattern and bin edges, which
    a run may write, aside), so that a --dry-run refuses what the run would refuse once it started."""
    from miro.config import PATH_FIELDS

    for field in PATH_FIELDS:
        section, name = field.split(".")
        value = getattr(getattr(cfg, section), name)
        if value and field != "data.bin_edges" and "{" not in value and not Path(value).expanduser().exists():
            raise MiroError(f"{field} = {value!r} does not exist; fix the path (or the weights file entry that names it)")


def parameter_count(cfg: RunConfig, text_dim: int) -> int:
    """Parameters of the network, built on the meta device (no memory, no time)."""
    from miro.nets.flow_model import build_model

    with torch.device("meta"):
        model = build_model(cfg.model, cfg.rewards, cfg.objective, text_dim)
    return sum(p.numel() for p in model.parameters())


def text_dim(cfg: RunConfig) -> int:
    if cfg.text.encoder == "t5":
        config = Path(cfg.text.path) / "config.json"
        return int(json.loads(config.read_text())["d_model"]) if config.is_file() else 2048
    return cfg.text.dim


def estimated_hours(cfg: RunConfig, device: torch.device) -> float:
    m = cfg.model
    tokens = m.num_latents + (m.image_size // m.patch_size) ** 2 if m.backbone == "rin" else (m.image_size // m.patch_size) ** 2
    flops = 6 * parameter_count(cfg, text_dim(cfg)) * tokens * cfg.optim.batch_size * cfg.optim.steps
    return flops / SUSTAINED_FLOPS.get(device.type, 1e11) / 3600


def check_time(cfg: RunConfig, device: torch.device, force: bool) -> None:
    """Refuse (unless `force`) a run whose estimated time on `device` is absurd."""
    hours = estimated_hours(cfg, device)
    if hours > ABSURD_HOURS and not force:
        raise MiroError(f"this run is estimated at {hours / 24:,.0f} days on {device.type} ({cfg.optim.steps:,} steps of batch {cfg.optim.batch_size}); "
                        "run it on GPUs (a SLURM sweep), shrink optim.steps / the model, or pass --force")
