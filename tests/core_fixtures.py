"""Tiny configs and a toy conditional dataset shared by the core tests."""
from __future__ import annotations

import contextlib
import io
from collections.abc import Callable
from dataclasses import replace

import torch

from miro.config import ModelConfig, OptimConfig, RewardConfig, RunConfig

REWARDS = ("alpha", "beta")


class ToyDataset:
    """16 x 16 images whose red and green levels are the two reward values; two captions."""

    def __init__(self, n: int = 64) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict[str, object]:
        r = torch.rand(2, generator=torch.Generator().manual_seed(i))
        image = torch.full((3, 16, 16), -1.0)
        image[0], image[1] = r[0] * 2 - 1, r[1] * 2 - 1
        return {"image": image, "caption": ("a red circle", "a blue square")[i % 2], "rewards": r}


def tiny_config(scheme: str = "tokens", backbone: str = "dit", **optim: object) -> RunConfig:
    model = ModelConfig(backbone=backbone, image_size=16, channels=3, patch_size=4, width=32, depth=2, heads=2,
                        cond_heads=2, text_registers=2, cond_blocks=1, data_dim=32, num_latents=8, rin_blocks=1,
                        rin_layers_per_block=1, read_write_heads=2)
    names = () if scheme == "none" else REWARDS
    base = RunConfig(name=f"tiny-{scheme}-{backbone}", rewards=RewardConfig(names=names, scheme=scheme),
                     model=model, optim=OptimConfig(steps=20, batch_size=8, warmup_steps=2, lr=3e-3),
                     checkpoint_every=10, log_every=5)
    return replace(base, optim=replace(base.optim, **optim)) if optim else base  # type: ignore[arg-type]


def randomize(module: torch.nn.Module, seed: int = 0) -> None:
    """Random weights everywhere (zero-initialised output layers would hide conditioning effects)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.2)


def refusal(main: Callable[[list[str]], object], argv: list[str]) -> str:
    """Run a command's `main(argv)`: it must exit 2 with one `error:` line on stderr; returns that line."""
    import pytest

    err = io.StringIO()
    with pytest.raises(SystemExit) as exit_info, contextlib.redirect_stderr(err):
        main(argv)
    message = err.getvalue()
    assert exit_info.value.code == 2 and message.startswith("error: ") and message.count("\n") == 1, message
    return message.strip()
