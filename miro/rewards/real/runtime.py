"""Where a scorer runs and in which precision, checked once when the scorer is built.

Weights always stay float32; `dtype` is the autocast dtype of the forward pass. That is how the
reference code runs these models (hpsv2's precision="amp" with fp16 autocast, the released MIRO
scorers with bf16 autocast), so a half-precision run reproduces theirs instead of a fully-cast model.
"""
from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass

import torch

from miro.errors import MiroError, unknown_name_error

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


@dataclass(frozen=True)
class Runtime:
    """A validated device and autocast dtype."""

    device: torch.device
    dtype_name: str

    def autocast(self) -> AbstractContextManager[None]:
        """Autocast to `dtype` on this device; a no-op for float32."""
        dtype = DTYPES[self.dtype_name]
        return torch.autocast(self.device.type, dtype=dtype, enabled=dtype != torch.float32)


def make_runtime(device: str = "cpu", dtype: str = "float32") -> Runtime:
    """Validate the `device` and `dtype` options every real scorer takes."""
    if dtype not in DTYPES:
        raise unknown_name_error("dtype", dtype, DTYPES)
    try:
        parsed = torch.device(device)
    except RuntimeError as err:
        raise MiroError(f'bad device "{device}": {err}; use e.g. "cpu", "cuda" or "cuda:1"') from err
    if parsed.type == "cuda" and not torch.cuda.is_available():
        raise MiroError(f'device "{device}" asked for but CUDA is not available here; use device="cpu"')
    return Runtime(parsed, dtype)
