"""Named run presets. An ablation arm is `dataclasses.replace` of one of these, never a copied file."""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace

from miro.config import (
    DataConfig,
    LatentConfig,
    ModelConfig,
    ObjectiveConfig,
    OptimConfig,
    RewardConfig,
    RunConfig,
    SampleConfig,
    TextConfig,
)
from miro.errors import MiroError, unknown_name_error

SHAPES_REWARDS = ("shapes_alignment", "shapes_quality", "shapes_size")
PAPER_REWARDS = ("jina_clip", "aesthetic", "image_reward", "pickscore", "hpsv2", "vqascore", "sciscore")


def shapes() -> RunConfig:
    """The embedded default on a CPU: a small conv U-Net (0.53M) in pixel space at 32 px, shapes rewards as tokens.

    The U-Net rather than the DiT because its local shape priors draw recognisable shapes within minutes
    on a CPU (DESIGN.md); `model.backbone = "dit"` selects the transformer (width 64, depth 4, patch 4).
    """
    return RunConfig(
        name="shapes",
        data=DataConfig(source="shapes", num_samples=20000, resolution=32),
        rewards=RewardConfig(names=SHAPES_REWARDS, scheme="tokens", dropout_strategy="binomial", dropout_p=0.1,
                             caption_dropout=0.1),
        model=ModelConfig(backbone="unet", unet_channels=(16, 32, 64), attention_resolution=8, image_size=32,
                          channels=3, patch_size=4, width=64, depth=4, heads=4, text_registers=4, cond_blocks=1,
                          cond_heads=4),
        optim=OptimConfig(lr=1e-3, batch_size=64, steps=1500, warmup_steps=100, ema_decay=0.999),
        # 8 Euler steps: on the validation prompts, the default study's baseline and MIRO (seeds 0, 1, step 400)
        # drew as well as with 12 (GenEval +0.003, alignment +0.001 on average over the four) at 2/3 of the
        # sampling cost; quality was 0.007-0.013 lower in each of the four, in both arms alike, and no MIRO -
        # baseline difference moved by more than 0.017 (GenEval; its intervals are about +-0.05). Earlier,
        # 10 steps drew as well as 25.
        sample=SampleConfig(steps=8, guidance_scale=4.0),
        checkpoint_every=250,
    )


def shapes_gpu() -> RunConfig:
    """The shapes world at the size where its GenEval effect shows (one GPU, a few minutes)."""
    base = shapes()
    return replace(base, name="shapes_gpu",
                   model=replace(base.model, unet_channels=(64, 128, 256), width=128, heads=4, cond_heads=4),
                   optim=replace(base.optim, batch_size=128, steps=2500, precision="bf16"))


def smoke() -> RunConfig:
    """The smallest run that exercises every part (tests, CI)."""
    base = shapes()
    return replace(base, name="smoke", data=replace(base.data, num_samples=256),
                   model=replace(base.model, unet_channels=(8, 16, 32), width=32, depth=1, heads=2, cond_heads=2,
                                 text_registers=2),
                   optim=replace(base.optim, batch_size=16, steps=20, warmup_steps=2),
                   sample=replace(base.sample, steps=4), checkpoint_every=10)


def paper(data: str, text: str, vae: str) -> RunConfig:
    """The released checkpoint's recipe: RIN 360.4M on SDXL-VAE latents, FLAN-T5-XL text, seven rewards, on the
    user's webdataset shards `data`, FLAN-T5 folder `text` and SDXL-VAE folder `vae` (a study reads them from the
    user's data folder and weights file; `miro train --preset paper` from --set and --weights, see `preset`)."""
    return RunConfig(
        name="paper",
        data=DataConfig(source="webdataset", path=data, resolution=256),
        rewards=RewardConfig(names=PAPER_REWARDS, scheme="tokens", dropout_strategy="binomial", dropout_p=0.0,
                             caption_dropout=0.1, bins=64),  # released FlowMatchingLoss cond_drop_rate (multi_cad config)
        text=TextConfig(encoder="t5", path=text, max_tokens=77),  # released max_text_len / num_cond_tokens
        latents=LatentConfig(space="vae", vae_path=vae, normalisation="sdxl_channel_wise", sample_posterior=True),
        model=ModelConfig(backbone="rin", image_size=32, channels=4, patch_size=2, width=1024, heads=32,
                          data_dim=512, num_latents=256, rin_blocks=4, rin_layers_per_block=4, read_write_heads=16,
                          text_registers=16, cond_blocks=2, cond_heads=16, time_input="gamma"),
        objective=ObjectiveConfig(time_sampling="logit_normal", self_conditioning=0.9, uncertainty_weighting=True,
                                  preconditioning=True, sigma_data=0.5),
        optim=OptimConfig(optimizer="lamb", lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01,
                          warmup_steps=5000, min_lr_ratio=0.0, cosine_rate=0.8, grad_clip=2.0, ema_decay=0.9999,
                          ema_warmup=False, batch_size=1024, steps=500_000, precision="fp16"),
        sample=SampleConfig(solver="euler", steps=50, guidance_scale=8.0),  # the released cfg_rate w = 7
        checkpoint_every=25_000,
    )


# presets that need no local paths (the paper's recipe takes the user's data and weights: `paper(...)`)
PRESETS: dict[str, Callable[..., RunConfig]] = {"shapes": shapes, "shapes_gpu": shapes_gpu, "smoke": smoke, "paper": paper}
USER_PATHS = {"paper": {"data": "data.path", "text": "text.path", "vae": "latents.vae_path"}}  # preset argument -> config field


def preset(name: str, paths: Mapping[str, str] | None = None) -> RunConfig:
    """The named preset. A preset that reads the user's files (paper) takes their paths from `paths`, keyed by
    config field ("data.path", "text.path", "latents.vae_path"); a missing one is refused with the option to pass."""
    if name not in PRESETS:
        raise unknown_name_error("preset", name, PRESETS)
    needed = USER_PATHS.get(name, {})
    missing = [field for field in needed.values() if not (paths or {}).get(field)]
    if missing:
        raise MiroError(f"preset {name} reads your files: pass {' '.join(f'--set {f}=PATH' for f in missing)} (T5 and VAE can come from --weights)")
    return PRESETS[name](**{arg: (paths or {})[field] for arg, field in needed.items()})
