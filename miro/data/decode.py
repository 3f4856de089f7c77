"""A task's images decoded in DataLoader worker processes, so the process that runs the encoders or the scorers
never waits on an image decoder (JPEG decoding and resizing cost ~7 ms an image on one core).

`task_batches` is what annotation and precompute iterate: lists of `Decoded` samples of one task (shard of count),
skipping the samples given, with the source's problems (a truncated tar) passed along as `SourceProblem`s.
A worker reads part of the task (its own tars), so the order of samples depends on the number of workers; what
is written does not (both stores are keyed by sample id).
"""
from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from miro.data.sources import (
    DatasetSource,
    ItemError,
    SourceItem,
    SourceProblem,
    as_source,
    decode_pixels,
    fit_to,
    task_items,
    unit_range,
)


@dataclass(frozen=True)
class Decoded:
    """One sample of a task. `image` is uint8 (3, H, W) as decoded from its file, a float (3, H, W) in [0, 1]
    (a map-style dataset's own tensor, or any image once fitted to a size), or None with the reason in `error`."""

    sample_id: int
    caption: str
    image: torch.Tensor | None
    error: str = ""
    fields: Mapping[str, Any] = field(default_factory=dict)

    def pixels(self) -> torch.Tensor:
        """The image as float (3, H, W) in [0, 1]."""
        assert self.image is not None, self.error
        return unit_range(self.image) if self.image.dtype == torch.uint8 else self.image


def decode(item: SourceItem, size: int | None = None, with_image: bool = True) -> Decoded:
    """Read and decode an item's image (fitted to `size` x `size` when given; not at all without `with_image`); any
    failure becomes the reason."""
    if item.error or not with_image:
        return Decoded(item.sample_id, item.caption, None, item.error, item.fields)
    try:
        if item.encoded is not None:
            try:
                image = decode_pixels(item.encoded(), at_least=size)
            except ItemError:
                raise
            except Exception as err:  # any decoder failure is a property of the data
                raise ItemError(f"unreadable image: {type(err).__name__}: {err}") from None
        else:
            image = item.image()
        if size:
            image = fit_to(unit_range(image) if image.dtype == torch.uint8 else image, size)
    except ItemError as err:
        return Decoded(item.sample_id, item.caption, None, str(err), item.fields)
    return Decoded(item.sample_id, item.caption, image, "", item.fields)


class TaskImages(IterableDataset):
    """The decoded samples of task `shard` of `count`, minus `skip`; each DataLoader worker reads its own part."""

    def __init__(self, source: Any, shard: int, count: int, skip: frozenset[int] = frozenset(), size: int | None = None,
                 images: bool = True) -> None:
        self.source, self.shard, self.count, self.skip, self.size, self.images = source, shard, count, skip, size, images

    def __iter__(self) -> Iterator[Decoded | SourceProblem]:
        worker = get_worker_info()
        part, parts = (worker.id, worker.num_workers) if worker else (0, 1)
        for item in task_items(self.source, self.shard, self.count, part, parts):
            if isinstance(item, SourceProblem):
                yield item
            elif item.sample_id not in self.skip:
                yield decode(item, self.size, self.images)


def default_workers(source: Any) -> int:
    """Decoder processes for a task: none for an in-memory dataset (nothing to decode), else one per core
    beside the main process, at most 8."""
    if isinstance(source, DatasetSource):
        return 0
    return max(1, min(8, len(os.sched_getaffinity(0)) - 1))


def _one_thread(_: int) -> None:
    torch.set_num_threads(1)  # the workers are the parallelism


def task_batches(source: Any, shard: int, count: int, batch_size: int, skip: frozenset[int] = frozenset(),
                 size: int | None = None, images: bool = True, workers: int | None = None) -> Iterator[list[Decoded | SourceProblem]]:
    """Batches of a task's decoded samples (`workers` decoder processes; None: `default_workers`); with
    `images` False only captions are read."""
    src = as_source(source)
    workers = default_workers(src) if workers is None else workers
    loader = DataLoader(TaskImages(src, shard, count, skip, size, images), batch_size=batch_size, num_workers=workers,
                        collate_fn=list, worker_init_fn=_one_thread if workers else None,
                        prefetch_factor=4 if workers else None)
    yield from loader
