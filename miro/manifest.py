"""What was run, where and with what: written beside every checkpoint and every measurement."""
from __future__ import annotations

import importlib.metadata
import os
import platform
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import torch

from miro.conventions import GUIDANCE_CONVENTION, TIME_CONVENTION
from miro.files import write_json_atomic  # noqa: F401  (re-exported: its writers import it from here)

PACKAGES = ("torch", "torchvision", "numpy", "diffusers", "transformers", "safetensors", "timm", "open_clip_torch",
            "submitit", "optuna", "pandas")
REPO = Path(__file__).resolve().parent.parent


def git_state() -> dict[str, Any]:
    """Commit SHA and whether the working tree differs from it (None outside a git checkout)."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=10).stdout.strip()
    try:
        sha = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return {"sha": None, "dirty": None}
    return {"sha": sha or None, "dirty": dirty if sha else None}


def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def device_description(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"
    return f"cpu:{platform.processor() or platform.machine()} x{os.cpu_count()} threads={torch.get_num_threads()}"


def build_manifest(config: dict[str, Any], *, seed: int, device: torch.device, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "config": config,
        "seed": seed,
        "git": git_state(),
        "packages": package_versions(),
        "python": platform.python_version(),
        "device": device_description(device),
        "host": socket.gethostname(),
        "conventions": {"time": TIME_CONVENTION, "guidance": GUIDANCE_CONVENTION},
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **(extra or {}),
    }
