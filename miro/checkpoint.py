"""Checkpoints that a crash can never corrupt, loaded without unpickling arbitrary objects.

Layout: <run>/checkpoints/step-NNNNNNN/ with
  train.safetensors   trainable weights (network and, when used, the log-variance head)
  ema.safetensors     EMA network weights (what sampling uses)
  optimizer.pt        optimizer and LR-schedule state (tensors and numbers; read with weights_only=True)
  state.json          step and run bookkeeping
  manifest.json       resolved config, git SHA, packages, device, seed
A checkpoint is written into a temporary folder and renamed into place (miro.files), so a folder named
step-NNNNNNN is always complete; the temporary folder of a killed write is removed by the next save.
A file that is missing, truncated or not what it should be is refused with one line naming it and the fix.
"""
from __future__ import annotations

import errno
import json
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from miro.errors import MiroError
from miro.files import atomic_path, read_checked, remove_leftovers, write_json_atomic

STEP_DIR = re.compile(r"^step-(\d{7})$")


def checkpoint_dirs(run_dir: Path) -> list[Path]:
    """Complete checkpoints of a run, oldest first."""
    root = run_dir / "checkpoints"
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and STEP_DIR.match(p.name))


def checkpoint_step(path: Path) -> int:
    match = STEP_DIR.match(path.name)
    if not match:
        raise MiroError(f"{path} is not a checkpoint folder (expected a name like step-0000250)")
    return int(match.group(1))


@dataclass
class Checkpoint:
    step: int
    train: dict[str, torch.Tensor]
    ema: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    state: dict[str, Any]


def checkpoint_path(run_dir: Path, step: int) -> Path:
    """Where a run keeps its checkpoint of `step` (the one place this name is written)."""
    return Path(run_dir) / "checkpoints" / f"step-{step:07d}"


def _written(path: Path, write: Callable[[Path], None]) -> None:
    """`write(path)` with a failure to write the file (a full disk, a quota) raised as the OSError it is: safetensors
    and torch wrap it in their own errors, which would otherwise end a run in a traceback."""
    try:
        write(path)
    except (SafetensorError, RuntimeError) as error:
        code = re.search(r"code: (\d+)", str(error))  # safetensors: IoError(Os { code: 28, kind: StorageFull, ... })
        if code is None and not ("write" in str(error) and shutil.disk_usage(path.parent).free < 1 << 20):
            raise
        number = int(code.group(1)) if code else errno.ENOSPC
        raise OSError(number, os.strerror(number), str(path)) from None


def save_checkpoint(run_dir: Path, step: int, *, train: dict[str, torch.Tensor], ema: dict[str, torch.Tensor],
                    optimizer: dict[str, Any], state: dict[str, Any], manifest: dict[str, Any],
                    keep: int = 0) -> Path:
    final = checkpoint_path(run_dir, step)
    root = final.parent
    root.mkdir(parents=True, exist_ok=True)
    remove_leftovers(root)  # the temporary folders of writes that were killed
    with atomic_path(final) as tmp:  # the same step written again (a resumed slice) replaces it whole
        tmp.mkdir()
        _written(tmp / "train.safetensors", lambda p: save_file(_contiguous(train), str(p)))
        _written(tmp / "ema.safetensors", lambda p: save_file(_contiguous(ema), str(p)))
        _written(tmp / "optimizer.pt", lambda p: torch.save(optimizer, p))
        write_json_atomic(tmp / "state.json", {"step": step, **state})
        write_json_atomic(tmp / "manifest.json", manifest)
        for f in tmp.iterdir():
            with open(f, "rb") as handle:
                os.fsync(handle.fileno())
    if keep:
        for old in checkpoint_dirs(run_dir)[:-keep]:
            shutil.rmtree(old)
    return final


def _read(path: Path, reader: Callable[[Path], Any]) -> Any:
    return read_checked(path, reader, f"delete the folder {path.parent} to resume from the previous checkpoint "
                        "(or restore the file from a copy)")


def read_json(path: Path) -> Any:
    return _read(path, lambda p: json.loads(p.read_text()))


def load_checkpoint(path: Path, *, with_optimizer: bool = True) -> Checkpoint:
    needed = ("train.safetensors", "ema.safetensors", "state.json", *(("optimizer.pt",) if with_optimizer else ()))
    missing = [n for n in needed if not (path / n).is_file()]
    if missing:
        raise MiroError(f"checkpoint {path} lacks {', '.join(missing)}; delete the folder to resume from the previous checkpoint")
    optimizer = _read(path / "optimizer.pt", lambda p: torch.load(p, weights_only=True)) if with_optimizer else {}
    return Checkpoint(
        step=checkpoint_step(path),
        train=_read(path / "train.safetensors", lambda p: load_file(str(p))),
        ema=_read(path / "ema.safetensors", lambda p: load_file(str(p))),
        optimizer=optimizer,
        state=read_json(path / "state.json"),
    )


def load_strict(module: torch.nn.Module, weights: dict[str, torch.Tensor], source: Path) -> None:
    """Load weights and refuse any missing or unexpected key (a mismatched checkpoint never loads silently)."""
    result = module.load_state_dict(weights, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise MiroError(
            f"{source} does not match the model: missing {result.missing_keys[:3]}, unexpected {result.unexpected_keys[:3]}; "
            "check that the run config matches the checkpoint's manifest.json"
        )


def _contiguous(weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().contiguous().cpu() for k, v in weights.items()}
