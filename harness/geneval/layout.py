"""The folder layout GenEval's reference tools read and write, so our samples also work with them.

`<folder>/<5-digit prompt index>/metadata.jsonl` holds that prompt's metadata object and
`<folder>/<index>/samples/NNNN.png` its images. Like the reference, the reader takes only digit-named
folders and `\\d+.png` files; anything else (JPEGs, notes, grids) is skipped.
"""
from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from harness.geneval.metadata import PromptSpec, parse_prompt
from miro.errors import MiroError

_SAMPLE = re.compile(r"\d+\.png")


@dataclass(frozen=True)
class PromptFolder:
    """One prompt's folder: its index, metadata and sample images in numeric order."""

    index: int
    path: Path
    spec: PromptSpec
    images: tuple[Path, ...]


def prompt_dir(folder: str | Path, index: int) -> Path:
    return Path(folder) / f"{index:05d}"


def write_prompt_folder(folder: str | Path, index: int, spec: PromptSpec, images: Sequence[np.ndarray]) -> Path:
    """Write one prompt's metadata and its (H, W, 3) uint8 images as 0000.png, 0001.png, ..."""
    path = prompt_dir(folder, index)
    (path / "samples").mkdir(parents=True, exist_ok=True)
    (path / "metadata.jsonl").write_text(spec.source + "\n")
    for number, image in enumerate(images):
        Image.fromarray(np.asarray(image, dtype=np.uint8)).save(path / "samples" / f"{number:04d}.png")
    return path


def read_layout(folder: str | Path) -> list[PromptFolder]:
    """Every digit-named prompt folder under `folder`, in index order."""
    folder = Path(folder)
    if not folder.is_dir():
        raise MiroError(f"GenEval image folder {folder} does not exist; sample the prompts into it first")
    prompts = []
    for path in sorted((p for p in folder.iterdir() if p.is_dir() and p.name.isdigit()), key=lambda p: int(p.name)):
        meta = path / "metadata.jsonl"
        if not meta.is_file():
            raise MiroError(f"{meta} is missing; every prompt folder needs its metadata.jsonl")
        try:
            spec = parse_prompt(json.loads(meta.read_text()), str(meta))
        except json.JSONDecodeError as err:
            raise MiroError(f"{meta}: not valid JSON ({err.msg})") from None
        samples = path / "samples"
        images = sorted(
            (p for p in samples.iterdir() if p.is_file() and _SAMPLE.fullmatch(p.name)) if samples.is_dir() else (),
            key=lambda p: int(p.stem),
        )
        prompts.append(PromptFolder(int(path.name), path, spec, tuple(images)))
    return prompts
