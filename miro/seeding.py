"""Seeds derived from names, so every random draw is a function of what it decides, not of call order.

A training micro-batch draws from seed_for(run seed, step, micro-batch, rank); an image draws from
seed_for(seed, prompt id, sample index). Results then do not depend on batch size, device count or
the point at which a run was resumed.
"""
from __future__ import annotations

import hashlib

import torch


def seed_for(*parts: object) -> int:
    """A 63-bit seed from any printable parts (stable across processes and Python versions)."""
    digest = hashlib.sha256("/".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def generator_for(*parts: object) -> torch.Generator:
    return torch.Generator().manual_seed(seed_for(*parts))
