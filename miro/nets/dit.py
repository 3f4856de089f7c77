"""A small DiT-style transformer for the embedded default (pixel or latent space), trainable on a CPU.

Each block: adaLN-zero modulated self-attention over patches, cross-attention to the condition
sequence (caption, registers and, for the `tokens` scheme, reward tokens), adaLN-zero modulated MLP.
The global vector c (timestep embedding, plus reward embeddings for the `adaln` scheme) drives adaLN.
"""
from __future__ import annotations

import torch
from torch import nn

from miro.config import ModelConfig
from miro.nets.layers import Attention, Mlp, RMSNorm, patchify, unpatchify


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1)


class DiTBlock(nn.Module):
    def __init__(self, dim: int, heads: int, mlp_ratio: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.attn = Attention(dim, heads)
        self.norm_cross = RMSNorm(dim)
        self.cross = Attention(dim, heads, context_dim=dim)
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.mlp = Mlp(dim, mlp_ratio)
        self.ada = nn.Linear(dim, 6 * dim)
        nn.init.zeros_(self.ada.weight)
        nn.init.zeros_(self.ada.bias)

    def forward(self, x: torch.Tensor, c: torch.Tensor, cond: torch.Tensor, cond_mask: torch.Tensor) -> torch.Tensor:
        shift1, scale1, gate1, shift2, scale2, gate2 = self.ada(nn.functional.silu(c)).chunk(6, dim=-1)  # (B, D) each
        x = x + gate1.unsqueeze(1) * self.attn(modulate(self.norm1(x), shift1, scale1))
        x = x + self.cross(self.norm_cross(x), cond, key_mask=cond_mask)
        return x + gate2.unsqueeze(1) * self.mlp(modulate(self.norm2(x), shift2, scale2))


class DiT(nn.Module):
    """(B, C, H, W) noisy input, global vector c (B, D), condition sequence (B, M, D) -> velocity (B, C, H, W)."""

    has_latents = False

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d, p = cfg.width, cfg.patch_size
        self.patch_in = nn.Linear(cfg.channels * p * p, d)
        self.pos = nn.Parameter(torch.zeros((cfg.image_size // p) ** 2, d))
        nn.init.trunc_normal_(self.pos, std=0.02)
        self.blocks = nn.ModuleList(DiTBlock(d, cfg.heads, cfg.mlp_ratio) for _ in range(cfg.depth))
        self.norm_out = nn.LayerNorm(d, elementwise_affine=False, eps=1e-6)
        self.ada_out = nn.Linear(d, 2 * d)
        self.patch_out = nn.Linear(d, cfg.channels * p * p)
        for layer in (self.ada_out, self.patch_out):  # start as the zero velocity: stable first steps
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, x: torch.Tensor, c: torch.Tensor, cond: torch.Tensor, cond_mask: torch.Tensor,
                prev_latents: torch.Tensor | None = None) -> tuple[torch.Tensor, None]:
        _, ch, h, w = x.shape
        tokens = self.patch_in(patchify(x, self.cfg.patch_size)) + self.pos  # (B, N, D)
        for block in self.blocks:
            tokens = block(tokens, c, cond, cond_mask)
        shift, scale = self.ada_out(nn.functional.silu(c)).chunk(2, dim=-1)
        tokens = self.patch_out(modulate(self.norm_out(tokens), shift, scale))  # (B, N, p*p*C)
        return unpatchify(tokens, self.cfg.patch_size, ch, h, w), None
