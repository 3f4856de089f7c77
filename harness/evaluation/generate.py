"""Generate a prompt set's images from a checkpoint into GenEval's folder layout, resumably and shardably.

Image k of prompt p goes to `<folder>/<p:05d>/samples/<k:04d>.png` (beside the prompt's metadata.jsonl),
so GenEval's reference tools read the folder as it is. Its initial noise comes from
seed_for(seed, p, k) alone, so an image is the same whatever the batch size, shard or resume point.
Each PNG is written to a hidden temporary name and renamed, so a file that exists is whole: running the
same command again skips it. Shard i of n owns the (p, k) whose ordinal p * samples + k is i mod n; shards
may run at once on one folder. `generation.json` pins what decides the images (checkpoint, sampler,
guidance, seed): a rerun with other settings is refused rather than mixing two sets of images.
"""
from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from harness.geneval.layout import prompt_dir
from harness.prompts import Prompt
from miro.config import SampleConfig, to_dict
from miro.errors import MiroError
from miro.files import atomic_path, remove_leftovers, write_json_atomic, write_text_atomic
from miro.inference import Generator
from miro.sample import guidance_branches, sample
from miro.seeding import seed_for

MAX_SAMPLES = 10_000  # sample files are named NNNN.png


@dataclass(frozen=True)
class Shard:
    """Shard `index` of `count` (0-based), e.g. one SLURM array task."""

    index: int = 0
    count: int = 1

    def __post_init__(self) -> None:
        if not 0 <= self.index < self.count:
            raise MiroError(f"shard {self.index}/{self.count} is not allowed; use i/n with 0 <= i < n (e.g. --shard 0/4)")

    @classmethod
    def parse(cls, text: str) -> Shard:
        """"i/n" -> Shard(i, n)."""
        try:
            index, count = (int(part) for part in text.split("/"))
        except ValueError:
            raise MiroError(f'--shard "{text}" is not of the form i/n (e.g. 0/4 for the first of four shards)') from None
        return cls(index, count)

    @property
    def whole(self) -> bool:
        return self.count == 1

    def owns(self, prompt_index: int, sample_index: int, samples_per_prompt: int) -> bool:
        return (prompt_index * samples_per_prompt + sample_index) % self.count == self.index


WHOLE = Shard()  # the unsharded run


@dataclass(frozen=True)
class GenerationOptions:
    """How many images per prompt and how each is drawn: `sample` holds the sampler and guidance
    (v = v_neg + g (v_pos - v_neg), per-branch reward targets), `seed` the base of every image's seed."""

    sample: SampleConfig = SampleConfig()
    samples_per_prompt: int = 4
    seed: int = 0
    batch_size: int = 64

    def __post_init__(self) -> None:
        if not 1 <= self.samples_per_prompt < MAX_SAMPLES:
            raise MiroError(f"samples per prompt = {self.samples_per_prompt} must lie in 1..{MAX_SAMPLES - 1}")
        if self.batch_size < 1 or self.seed < 0:
            raise MiroError(f"batch size = {self.batch_size} must be >= 1 and seed = {self.seed} >= 0")


@dataclass
class GenerationReport:
    """What one call generated; `images_per_second` counts only images made by this call."""

    generated: int = 0
    skipped: int = 0
    seconds: float = 0.0

    @property
    def images_per_second(self) -> float:
        return self.generated / self.seconds if self.seconds > 0 else 0.0


def image_path(folder: str | Path, prompt_index: int, sample_index: int) -> Path:
    return prompt_dir(folder, prompt_index) / "samples" / f"{sample_index:04d}.png"


def image_seed(seed: int, prompt_index: int, sample_index: int) -> int:
    """The seed of one image's initial noise (miro.sample draws it from this seed alone)."""
    return seed_for(seed, prompt_index, sample_index)


def checkpoint_identity(generator: Generator) -> dict[str, object]:
    """What identifies the weights: the run config's hash and the step (the path may move)."""
    config = json.dumps(to_dict(generator.config), sort_keys=True)
    return {"config_sha256": hashlib.sha256(config.encode()).hexdigest(), "step": generator.step, "run": generator.config.name}


