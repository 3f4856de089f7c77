"""From a run's DataConfig to the dataset the trainer reads, preparing shared data once.

The shapes world is generated, annotated with every analytic reward and binned once per data config,
in a data folder that every arm of a sweep shares (so all arms train on the same samples with the
same bins). Its rendered images are cached beside the annotation, so each arm loads the whole set
into memory in a second instead of rendering it again, and a world table records what degraded each sample
(corruptions, a wrong caption), so that the rewards can be checked against the truth. Folders and webdataset shards are read with
the annotation and bin edges the user gives (`data.annotations`, `data.bin_edges`), and the precomputed
latents and caption embeddings of `data.features` when set.
"""
from __future__ import annotations

import hashlib
import json
import multiprocessing
import shutil
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import nullcontext
from dataclasses import fields
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from miro.config import DataConfig, RunConfig, to_dict
from miro.data.annotate import annotate, merge_annotations
from miro.data.feature_store import FeatureStore
from miro.data.shapes import ShapesDataset, ShapesSample, ShapesWorldConfig
from miro.data.sources import DatasetSource, ImageFolderSource, WebDatasetSource
from miro.data.training_set import FeatureTrainingSet, RewardTrainingSet, fit_bins
from miro.errors import MiroError, did_you_mean
from miro.files import atomic_path, read_checked
from miro.manifest import write_json_atomic
from miro.rewards.binning import BinEdges, BinningOptions
from miro.rewards.registry import load_scorer

SHAPES_SCORERS = ("shapes_alignment", "shapes_quality", "shapes_size", "shapes_cleanliness")
WORLD_TABLE = "world.parquet"  # per sample: what the world did to it (corruptions, wrong caption), beside the annotation


class RenderedImages:
    """Cached renders as a map-style dataset of {"image" in [-1, 1], "caption", "sample_id"} (sample id = index)."""

    def __init__(self, images: torch.Tensor, captions: Sequence[str]) -> None:
        self.images, self.captions = images, list(captions)

    def __len__(self) -> int:
        return len(self.captions)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {"image": self.images[i].float() / 127.5 - 1, "caption": self.captions[i], "sample_id": i}


class InMemoryTrainingSet:
    """Training items from stacked tensors: uint8 images (N, C, H, W), captions, rewards (N, R) in [0, 1]."""

    def __init__(self, images: torch.Tensor, captions: Sequence[str], rewards: torch.Tensor) -> None:
        self.images, self.captions, self.rewards = images, list(captions), rewards

    def __len__(self) -> int:
        return len(self.captions)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {"image": self.images[i].float() / 127.5 - 1, "caption": self.captions[i], "rewards": self.rewards[i]}


def data_key(cfg: DataConfig) -> str:
    """The folder name of a data config's shared preparation."""
    payload = json.dumps({"data": to_dict(cfg), "scorers": SHAPES_SCORERS}, sort_keys=True)
    return f"{cfg.source}-{hashlib.sha256(payload.encode()).hexdigest()[:12]}"


def shapes_world(cfg: DataConfig) -> ShapesWorldConfig:
    """The shapes world of a data config: the world's defaults, `cfg.world`'s overrides, `cfg.resolution`.

    Unknown names are refused here with the allowed ones (DataConfig cannot check them: it does not import
    the world); values are checked by the world itself."""
    allowed = [f.name for f in fields(ShapesWorldConfig) if f.name != "resolution"]
    for name in cfg.world:
        if name not in allowed:
            raise MiroError(f'unknown shapes-world key "data.world.{name}"{did_you_mean(name, allowed)}; allowed: {", ".join(allowed)}')
    return ShapesWorldConfig(resolution=cfg.resolution, **cfg.world)


def shapes_dataset(cfg: DataConfig) -> ShapesDataset:
    return ShapesDataset(shapes_world(cfg), cfg.num_samples, cfg.seed)


def write_world_table(path: Path, samples: Sequence[ShapesSample]) -> None:
    """The truth behind each rendered sample, so rewards can be checked against what degraded it
    (harness.aggregate correlates the two); written atomically, one row per sample id (= render index)."""
    frame = pd.DataFrame([{"sample_id": i, "blur_sigma": s.corruptions.blur_sigma, "contrast_blend": s.corruptions.contrast_blend,
                           "noise_std": s.corruptions.noise_std, "clutter": s.corruptions.clutter, "cut": s.corruptions.cut,
                           "caption_wrong": s.caption_error is not None, "caption_error": s.caption_error or "",
                           "n_objects": len(s.objects)} for i, s in enumerate(samples)])
    with atomic_path(path) as tmp:
        frame.to_parquet(tmp, index=False)


PARALLEL_MIN_SAMPLES = 2048  # below this, starting worker processes (about 2 s each) costs more than they save


