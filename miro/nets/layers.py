"""Building blocks shared by the DiT and the RIN: norms, embeddings of scalars, attention blocks.

Shapes are annotated as (B, N, D): batch, tokens, channels. Masks are boolean over keys, True = attend.
The blocks follow the released MIRO network (pre-norm residual blocks, RMSNorm computed in float32,
optional q/k LayerNorm, SwiGLU feed-forward) so the RIN at the released settings has the released size.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class RMSNorm(nn.Module):
    """RMSNorm computed in float32: under bf16/fp16 autocast the variance loses precision otherwise."""

    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x32 = x.float()
        normed = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return normed.type_as(x) * self.weight


class FourierFeatures(nn.Module):
    """Random Fourier features of a scalar in [0, 1]: sqrt(2) cos(2 pi (f s) + phase), f ~ N(0, 1).

    The frequencies are buffers, so they are saved with the weights and a checkpoint reproduces exactly.
    """

    freqs: torch.Tensor
    phases: torch.Tensor

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.register_buffer("freqs", 2 * math.pi * torch.randn(channels))
        self.register_buffer("phases", 2 * math.pi * torch.rand(channels))

    def forward(self, s: torch.Tensor) -> torch.Tensor:  # (B,) -> (B, C)
        return (torch.outer(s.float(), self.freqs) + self.phases).cos() * math.sqrt(2)


class ScalarEmbedder(nn.Module):
    """Scalar -> Fourier features -> standardise -> Linear -> SiLU -> Linear, to `dim` channels.

    Used for the flow time and for each reward value (the released code's TimeEmbedder).
    """

    def __init__(self, dim: int, expansion: int = 4) -> None:
        super().__init__()
        base = dim // expansion
        self.features = FourierFeatures(base)
        self.fc1 = nn.Linear(base, dim)
        self.fc2 = nn.Linear(dim, dim)

    def forward(self, s: torch.Tensor) -> torch.Tensor:  # (B,) -> (B, dim)
        f = self.features(s)
        f = (f - f.mean(-1, keepdim=True)) / f.std(-1, keepdim=True)
        return self.fc2(F.silu(self.fc1(f)))


class Mlp(nn.Module):
    """Linear -> GELU -> Linear."""

    def __init__(self, dim: int, ratio: int = 4) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, dim * ratio)
        self.fc2 = nn.Linear(dim * ratio, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class SwiGLU(nn.Module):
    """SwiGLU feed-forward with the hidden size rounded up to a multiple of 256 (released network)."""

    def __init__(self, dim: int, ratio: int = 4, multiple_of: int = 256) -> None:
        super().__init__()
        hidden = int(dim * ratio * 2 / 3)
        hidden = -(-hidden // multiple_of) * multiple_of
        self.packed = nn.Linear(dim, 2 * hidden)
        self.out = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, gate = self.packed(x).chunk(2, dim=-1)
        return self.out(a * F.silu(gate))


class Attention(nn.Module):
    """Multi-head attention of `x` over `context` (itself when None), through PyTorch's fused SDPA."""

    def __init__(self, dim: int, heads: int, context_dim: int | None = None, attention_dim: int | None = None,
                 qkv_bias: bool = False, qk_norm: bool = True) -> None:
        super().__init__()
        self.heads = heads
        self.is_self = context_dim is None
        inner = attention_dim or dim
        if self.is_self:
            self.qkv = nn.Linear(dim, 3 * inner, bias=qkv_bias)
        else:
            self.q = nn.Linear(dim, inner, bias=qkv_bias)
            self.kv = nn.Linear(context_dim or dim, 2 * inner, bias=qkv_bias)
        self.out = nn.Linear(inner, dim)
        head_dim = inner // heads
        self.q_norm: nn.Module = nn.LayerNorm(head_dim, eps=1e-6) if qk_norm else nn.Identity()
        self.k_norm: nn.Module = nn.LayerNorm(head_dim, eps=1e-6) if qk_norm else nn.Identity()

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None,
                key_mask: torch.Tensor | None = None) -> torch.Tensor:
        if self.is_self:
            q, k, v = self.qkv(x).chunk(3, dim=-1)  # (B, N, D) each
        else:
            q = self.q(x)
            k, v = self.kv(context).chunk(2, dim=-1)  # (B, M, D) each
        q, k, v = (t.unflatten(-1, (self.heads, -1)).transpose(1, 2) for t in (q, k, v))  # (B, H, N, D/H)
        q, k = self.q_norm(q), self.k_norm(k)
        mask = None if key_mask is None else key_mask[:, None, None, :]  # (B, 1, 1, M)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.out(out.transpose(1, 2).flatten(-2))  # (B, N, D)