def generation_settings(generator: Generator, options: GenerationOptions) -> dict[str, object]:
    """Everything that decides the pixels of an image (not how many images, nor the batch size)."""
    return {"checkpoint": checkpoint_identity(generator), "sample": to_dict(options.sample), "seed": options.seed}


def changed_keys(old: object, new: object, prefix: str = "") -> list[str]:
    """Dotted names of the leaves that differ between two JSON-like values."""
    if isinstance(old, dict) and isinstance(new, dict):
        return [c for k in sorted(set(old) | set(new)) for c in changed_keys(old.get(k), new.get(k), f"{prefix}{k}.")]
    return [] if old == new else [prefix.rstrip(".")]


def check_settings(folder: Path, settings: dict[str, object]) -> None:
    """Record the settings in a new folder; refuse a folder generated with other settings."""
    path = folder / "generation.json"
    if path.is_file():
        previous = json.loads(path.read_text())
        if previous != settings:
            raise MiroError(f"{folder} holds images generated with other settings (changed: {', '.join(changed_keys(previous, settings))}); "
                            "use another --out, or restore the settings to resume")
        return
    folder.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, settings)


def ensure_metadata(folder: Path, prompt: Prompt) -> None:
    """Write the prompt folder's metadata.jsonl; refuse a folder that holds another prompt."""
    path = prompt_dir(folder, prompt.index) / "metadata.jsonl"
    if path.is_file():
        if path.read_text().strip() != prompt.metadata:
            raise MiroError(f"{path} holds another prompt than #{prompt.index} of this set ({prompt.text!r}); "
                            "use another --out for another prompt set")
        return
    (path.parent / "samples").mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, prompt.metadata + "\n")


def write_png_atomic(path: Path, image: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        Image.fromarray(image).save(tmp, format="PNG")


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """(B, 3, H, W) in [-1, 1] -> (B, H, W, 3) uint8."""
    return ((images.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def generate_images(generator: Generator, prompts: Sequence[Prompt], folder: str | Path, options: GenerationOptions,
                    shard: Shard = WHOLE, progress: bool = True) -> GenerationReport:
    """Generate every missing image of this shard; returns counts and this call's throughput."""
    folder = Path(folder)
    opts = options.sample
    positive, negative = guidance_branches(opts, generator.model.reward_names)
    check_settings(folder, generation_settings(generator, options))
    n = options.samples_per_prompt
    owned = [(p, k) for p in prompts for k in range(n) if shard.owns(p.index, k, n)]
    for prompt in dict.fromkeys(p for p, _ in owned):
        ensure_metadata(folder, prompt)
        remove_leftovers(prompt_dir(folder, prompt.index) / "samples")  # images of a killed run, half written
    todo = [(p, k) for p, k in owned if not image_path(folder, p.index, k).is_file()]
    report = GenerationReport(skipped=len(owned) - len(todo))
    start = time.perf_counter()
    with tqdm(total=len(todo), unit="img", desc="generate", disable=not progress) as bar:
        for first in range(0, len(todo), options.batch_size):
            batch = todo[first:first + options.batch_size]
            data = sample(generator.model, generator.text_encoder, [p.text for p, _ in batch],
                          [image_seed(options.seed, p.index, k) for p, k in batch], generator.data_shape,
                          positive=positive, negative=negative, guidance_scale=opts.guidance_scale, steps=opts.steps,
                          solver=opts.solver, shift=opts.time_shift, device=generator.device, precision=opts.precision,
                          compile_mode=opts.compile_mode if opts.compile else None)
            for (p, k), image in zip(batch, to_uint8(generator.latent_space.decode(data))):
                write_png_atomic(image_path(folder, p.index, k), image)
            report.generated += len(batch)
            bar.update(len(batch))
    report.seconds = time.perf_counter() - start
    return report