def prepare_shapes(cfg: DataConfig, data_root: Path, progress: bool = True, workers: int = 1) -> Path:
    """Render, annotate, bin and cache the shapes world of `cfg`, with its world table (resumable; instant when done).

    With `workers` > 1 (and at least PARALLEL_MIN_SAMPLES samples) rendering and annotation are split over that
    many processes: each sample comes from its own seed and the annotation shards are merged sorted by sample
    id, so the folder holds the same images, table and annotation whatever the number of workers.
    """
    folder = data_root / data_key(cfg)
    folder.mkdir(parents=True, exist_ok=True)
    annotation = folder / "annotations.parquet"
    cache = folder / "images.safetensors"
    if (folder / "done.json").is_file():
        return folder
    workers = max(1, min(workers, cfg.num_samples // PARALLEL_MIN_SAMPLES))
    shown = [progress and i == 0 for i in range(workers)]  # one bar, the first worker's
    # one thread a worker: the workers are the parallelism
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"), initializer=torch.set_num_threads,
                               initargs=(1,)) if workers > 1 else nullcontext()
    with pool:
        run = pool.map if isinstance(pool, ProcessPoolExecutor) else map
        if not cache.is_file():  # render once; annotation and every arm read the cache
            chunks = [range(i, cfg.num_samples, workers) for i in range(workers)]
            rendered = list(run(_render, [cfg] * workers, chunks, shown))
            samples = [rendered[i % workers][i // workers] for i in range(cfg.num_samples)]
            write_world_table(folder / WORLD_TABLE, samples)
            (folder / "captions.json").write_text(json.dumps([s.caption for s in samples]))
            images = torch.stack([torch.from_numpy(s.image).permute(2, 0, 1) for s in samples])  # (N, 3, H, W) uint8, as rendered
            save_file({"images": images}, str(cache))  # written last: its presence means the render is complete
        if not annotation.is_file():  # each shard resumes in its own file; the merged file is written last
            shards = [folder / f"annotations-{i}-of-{workers}.parquet" for i in range(workers)]
            list(run(_annotate_shard, [cfg] * workers, [folder] * workers, shards, range(workers), [workers] * workers, shown))
            merge_annotations(shards, annotation)
            # these shards and their part folders, and those of a run interrupted with another number of
            # workers: the merged file holds every sample
            for leftover in folder.glob("annotations-*-of-*.parquet*"):
                if leftover.is_dir():
                    shutil.rmtree(leftover)
                else:
                    leftover.unlink()
    fit_bins(annotation, SHAPES_SCORERS)
    write_json_atomic(folder / "done.json", {"data": to_dict(cfg), "scorers": SHAPES_SCORERS})
    return folder


def _render(cfg: DataConfig, indices: range, progress: bool) -> list[ShapesSample]:
    dataset = shapes_dataset(cfg)
    return [dataset.sample(i) for i in tqdm(indices, desc="render shapes", unit="img", disable=not progress)]


def _annotate_shard(cfg: DataConfig, folder: Path, out: Path, shard: int, shards: int, progress: bool) -> None:
    world = shapes_world(cfg)
    scorers = [load_scorer(name, world=world) for name in SHAPES_SCORERS]
    annotate(DatasetSource(load_rendered(folder)), scorers, out, shard_index=shard, shard_count=shards, progress=progress)


def load_rendered(folder: Path) -> RenderedImages:
    fix = f"delete the folder {folder} to prepare the data again"
    images = read_checked(folder / "images.safetensors", lambda p: load_file(str(p))["images"], fix)
    return RenderedImages(images, read_checked(folder / "captions.json", lambda p: json.loads(p.read_text()), fix))


def build_training_set(cfg: RunConfig, data_root: Path, progress: bool = True) -> InMemoryTrainingSet | RewardTrainingSet | FeatureTrainingSet:
    """The training set of a run; the shapes world is prepared under `data_root` on first use. Precomputed latents
    are read from their feature store alone (O(1) to open at any size); otherwise images come from the source."""
    data = cfg.data
    if data.source == "shapes":
        folder = prepare_shapes(data, data_root, progress)
        bins = fit_bins(folder / "annotations.parquet", SHAPES_SCORERS)  # instant once fitted
        rendered = load_rendered(folder)
        labelled = RewardTrainingSet(DatasetSource(rendered), folder / "annotations.parquet", bins,
                                     cfg.rewards.names, require_ok=SHAPES_SCORERS)
        index = torch.tensor(labelled.sample_ids)  # sample ids are render indices
        return InMemoryTrainingSet(rendered.images[index], [rendered.captions[i] for i in labelled.sample_ids], labelled.rewards)
    if not data.annotations:
        raise MiroError(f'data.annotations is empty; annotate {data.path} first (python -m miro annotate --out FOLDER) and set data.annotations to FOLDER')
    annotation = Path(data.annotations) / "annotations.parquet" if Path(data.annotations).is_dir() else Path(data.annotations)
    bins = BinEdges.load(data.bin_edges) if data.bin_edges else fit_bins(annotation, cfg.rewards.names, BinningOptions(bins=cfg.rewards.bins))
    store = FeatureStore(data.features) if data.features else None
    if store is not None and store.layout.latent_shape:
        return FeatureTrainingSet(store, annotation, bins, cfg.rewards.names)
    source = ImageFolderSource(data.path) if data.source == "folder" else WebDatasetSource(data.path)
    return RewardTrainingSet(source, annotation, bins, cfg.rewards.names, resolution=data.resolution, features=store)
