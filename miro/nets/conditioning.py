"""How rewards reach the network: the four conditioning schemes, reward dropout, and the condition sequence.

Schemes (`RewardConfig.scheme`):
- `tokens` (the paper, released code): each reward value s_j in [0, 1] becomes one token
  e_j = MLP(Fourier(s_j)) + p_j (a learned position vector per reward), concatenated in front of
  the text tokens; the whole sequence passes two self-attention blocks and is read by cross-attention.
- `adaln`: sum_j MLP_j(Fourier(s_j)) is added to the timestep embedding (global conditioning).
- `prompt`: the reward levels are written into the caption ("... | aesthetic 7/9"), nothing else changes.
- `none`: the baseline; rewards are ignored.
A dropped reward contributes a zero embedding (released code) and is left out of a prompt; its position
vector remains, so "dropped" is a separate state from every value, including 0.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from miro.nets.layers import ScalarEmbedder, SelfAttentionBlock

PROMPT_LEVELS = 10  # reward levels written into captions by the `prompt` scheme: 0/9 .. 9/9


def reward_keep_mask(strategy: str, p: float, batch: int, rewards: int, generator: torch.Generator,
                     device: torch.device | str = "cpu") -> torch.Tensor:
    """Which rewards each training sample keeps (True) or drops (False), shape (B, N).

    binomial: each reward dropped with probability p, at least one kept per sample.
    uniform: a uniformly random number 0..N-1 of rewards dropped, the subset uniformly random.
    none: every reward kept.
    """
    if strategy == "none" or rewards == 0:
        return torch.ones(batch, rewards, dtype=torch.bool, device=device)
    if strategy == "binomial":
        keep = torch.rand(batch, rewards, generator=generator) >= p
        fallback = torch.randint(rewards, (batch,), generator=generator)
        none_kept = ~keep.any(dim=1)
        keep[none_kept, fallback[none_kept]] = True
        return keep.to(device)
    if strategy == "uniform":
        n_drop = torch.randint(rewards, (batch, 1), generator=generator)
        ranks = torch.rand(batch, rewards, generator=generator).argsort(dim=1).argsort(dim=1)
        return (ranks >= n_drop).to(device)
    raise ValueError(f"unknown reward dropout strategy {strategy!r}")


def caption_with_rewards(caption: str, names: Sequence[str], values: Sequence[float], kept: Sequence[bool]) -> str:
    """The `prompt` scheme: "caption | name level/9, ..." with dropped rewards left out."""
    parts = [f"{name} {round(float(v) * (PROMPT_LEVELS - 1))}/{PROMPT_LEVELS - 1}"
             for name, v, k in zip(names, values, kept, strict=True) if k]
    return f"{caption} | {', '.join(parts)}" if parts else caption


class RewardTokens(nn.Module):
    """`tokens` scheme: one token per reward, e_j = MLP_j(Fourier(s_j)) * kept_j + p_j."""

    def __init__(self, rewards: int, dim: int) -> None:
        super().__init__()
        self.embedders = nn.ModuleList(ScalarEmbedder(dim) for _ in range(rewards))
        self.position = nn.Parameter(torch.empty(rewards, dim))
        nn.init.trunc_normal_(self.position, std=0.02, a=-0.04, b=0.04)

    def forward(self, values: torch.Tensor, kept: torch.Tensor) -> torch.Tensor:  # (B, N) -> (B, N, D)
        values = torch.nan_to_num(values, nan=0.0)
        e = torch.stack([emb(values[:, j]) for j, emb in enumerate(self.embedders)], dim=1)  # (B, N, D)
        return e * kept.unsqueeze(-1).to(e.dtype) + self.position


class RewardAdaLN(nn.Module):
    """`adaln` scheme: sum_j kept_j * MLP_j(Fourier(s_j)), added to the timestep embedding."""

    def __init__(self, rewards: int, dim: int) -> None:
        super().__init__()
        self.embedders = nn.ModuleList(ScalarEmbedder(dim) for _ in range(rewards))

    def forward(self, values: torch.Tensor, kept: torch.Tensor) -> torch.Tensor:  # (B, N) -> (B, D)
        values = torch.nan_to_num(values, nan=0.0)
        e = torch.stack([emb(values[:, j]) for j, emb in enumerate(self.embedders)], dim=1)  # (B, N, D)
        return (e * kept.unsqueeze(-1).to(e.dtype)).sum(dim=1)


class ConditionEncoder(nn.Module):
    """Builds the condition sequence [reward tokens | text registers | Linear(text)] -> self-attention blocks.

    Returns the sequence (B, N + R + L, D), its key mask, and the extra global embedding of the
    `adaln` scheme (None for the other schemes).
    """

    def __init__(self, scheme: str, rewards: int, text_dim: int, dim: int, registers: int, blocks: int,
                 heads: int) -> None:
        super().__init__()
        self.scheme = scheme
        self.map_text = nn.Linear(text_dim, dim)
        self.registers = nn.Parameter(torch.empty(registers, dim))
        nn.init.trunc_normal_(self.registers, std=0.02, a=-0.04, b=0.04)
        self.reward_tokens = RewardTokens(rewards, dim) if scheme == "tokens" else None
        self.reward_adaln = RewardAdaLN(rewards, dim) if scheme == "adaln" else None
        self.blocks = nn.ModuleList(
            SelfAttentionBlock(dim, heads, layer_norm=True, swiglu=False, qkv_bias=True, qk_norm=False, layer_scale=0.1)
            for _ in range(blocks)
        )

    def forward(self, text: torch.Tensor, text_mask: torch.Tensor, values: torch.Tensor,
                kept: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        b = text.shape[0]
        parts = [self.registers.expand(b, -1, -1), self.map_text(text)]  # (B, R, D), (B, L, D)
        masks = [torch.ones(b, self.registers.shape[0], dtype=torch.bool, device=text.device), text_mask]
        if self.reward_tokens is not None:
            parts.insert(0, self.reward_tokens(values, kept))  # (B, N, D)
            masks.insert(0, torch.ones(b, values.shape[1], dtype=torch.bool, device=text.device))
        cond, mask = torch.cat(parts, dim=1), torch.cat(masks, dim=1)
        for block in self.blocks:
            cond = block(cond, key_mask=mask)
        extra = self.reward_adaln(values, kept) if self.reward_adaln is not None else None
        return cond, mask, extra
