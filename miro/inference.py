"""Load a trained checkpoint for sampling: its config, EMA network, text encoder and latent space."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from miro.checkpoint import checkpoint_dirs, checkpoint_step, load_checkpoint, load_strict, read_json
from miro.config import RunConfig, from_dict
from miro.errors import MiroError, corrupt_file_error
from miro.latents import PixelSpace, VaeSpace, build_latent_space
from miro.nets.flow_model import FlowModel, build_model
from miro.text import TextEncoder, build_text_encoder
from miro.weights_file import WeightsFile


@dataclass
class Generator:
    """Everything needed to turn captions and seeds into images."""

    config: RunConfig
    step: int
    model: FlowModel
    text_encoder: TextEncoder
    latent_space: PixelSpace | VaeSpace
    device: torch.device

    @property
    def data_shape(self) -> tuple[int, int, int]:
        m = self.config.model
        return (m.channels, m.image_size, m.image_size)


def resolve_checkpoint(path: Path | str) -> Path:
    """A checkpoint folder, or a run folder (its last checkpoint)."""
    path = Path(path)
    if (path / "ema.safetensors").is_file():
        return path
    found = checkpoint_dirs(path)
    if not found:
        raise MiroError(f"{path} holds no checkpoint (expected <run>/checkpoints/step-NNNNNNN/ema.safetensors); train the run first")
    return found[-1]


def load_generator(path: Path | str, device: torch.device | str = "cpu", weights: WeightsFile | None = None) -> Generator:
    """The EMA network of a checkpoint (or of a run's last checkpoint), ready to sample; `weights` supplies the
    T5 / VAE folders when the recorded ones are not on this machine."""
    ckpt_dir = resolve_checkpoint(path)
    if not (ckpt_dir / "manifest.json").is_file():
        raise MiroError(f"checkpoint {ckpt_dir} lacks manifest.json; delete the folder to use the previous checkpoint")
    manifest = read_json(ckpt_dir / "manifest.json")
    if not isinstance(manifest, dict) or not isinstance(manifest.get("config"), dict):
        raise corrupt_file_error(ckpt_dir / "manifest.json", "it holds no run config",
                                 "delete the folder to use the previous checkpoint (or restore the file from a copy)")
    config = from_dict(RunConfig, manifest["config"])
    config = weights.relocate(config) if weights is not None else config
    device = torch.device(device)
    text_encoder = build_text_encoder(config.text, device)
    latent_space = build_latent_space(config.latents, device)
    model = build_model(config.model, config.rewards, config.objective, text_encoder.dim)
    ckpt = load_checkpoint(ckpt_dir, with_optimizer=False)
    load_strict(model, ckpt.ema, ckpt_dir / "ema.safetensors")
    return Generator(config, checkpoint_step(ckpt_dir), model.to(device).eval(), text_encoder, latent_space, device)
