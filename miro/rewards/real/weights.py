"""Load checkpoints safely and strictly, and hash them for the scorer's fingerprint.

Safe: safetensors, or `torch.load(weights_only=True)`, never arbitrary unpickling. Strict: every key
of the model must come from the file and every key of the file must land in the model, with equal
shapes; ImageReward's own loader uses `strict=False`, which silently scores with random weights when
the file is the wrong one.
"""
from __future__ import annotations

import hashlib
import pickle
from collections.abc import Iterable
from pathlib import Path

import torch
from safetensors.torch import load_file

from miro.errors import MiroError

_CHUNK = 1 << 20
_SHOWN = 4  # keys listed per kind in a mismatch error


def sha256_file(path: Path) -> str:
    """Hex sha256 of one file, read in 1 MiB chunks (checkpoints reach several GB)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_folder(folder: Path) -> str:
    """One sha256 over a model folder: the sorted (relative path, file sha256) lines, hidden files skipped."""
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not _hidden(p.relative_to(folder)))
    lines = "".join(f"{p.relative_to(folder).as_posix()} {sha256_file(p)}\n" for p in files)
    return hashlib.sha256(lines.encode()).hexdigest()


def _hidden(relative: Path) -> bool:
    return any(part.startswith(".") for part in relative.parts)


def load_state_dict(path: Path, nested_key: str | None = None) -> dict[str, torch.Tensor]:
    """Read a state dict from a .safetensors file or a weights-only torch pickle.

    `nested_key` unwraps checkpoints saved as {nested_key: state_dict} (hpsv2 saves {'state_dict': ...}).
    """
    if path.suffix == ".safetensors":
        return load_file(str(path))
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise MiroError(
            f"{path} is not a weights-only checkpoint (it pickles Python objects); "
            "re-save its state dict with torch.save(model.state_dict(), path) or as safetensors"
        ) from err
    if nested_key is not None:
        if not isinstance(loaded, dict) or nested_key not in loaded:
            raise MiroError(f"{path} has no '{nested_key}' entry; expected torch.save({{'{nested_key}': state_dict}})")
        loaded = loaded[nested_key]
    if not isinstance(loaded, dict) or not all(isinstance(v, torch.Tensor) for v in loaded.values()):
        raise MiroError(f"{path} does not hold a state dict (a mapping of names to tensors)")
    return loaded


def listed_keys(kind: str, keys: Iterable[str]) -> str:
    """'<kind> a, b, c, d (+N more)': the first few keys in sorted order, for one-line errors."""
    ordered = sorted(keys)
    more = f" (+{len(ordered) - _SHOWN} more)" if len(ordered) > _SHOWN else ""
    return f"{kind} {', '.join(ordered[:_SHOWN])}{more}"


def load_strict(module: torch.nn.Module, state_dict: dict[str, torch.Tensor], path: Path) -> None:
    """Copy `state_dict` into `module`, or raise a MiroError listing missing, unexpected and misshaped keys."""
    expected = module.state_dict()
    problems = []
    if missing := expected.keys() - state_dict.keys():
        problems.append(listed_keys("missing keys", missing))
    if unexpected := state_dict.keys() - expected.keys():
        problems.append(listed_keys("unexpected keys", unexpected))
    misshaped = {
        f"{k} {tuple(state_dict[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in expected.keys() & state_dict.keys()
        if state_dict[k].shape != expected[k].shape
    }
    if misshaped:
        problems.append(listed_keys("shape mismatches", misshaped))
    if problems:
        raise MiroError(f"{path} does not fit {type(module).__name__}: {'; '.join(problems)}")
    module.load_state_dict(state_dict, strict=True)
