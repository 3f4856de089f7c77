"""A small convolutional U-Net for the embedded default: local shape priors that a tiny DiT lacks on a CPU.

Same interface as the DiT: (B, C, H, W) noisy input, global vector c (B, D) (timestep embedding, plus
reward embeddings for the `adaln` scheme), condition sequence (B, M, D) with its key mask (caption,
registers and, for the `tokens` scheme, reward tokens). The condition reaches the network twice:
- globally: c + MLP(masked mean of the condition sequence) scales and shifts every ResBlock (FiLM);
  the sequence has been through the condition encoder's self-attention over position-coded text, so
  the pooled vector keeps word order ("a red circle and a blue square" differs from its swap);
- locally: at `attention_resolution` (8 x 8 at 32 px) each ResBlock is followed by self-attention over
  positions and cross-attention to the condition sequence, where "left of" can become a place.
Levels: one ResBlock per level on the way down and one on the way up (skip concatenated), stride-2
convolutions down, nearest-neighbour + conv up. The output convolution starts at zero (zero velocity).
Convolutions run channels-last (weights and activations): oneDNN's CPU kernels are about 1.2x faster so
(measured on the shapes preset, fwd + bwd, one thread); checkpoints store contiguous copies.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from miro.config import ModelConfig
from miro.nets.layers import Attention, Mlp


def _zero(conv: nn.Conv2d) -> None:
    nn.init.zeros_(conv.weight)
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)


def _groups(channels: int) -> int:
    return next(g for g in (8, 4, 2, 1) if channels % g == 0)


class ResBlock(nn.Module):
    """h = conv(SiLU(GN(x))); h = h (1 + scale(e)) + shift(e); out = skip(x) + conv(SiLU(GN(h)))."""

    def __init__(self, c_in: int, c_out: int, emb_dim: int) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(_groups(c_in), c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.film = nn.Linear(emb_dim, 2 * c_out)
        self.norm2 = nn.GroupNorm(_groups(c_out), c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip: nn.Module = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()
        _zero(self.conv2)  # each block starts as its skip path

    def forward(self, x: torch.Tensor, e: torch.Tensor) -> torch.Tensor:  # (B, Ci, H, W), (B, D) -> (B, Co, H, W)
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.film(F.silu(e)).unsqueeze(-1).unsqueeze(-1).chunk(2, dim=1)  # (B, Co, 1, 1) each
        h = h * (1 + scale) + shift
        return self.skip(x) + self.conv2(F.silu(self.norm2(h)))


class SpatialAttention(nn.Module):
    """Self-attention over positions, then cross-attention to the condition sequence, then an MLP (pre-norm)."""

    def __init__(self, channels: int, cond_dim: int, heads: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(channels)
        self.attn = Attention(channels, heads)
        self.norm2 = nn.LayerNorm(channels)
        self.cross = Attention(channels, heads, context_dim=cond_dim)
        self.norm3 = nn.LayerNorm(channels)
        self.mlp = Mlp(channels, 2)

    def forward(self, x: torch.Tensor, cond: torch.Tensor, cond_mask: torch.Tensor) -> torch.Tensor:
        b, ch, h, w = x.shape
        tokens = x.flatten(2).transpose(1, 2)  # (B, H*W, C)
        tokens = tokens + self.attn(self.norm1(tokens))
        tokens = tokens + self.cross(self.norm2(tokens), cond, key_mask=cond_mask)
        tokens = tokens + self.mlp(self.norm3(tokens))
        return tokens.transpose(1, 2).reshape(b, ch, h, w)


class UNet(nn.Module):
    """(B, C, H, W), global c (B, D), condition (B, M, D), mask (B, M) -> (velocity (B, C, H, W), None)."""

    has_latents = False

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        chans, d = cfg.unet_channels, cfg.width
        self.caption_mlp = Mlp(d, 2)  # pooled condition sequence -> summed into c
        self.conv_in = nn.Conv2d(cfg.channels, chans[0], 3, padding=1)
        self.down = nn.ModuleList()
        self.down_attn = nn.ModuleList()
        self.downsample = nn.ModuleList()
        prev, size = chans[0], cfg.image_size
        for level, ch in enumerate(chans):
            self.down.append(ResBlock(prev, ch, d))
            self.down_attn.append(SpatialAttention(ch, d, cfg.heads) if size <= cfg.attention_resolution else nn.Identity())
            if level < len(chans) - 1:
                self.downsample.append(nn.Conv2d(ch, ch, 3, stride=2, padding=1))
                size //= 2
            prev = ch
        self.up = nn.ModuleList()
        self.up_attn = nn.ModuleList()
        self.upsample = nn.ModuleList()
        for level in reversed(range(len(chans))):
            ch = chans[level]
            self.up.append(ResBlock(prev + ch, ch, d))
            self.up_attn.append(SpatialAttention(ch, d, cfg.heads) if size <= cfg.attention_resolution else nn.Identity())
            if level > 0:
                self.upsample.append(nn.Conv2d(ch, ch, 3, padding=1))
                size *= 2
            prev = ch
        self.norm_out = nn.GroupNorm(_groups(chans[0]), chans[0])
        self.conv_out = nn.Conv2d(chans[0], cfg.channels, 3, padding=1)
        _zero(self.conv_out)  # start as the zero velocity: stable first steps
        self.to(memory_format=torch.channels_last)

    def _attend(self, block: nn.Module, h: torch.Tensor, cond: torch.Tensor, cond_mask: torch.Tensor) -> torch.Tensor:
        return block(h, cond, cond_mask) if isinstance(block, SpatialAttention) else h

    def forward(self, x: torch.Tensor, c: torch.Tensor, cond: torch.Tensor, cond_mask: torch.Tensor,
                prev_latents: torch.Tensor | None = None) -> tuple[torch.Tensor, None]:
        weights = cond_mask.unsqueeze(-1).to(cond.dtype)                                   # (B, M, 1)
        pooled = (cond * weights).sum(1) / weights.sum(1).clamp(min=1.0)                   # (B, D)
        e = c + self.caption_mlp(pooled)                                                   # (B, D)
        h = self.conv_in(x.contiguous(memory_format=torch.channels_last))                  # (B, C0, H, W)
        skips = []
        for level, (block, attn) in enumerate(zip(self.down, self.down_attn, strict=True)):
            h = self._attend(attn, block(h, e), cond, cond_mask)
            skips.append(h)
            if level < len(self.downsample):
                h = self.downsample[level](h)                                              # (B, C, H/2, W/2)
        for i, (block, attn) in enumerate(zip(self.up, self.up_attn, strict=True)):
            h = self._attend(attn, block(torch.cat([h, skips.pop()], dim=1), e), cond, cond_mask)
            if i < len(self.upsample):
                h = self.upsample[i](F.interpolate(h, scale_factor=2.0, mode="nearest"))  # (B, C, 2H, 2W)
        return self.conv_out(F.silu(self.norm_out(h))), None
