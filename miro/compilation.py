"""torch.compile of the network, for the training loop (`optim.compile`) and the sampler (`sample.compile`).

Only the forward of the network is compiled, and the compiled wrapper is used for calls only: the EMA,
the optimizer and checkpoints hold the plain module, so saved keys never carry torch's `_orig_mod.`
prefix and a checkpoint of a compiled run loads into an eager one (and back). The graphs are captured
whole (fullgraph=True), so a graph break is an error rather than a silent slowdown; the one exception is
DDP, whose optimizer splits the graph at gradient buckets on purpose to overlap communication.
Compilation is cached per code object, so compiling the same network again (each `sample` call) is free.

Modes are torch's own (miro.config.COMPILE_MODES): `reduce-overhead` adds CUDA graphs, which suits the
sampler's fixed-shape loop (50 steps x the same batch); on a CPU it compiles like `default`.
"""
from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext

import torch
from torch import nn


def compile_network(network: nn.Module, mode: str, *, fullgraph: bool = True) -> nn.Module:
    """The network's compiled wrapper (it shares the network's parameters; save the network, not this)."""
    return torch.compile(network, mode=mode, fullgraph=fullgraph)  # type: ignore[return-value]


def sampling_autocast(precision: str, device: torch.device) -> AbstractContextManager[object]:
    """Autocast for network calls in sampling: `auto` is bf16 on CUDA (as released) and fp32 elsewhere."""
    if precision == "auto":
        precision = "bf16" if device.type == "cuda" else "fp32"
    if precision == "fp32":
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