class SelfAttentionBlock(nn.Module):
    """x + attn(norm x); x + ffn(norm x), with optional layer scale (the conditioning blocks use it)."""

    def __init__(self, dim: int, heads: int, mlp_ratio: int = 4, *, layer_norm: bool = False, swiglu: bool = True,
                 qkv_bias: bool = False, qk_norm: bool = True, layer_scale: float | None = None) -> None:
        super().__init__()
        self.norm1: nn.Module = nn.LayerNorm(dim, eps=1e-6) if layer_norm else RMSNorm(dim)
        self.attn = Attention(dim, heads, qkv_bias=qkv_bias, qk_norm=qk_norm)
        self.norm2: nn.Module = nn.LayerNorm(dim, eps=1e-6) if layer_norm else RMSNorm(dim)
        self.ffn: nn.Module = SwiGLU(dim, mlp_ratio) if swiglu else Mlp(dim, mlp_ratio)
        self.scale1 = nn.Parameter(torch.full((dim,), layer_scale)) if layer_scale else None
        self.scale2 = nn.Parameter(torch.full((dim,), layer_scale)) if layer_scale else None

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor | None = None) -> torch.Tensor:
        a = self.attn(self.norm1(x), key_mask=key_mask)
        x = x + (a if self.scale1 is None else self.scale1 * a)
        f = self.ffn(self.norm2(x))
        return x + (f if self.scale2 is None else self.scale2 * f)


class CrossAttentionBlock(nn.Module):
    """x + attn(norm x, context); x + ffn(norm x). The context is read as it is (not normalised)."""

    def __init__(self, dim: int, context_dim: int, heads: int, mlp_ratio: int = 4) -> None:
        super().__init__()
        self.norm1 = RMSNorm(dim)
        self.attn = Attention(dim, heads, context_dim=context_dim, attention_dim=min(dim, context_dim))
        self.norm2 = RMSNorm(dim)
        self.ffn = SwiGLU(dim, mlp_ratio)

    def forward(self, x: torch.Tensor, context: torch.Tensor, key_mask: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), context, key_mask=key_mask)
        return x + self.ffn(self.norm2(x))


def xavier_init(module: nn.Module) -> None:
    """The released initialisation of every Linear: xavier-uniform weights, zero bias (use with `Module.apply`)."""
    if isinstance(module, nn.Linear):
        nn.init.xavier_uniform_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


def patchify(x: torch.Tensor, p: int) -> torch.Tensor:
    """(B, C, H, W) -> (B, H/p * W/p, p * p * C)."""
    b, c, h, w = x.shape
    x = x.reshape(b, c, h // p, p, w // p, p).permute(0, 2, 4, 3, 5, 1)
    return x.reshape(b, (h // p) * (w // p), p * p * c)


def unpatchify(x: torch.Tensor, p: int, c: int, h: int, w: int) -> torch.Tensor:
    """(B, H/p * W/p, p * p * C) -> (B, C, H, W)."""
    b = x.shape[0]
    x = x.reshape(b, h // p, w // p, p, p, c).permute(0, 5, 1, 3, 2, 4)
    return x.reshape(b, c, h, w)
