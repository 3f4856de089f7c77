"""The paper's backbone: a Recurrent Interface Network (RIN) with conditioning cross-attention per block.

Patch tokens ("data", width data_dim) are few-to-many linked to a small set of latents (width D):
each block reads the condition sequence into the latents, reads the data into the latents, processes
the latents with self-attention, and writes back to the data. Latent self-conditioning feeds the
previous step's latents back in. At the released settings (data_dim 512, 256 latents x 1024, 4 blocks
x 4 layers, 16 read/write heads, 32 compute heads) the whole FlowModel has 360.4M parameters.
"""
from __future__ import annotations

import torch
from torch import nn

from miro.config import ModelConfig
from miro.nets.layers import CrossAttentionBlock, Mlp, RMSNorm, SelfAttentionBlock, patchify, unpatchify, xavier_init


class RINBlock(nn.Module):
    def __init__(self, data_dim: int, dim: int, layers: int, rw_heads: int, heads: int, mlp_ratio: int) -> None:
        super().__init__()
        self.read_cond = CrossAttentionBlock(dim, dim, rw_heads, mlp_ratio)
        self.read = CrossAttentionBlock(dim, data_dim, rw_heads, mlp_ratio)
        self.compute = nn.ModuleList(SelfAttentionBlock(dim, heads, mlp_ratio) for _ in range(layers))
        self.write = CrossAttentionBlock(data_dim, dim, rw_heads, mlp_ratio)

    def forward(self, data: torch.Tensor, z: torch.Tensor, cond: torch.Tensor,
                cond_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.read_cond(z, cond, key_mask=cond_mask)  # (B, L, D)
        z = self.read(z, data)                            # (B, L, D)
        for layer in self.compute:
            z = layer(z)
        return self.write(data, z), z                     # (B, N, data_dim), (B, L, D)


class RIN(nn.Module):
    """(B, C, H, W), global c (B, D), condition (B, M, D), previous latents -> (velocity, latents (B, L, D))."""

    has_latents = True

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d, p = cfg.width, cfg.patch_size
        self.patch_in = nn.Linear(cfg.channels * p * p, cfg.data_dim)
        self.data_norm = RMSNorm(cfg.data_dim)
        self.data_pos = nn.Parameter(torch.empty((cfg.image_size // p) ** 2, cfg.data_dim))
        self.latents = nn.Parameter(torch.empty(cfg.num_latents, d))
        self.prev_norm_in = nn.LayerNorm(d, eps=1e-6)
        self.prev_mlp = Mlp(d, cfg.mlp_ratio)
        self.prev_norm_out = nn.LayerNorm(d, eps=1e-6)
        self.blocks = nn.ModuleList(
            RINBlock(cfg.data_dim, d, cfg.rin_layers_per_block, cfg.read_write_heads, cfg.heads, cfg.mlp_ratio)
            for _ in range(cfg.rin_blocks)
        )
        self.out_norm = RMSNorm(cfg.data_dim)
        self.patch_out = nn.Linear(cfg.data_dim, cfg.channels * p * p)
        self.apply(xavier_init)
        for param in (self.data_pos, self.latents):
            nn.init.trunc_normal_(param, std=0.02, a=-0.04, b=0.04)
        nn.init.zeros_(self.prev_norm_out.weight)  # self-conditioning starts as a no-op residual
        nn.init.zeros_(self.prev_norm_out.bias)

    def forward(self, x: torch.Tensor, c: torch.Tensor, cond: torch.Tensor, cond_mask: torch.Tensor,
                prev_latents: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        b, ch, h, w = x.shape
        data = self.data_norm(self.patch_in(patchify(x, self.cfg.patch_size))) + self.data_pos  # (B, N, data_dim)
        cond = torch.cat([c.unsqueeze(1), cond], dim=1)  # the timestep is also a condition token
        cond_mask = torch.cat([torch.ones(b, 1, dtype=torch.bool, device=x.device), cond_mask], dim=1)
        z = self.latents + c.unsqueeze(1)  # (B, L, D)
        prev = torch.zeros_like(z) if prev_latents is None else prev_latents  # no previous step = zero latents
        z = z + self.prev_norm_out(prev + self.prev_mlp(self.prev_norm_in(prev)))
        for block in self.blocks:
            data, z = block(data, z, cond, cond_mask)
        out = self.patch_out(self.out_norm(data))  # (B, N, p*p*C)
        return unpatchify(out, self.cfg.patch_size, ch, h, w), z

