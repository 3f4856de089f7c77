"""How training batches reach the step: a torch DataLoader that reads and collates ahead of the step.

The order is a pure function of (seed, position): `TrainingBatches` yields, from the first step to run to the
last, each micro-batch's indices (`batch_indices`: seeded per-epoch permutations; rank r of w reads positions
`((step * grad_accum + m) * w + r) * micro ...`), so ranks read disjoint samples, and a resumed run, another
number of workers or another prefetch depth read the very same samples in the very same batches.

Worker processes (`default_workers`: none for an in-memory dataset, else one per core of the rank beside its
own, at most 8) each build whole batches (`__getitems__`, then `collate`) `prefetch_factor` batches ahead, into
pinned memory on CUDA, for the whole run (one iterator: the workers persist). Caption features travel float16,
trimmed to each caption's tokens and end to end; the step pads them on its device (miro.data.feature_store.StoredText),
so a batch at 20-40-token captions moves about 40% of the bytes of states padded to 77 tokens.
A worker's error comes back as one line (`LoadError`), and a worker that dies (killed, out of memory) stops
training with an error rather than a hang.
"""
from __future__ import annotations

import functools
import os
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass, fields
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from miro.errors import MiroError
from miro.seeding import generator_for

PREFETCH = 4  # batches each worker builds ahead (the released code's prefetch_factor)


@functools.lru_cache(maxsize=2)
def epoch_permutation(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The order of one epoch, drawn once per epoch rather than once per batch."""
    return torch.randperm(n, generator=generator_for("epoch", seed, epoch))


def batch_indices(position: int, size: int, n: int, seed: int) -> list[int]:
    """Items `position .. position + size - 1` of an endless stream of seeded per-epoch permutations."""
    out: list[int] = []
    while len(out) < size:
        epoch, offset = divmod(position + len(out), n)
        out.extend(epoch_permutation(n, seed, epoch)[offset: offset + size - len(out)].tolist())
    return out


@dataclass(frozen=True)
class TrainingBatches(Sampler[list[int]]):
    """The indices of every micro-batch of steps [start, end) on one rank, in training order."""

    start: int
    end: int
    grad_accum: int
    world: int
    rank: int
    micro: int
    n: int
    seed: int

    def __iter__(self) -> Iterator[list[int]]:
        for step in range(self.start, self.end):
            for m in range(self.grad_accum):
                position = ((step * self.grad_accum + m) * self.world + self.rank) * self.micro
                yield batch_indices(position, self.micro, self.n, self.seed)

    def __len__(self) -> int:
        return (self.end - self.start) * self.grad_accum


@dataclass
class Batch:
    """One micro-batch. images: (B, C, H, W) float32 pixels in [-1, 1], or the unscaled posterior means (float16);
    latent_std likewise (precomputed latents); when captions are stored, text (T, D) float16: each caption's states
    (at most max_tokens) end to end, text_tokens[i] of them for caption i."""

    images: torch.Tensor
    captions: list[str]
    rewards: torch.Tensor  # (B, R) float32 in [0, 1]
    latent_std: torch.Tensor | None = None
    text: torch.Tensor | None = None
    text_tokens: torch.Tensor | None = None  # (B,) int64

    def pin_memory(self) -> Batch:
        """Page-locked copies, so the copies to the GPU can overlap the step (DataLoader's pin thread calls it)."""
        pinned = {f.name: getattr(self, f.name) for f in fields(self)}
        for name, value in pinned.items():
            if isinstance(value, torch.Tensor):
                pinned[name] = value.pin_memory()
        return Batch(**pinned)


def collate(items: Sequence[dict[str, Any]], rewards: int, max_tokens: int) -> Batch:
    """Items of a training set -> a Batch (the first `rewards` reward values; stored captions cut to max_tokens)."""
    first = items[0]
    images = torch.stack([torch.as_tensor(it["image"]) for it in items])
    if images.dtype != torch.float16:  # pixels: float32, as the step takes them; latents stay float16 until the device
        images = images.float()
    scores = torch.stack([torch.as_tensor(it["rewards"], dtype=torch.float32)[:rewards] for it in items]) \
        if rewards else torch.zeros(len(items), 0)
    batch = Batch(images, [str(it["caption"]) for it in items], scores)
    if "latent_std" in first:
        batch.latent_std = torch.stack([it["latent_std"] for it in items])
    if "text_embedding" in first:
        texts = [it["text_embedding"][:max_tokens] for it in items]
        batch.text, batch.text_tokens = torch.cat(texts), torch.tensor([len(t) for t in texts])
    return batch


@dataclass(frozen=True)
class LoadError:
    """A worker's error, carried back as its one line (DataLoader would otherwise wrap it in the worker's traceback)."""

    message: str


class _Batches(Dataset):
    """A training set read a whole micro-batch at a time (`__getitems__`) and collated where it is read."""

    def __init__(self, dataset: Any, rewards: int, max_tokens: int) -> None:
        self.dataset, self.rewards, self.max_tokens = dataset, rewards, max_tokens

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitems__(self, indices: Sequence[int]) -> Batch | LoadError:
        try:
            read = getattr(self.dataset, "__getitems__", None)
            items = read(indices) if read else [self.dataset[i] for i in indices]
            return collate(items, self.rewards, self.max_tokens)
        except MiroError as err:
            return LoadError(str(err))


def _as_is(batch: Any) -> Any:  # __getitems__ already collated
    return batch


def _one_thread(_: int) -> None:
    torch.set_num_threads(1)  # the workers are the parallelism


def default_workers(dataset: Any) -> int:
    """No worker for a dataset held in memory; otherwise one per core of this rank beside its own, at most 8
    (the cores a SLURM task may use, shared by the ranks torchrun starts on a node)."""
    if not getattr(dataset, "reads_files", False):
        return 0
    ranks_here = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    return max(1, min(8, len(os.sched_getaffinity(0)) // ranks_here - 1))


def training_batches(dataset: Any, order: TrainingBatches, rewards: int, max_tokens: int, workers: int | None,
                     pin_memory: bool) -> Generator[Batch, None, None]:
    """The run's micro-batches in training order, read by `workers` processes (None: `default_workers`)."""
    workers = default_workers(dataset) if workers is None else workers
    if workers < 0:
        raise MiroError(f"data workers = {workers} must be >= 0 (0 reads in the training process)")
    loader = DataLoader(_Batches(dataset, rewards, max_tokens), batch_sampler=order, collate_fn=_as_is, num_workers=workers,
                        pin_memory=pin_memory, persistent_workers=workers > 0, prefetch_factor=PREFETCH if workers else None,
                        worker_init_fn=_one_thread if workers else None)
    try:
        for batch in loader:
            if isinstance(batch, LoadError):
                raise MiroError(batch.message)
            yield batch
    except RuntimeError as err:
        if "DataLoader worker" not in str(err):
            raise
        raise MiroError(f"a data-loading worker died ({str(err).splitlines()[0]}); rerun the same command to resume from the last "
                        "checkpoint, with --workers 0 to read in the training process if it happens again") from None
